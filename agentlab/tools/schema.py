"""From a Python function to what the model sees: description, argument model, JSON Schema.

Argument types come from type hints (validated by a generated pydantic model); descriptions come
from the docstring's Google-style `Args:` section (Sphinx `:param x:` lines work too).
"""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

_SECTION_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns?|Yields?|Raises|"
    r"Examples?|Notes?|Attributes|See Also|Warnings?|Todo)\s*:\s*$",
    re.IGNORECASE,
)
_ARGS_HEADERS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
# "name: text", "name (int): text", "*args: text"
_ARG_LINE = re.compile(r"^\*{0,2}(?P<name>[A-Za-z_]\w*)\s*(\([^)]*\))?\s*:\s*(?P<text>.*)$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?\*{0,2}(?P<name>[A-Za-z_]\w*)\s*:\s*(?P<text>.*)$")


@dataclass
class DocstringInfo:
    """A docstring's summary and its `Args:` descriptions by parameter name."""

    description: str = ""
    arg_descriptions: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> DocstringInfo:
    """Split a docstring into its summary (everything before the first section) and per-arg text."""
    if not doc:
        return DocstringInfo()
    lines = inspect.cleandoc(doc).splitlines()
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current_arg: str | None = None
    arg_indent = 0

    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION_HEADER.match(stripped)
        if header and indent == 0:
            section = header.group(1).lower()
            current_arg = None
            continue
        sphinx = _SPHINX_PARAM.match(stripped)
        if sphinx:
            section, current_arg = "sphinx", sphinx.group("name")
            args[current_arg] = sphinx.group("text").strip()
            arg_indent = indent
            continue
        if section is None:
            summary.append(line)
        elif section in _ARGS_HEADERS:
            arg_line = _ARG_LINE.match(stripped)
            # A new argument starts at the section's item indentation; deeper lines continue it.
            if arg_line and (current_arg is None or indent <= arg_indent):
                current_arg, arg_indent = arg_line.group("name"), indent
                args[current_arg] = arg_line.group("text").strip()
            elif current_arg is not None and stripped:
                args[current_arg] = f"{args[current_arg]} {stripped}".strip()
        elif section == "sphinx" and current_arg is not None and stripped and indent > arg_indent:
            args[current_arg] = f"{args[current_arg]} {stripped}".strip()
        elif section == "sphinx" and stripped.startswith(":"):
            current_arg = None  # :returns: and friends end the parameter text

    return DocstringInfo(description=_unwrap("\n".join(summary)), arg_descriptions=args)


def _unwrap(text: str) -> str:
    """Join hard-wrapped lines within each paragraph; the model does not need the source's line breaks."""
    paragraphs = re.split(r"\n\s*\n", text.strip())
    return "\n\n".join(" ".join(line.strip() for line in p.splitlines()) for p in paragraphs if p.strip())


def _field_name(param_name: str, position: int) -> str:
    """A pydantic-safe field name; awkward parameter names keep their real name as the alias."""
    if param_name.startswith("_") or hasattr(BaseModel, param_name):
        return f"arg{position}_{param_name.lstrip('_')}"
    return param_name


def _type_hints(func: Callable[..., Any], local_names: Mapping[str, Any] | None) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func, include_extras=True)
    except NameError:
        if not local_names:
            raise
    # String annotations (`from __future__ import annotations`) naming a class defined inside a
    # function only resolve with that function's locals, which the decorator captured for us.
    return typing.get_type_hints(func, localns=dict(local_names), include_extras=True)


def build_args_model(
    func: Callable[..., Any],
    model_name: str,
    docs: DocstringInfo,
    local_names: Mapping[str, Any] | None = None,
) -> type[BaseModel]:
    """A pydantic model whose fields are `func`'s parameters (aliases are the real parameter names)."""
    try:
        hints = _type_hints(func, local_names)
    except Exception as exc:
        raise TypeError(f"cannot resolve the type hints of tool function {model_name!r}: {exc}") from exc

    fields: dict[str, Any] = {}
    for position, param in enumerate(inspect.signature(func).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue  # *args/**kwargs have no schema; the model can only fill named parameters
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[_field_name(param.name, position)] = (
            annotation,
            Field(default, alias=param.name, description=docs.arg_descriptions.get(param.name)),
        )
    config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)
    model: type[BaseModel] = create_model(model_name, __config__=config, **fields)
    return model


# Keys whose values are data, not sub-schemas: never rewrite them.
_DATA_KEYS = {"default", "const", "enum", "examples"}
# Keys whose values map *names* to sub-schemas: a property may legitimately be called "title".
_NAMED_SCHEMA_KEYS = {"properties", "$defs", "definitions", "patternProperties"}


def clean_json_schema(node: Any) -> Any:
    """Drop pydantic's auto-generated "title" keywords, which only add tokens for the model."""
    if isinstance(node, list):
        return [clean_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    cleaned: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in _DATA_KEYS:
            cleaned[key] = value
        elif key in _NAMED_SCHEMA_KEYS and isinstance(value, dict):
            cleaned[key] = {name: clean_json_schema(sub) for name, sub in value.items()}
        else:
            cleaned[key] = clean_json_schema(value)
    return cleaned


def parameters_schema(args_model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a tool's arguments model, cleaned for models' tool-call APIs."""
    schema = clean_json_schema(args_model.model_json_schema(by_alias=True))
    schema.setdefault("properties", {})
    schema["type"] = "object"
    return typing.cast(dict[str, Any], schema)


def describe_parameters(schema: dict[str, Any]) -> str:
    """A one-line signature for error messages, e.g. `a (integer, required), k (integer, default 3)`."""
    required = set(schema.get("required", []))
    parts = []
    for name, prop in schema.get("properties", {}).items():
        kind = _type_label(prop)
        if name in required:
            parts.append(f"{name} ({kind}, required)")
        elif "default" in prop:
            parts.append(f"{name} ({kind}, default {prop['default']!r})")
        else:
            parts.append(f"{name} ({kind}, optional)")
    return ", ".join(parts) if parts else "no parameters"


def _type_label(prop: dict[str, Any]) -> str:
    if "type" in prop:
        return str(prop["type"])
    if "anyOf" in prop:
        return " or ".join(_type_label(option) for option in prop["anyOf"])
    if "enum" in prop:
        return "one of " + ", ".join(repr(v) for v in prop["enum"])
    if "$ref" in prop:
        return "object"
    return "any"
