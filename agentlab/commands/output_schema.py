"""`agentlab run --output-schema schema.json`: a JSON Schema file as the run's typed output.

The schema becomes a pydantic type (objects with their properties, arrays, enums, the JSON scalar types), so the
final action asks the model for exactly that shape and the loop's repairs apply. When the `jsonschema` package
is installed, the answer is also checked against the whole schema (patterns, bounds, formats the pydantic type
does not carry), and a violation goes back to the model as a `ModelRetry`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from agentlab.run.output import ModelRetry, OutputValidator

_SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": float, "boolean": bool, "null": type(None)}


class SchemaError(ValueError):
    """The schema file cannot be read or used; the message is one line for the user."""


def load_schema(path: str | Path) -> dict[str, Any]:
    """The JSON Schema in the file at `path` (an object)."""
    try:
        schema = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise SchemaError(f"cannot read the output schema {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise SchemaError(f"the output schema {path} is not JSON: {error}") from None
    if not isinstance(schema, dict):
        raise SchemaError(f"the output schema {path} must be a JSON object, not {type(schema).__name__}")
    return schema


def type_from_schema(schema: dict[str, Any], name: str = "Output") -> Any:
    """A Python type pydantic validates like `schema`: an object becomes a model with its properties
    (required ones required, the others optional), an array a list, an enum a Literal."""
    if "enum" in schema:
        values = schema["enum"]
        if not isinstance(values, list) or not values:
            raise SchemaError(f"{name}: enum must be a non-empty list")
        return Literal[tuple(values)]
    kind = schema.get("type")
    if isinstance(kind, list):  # e.g. ["string", "null"]
        types = [type_from_schema({**schema, "type": k}, name) for k in kind]
        union = types[0]
        for other in types[1:]:
            union = union | other
        return union
    if kind == "object" or (kind is None and "properties" in schema):
        return _model_from_object(schema, name)
    if kind == "array":
        items = schema.get("items")
        item_type = type_from_schema(items, f"{name}Item") if isinstance(items, dict) else Any
        return list[item_type]  # type: ignore[valid-type]  # a type built at run time from the schema
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind is None:
        return Any
    raise SchemaError(f"{name}: unsupported type {kind!r}")


def _model_from_object(schema: dict[str, Any], name: str) -> type[BaseModel]:
    properties = schema.get("properties") or {}
    if not isinstance(properties, dict):
        raise SchemaError(f"{name}: properties must be an object")
    required = set(schema.get("required") or ())
    fields: dict[str, Any] = {}
    for key, subschema in properties.items():
        if not isinstance(subschema, dict):
            raise SchemaError(f"{name}.{key}: a property's schema must be an object")
        field_type = type_from_schema(subschema, f"{name}_{key}")
        description = subschema.get("description")
        if key in required:
            fields[key] = (field_type, Field(description=description))
        else:
            fields[key] = (field_type | None, Field(None, description=description))
    extra: Literal["forbid", "ignore"] = "forbid" if schema.get("additionalProperties") is False else "ignore"
    title = schema.get("title")
    model_name = title.replace(" ", "_") if isinstance(title, str) and title.strip() else name
    return create_model(model_name, __config__=ConfigDict(extra=extra), **fields)


def without_absent(data: Any, schema: dict[str, Any]) -> Any:
    """`data` (an output's JSON form) without the optional properties the answer left out (None), so the printed
    object fits the schema: an absent property is not a null one."""
    if not isinstance(data, dict) or not isinstance(schema.get("properties"), dict):
        return data
    required = set(schema.get("required") or ())
    properties = schema["properties"]
    return {
        key: without_absent(value, properties.get(key) or {})
        for key, value in data.items()
        if value is not None or key in required
    }


def schema_validator(schema: dict[str, Any]) -> OutputValidator | None:
    """A validator checking the output against the whole schema with `jsonschema`; None when it is not
    installed (the pydantic type alone then checks the answer)."""
    try:
        import jsonschema
    except ImportError:
        return None
    try:
        checker = jsonschema.validators.validator_for(schema)(schema)
        checker.check_schema(schema)
    except jsonschema.SchemaError as error:
        raise SchemaError(f"the output schema is not a valid JSON Schema: {error.message}") from None

    def check(value: Any) -> Any:
        data = value.model_dump(mode="json", exclude_none=True) if isinstance(value, BaseModel) else value
        problems = sorted(checker.iter_errors(data), key=lambda e: list(e.absolute_path))
        if problems:
            described = "; ".join(
                f"{'.'.join(map(str, p.absolute_path)) or 'the answer'}: {p.message}" for p in problems[:5]
            )
            raise ModelRetry(f"the answer does not fit the schema: {described}")
        return value

    return check
