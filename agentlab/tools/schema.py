"""From a Python function to what the model sees: description, argument model, JSON Schema.

Argument types come from type hints (validated by a generated pydantic model); descriptions come
from the docstring's Google-style `Args:` section (Sphinx `:param x:` lines work too).
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from agentlab._json_schema import DATA_KEYS

if TYPE_CHECKING:  # pydantic loads with the first tool, not with `import agentlab` (import time)
    from pydantic import BaseModel, ValidationError
    from pydantic.fields import FieldInfo

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
    from pydantic import BaseModel

    if param_name.startswith("_") or hasattr(BaseModel, param_name):
        return f"arg{position}_{param_name.lstrip('_')}"
    return param_name


def _type_hints(
    func: Callable[..., Any], local_names: Mapping[str, Any] | None, skip: str | None = None
) -> dict[str, Any]:
    """`func`'s resolved type hints; `skip` names a parameter whose annotation is left out (unresolved)."""
    target: Any = func
    globalns: dict[str, Any] | None = None
    if skip is not None:
        annotations = {k: v for k, v in getattr(func, "__annotations__", {}).items() if k != skip}
        target = types.SimpleNamespace(__annotations__=annotations)
        globalns = getattr(inspect.unwrap(func), "__globals__", {})
    try:
        return typing.get_type_hints(target, globalns=globalns, include_extras=True)
    except NameError:
        if not local_names:
            raise
    # String annotations (`from __future__ import annotations`) naming a class defined inside a
    # function only resolve with that function's locals, which the decorator captured for us.
    return typing.get_type_hints(target, globalns=globalns, localns=dict(local_names), include_extras=True)


# The class attribute by which `agentlab.run.RunContext` is recognised: tools/ sits below run/ and may not import it.
RUN_CONTEXT_MARKER = "__agentlab_run_context__"
# `RunContext`, `RunContext[Deps]`, `agentlab.RunContext[...]` written as a string annotation.
_RUN_CONTEXT_NAME = re.compile(r"^\s*(?:[A-Za-z_][\w.]*\.)?RunContext\s*(?:\[.*\])?\s*$", re.DOTALL)
_UNRESOLVED = object()


def is_run_context_annotation(annotation: Any) -> bool:
    """Whether a (resolved) annotation is `RunContext` or `RunContext[...]`, possibly inside `Annotated`."""
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    origin = typing.get_origin(annotation) or annotation
    return isinstance(origin, type) and bool(getattr(origin, RUN_CONTEXT_MARKER, False))


def _asks_for_context(raw: Any, resolved: Any) -> bool:
    if resolved is _UNRESOLVED:  # a string annotation we could not resolve: its spelling is all we have
        return isinstance(raw, str) and bool(_RUN_CONTEXT_NAME.match(raw))
    return is_run_context_annotation(resolved)


@dataclass(frozen=True)
class SignatureInfo:
    """A tool function's model-fillable parameters with their resolved hints, and its context parameter."""

    parameters: list[inspect.Parameter]
    hints: dict[str, Any]
    context: inspect.Parameter | None


def inspect_signature(func: Callable[..., Any], local_names: Mapping[str, Any] | None = None) -> SignatureInfo:
    """Split `func`'s parameters into the one that receives the run's context (the first, when annotated
    `RunContext[...]`) and the ones the model fills. Raises TypeError for a context parameter elsewhere."""
    parameters = list(inspect.signature(func).parameters.values())
    first = parameters[0] if parameters else None
    try:
        try:
            hints = _type_hints(func, local_names)
        except NameError:
            # `RunContext[Deps]` with `Deps` imported only under TYPE_CHECKING must not stop the tool.
            if first is None or not _asks_for_context(first.annotation, _UNRESOLVED):
                raise
            hints = _type_hints(func, local_names, skip=first.name)
    except Exception as exc:
        name = getattr(func, "__name__", type(func).__name__)
        raise TypeError(f"cannot resolve the type hints of tool function {name!r}: {exc}") from exc
    context = None
    if first is not None and _asks_for_context(first.annotation, hints.get(first.name, _UNRESOLVED)):
        context = first
    for param in parameters[1:]:
        if _asks_for_context(param.annotation, hints.get(param.name, _UNRESOLVED)):
            raise TypeError(f"parameter {param.name!r}: a RunContext parameter must be the tool function's first")
    fillable = [p for p in parameters if p is not context and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return SignatureInfo(parameters=fillable, hints=hints, context=context)


def build_args_model(
    func: Callable[..., Any],
    model_name: str,
    docs: DocstringInfo,
    local_names: Mapping[str, Any] | None = None,
) -> type[BaseModel]:
    """A pydantic model whose fields are `func`'s parameters (aliases are the real parameter names)."""
    from pydantic import ConfigDict, Field, create_model

    signature = inspect_signature(func, local_names)
    # Positions count every parameter, the context one included, so field names stay stable.
    positions = {name: index for index, name in enumerate(inspect.signature(func).parameters)}
    fields: dict[str, Any] = {}
    for param in signature.parameters:
        annotation = signature.hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[_field_name(param.name, positions[param.name])] = (
            annotation,
            Field(default, alias=param.name, description=docs.arg_descriptions.get(param.name)),
        )
    config = ConfigDict(extra="forbid", protected_namespaces=(), arbitrary_types_allowed=True)
    model: type[BaseModel] = create_model(model_name, __config__=config, **fields)
    return model


GROUNDED_KEY = "x-grounded"
"""A tool parameter's JSON Schema keyword, set with `Annotated[str, grounded()]` (or by hand with
`Field(json_schema_extra={GROUNDED_KEY: True})`): its value is words the run holds (a search query), not free
text; `"phrase"` instead of `True` for a name or a title (not the whole task); `"expression"` for a
calculation, which a first call copies from the task when the task writes one out. Strategies that ground
arguments (ReAct on a small model) restrict it to the task, its names and what the tools returned."""

GroundedMark = Literal[True, "phrase", "expression"]
"""What a grounded parameter holds: a query (`True`), a name or title (`"phrase"`), a calculation
(`"expression"`)."""
_GROUNDED_MARKS: tuple[GroundedMark, ...] = typing.get_args(GroundedMark)


def grounded(mark: GroundedMark = True, **json_schema: Any) -> FieldInfo:
    """A tool parameter's pydantic `Field` marking it grounded (`GROUNDED_KEY`), as in
    `query: Annotated[str, grounded()]` or `title: Annotated[str, grounded("phrase")]`; `json_schema` adds
    other keywords to the parameter's schema (`pattern=...`). A mark other than `GroundedMark`'s raises
    `ValueError` here, not in a run."""
    from pydantic import Field

    _check_grounded_mark(mark, "grounded()")
    return typing.cast("FieldInfo", Field(json_schema_extra={**json_schema, GROUNDED_KEY: mark}))


def _check_grounded_mark(mark: object, where: str) -> None:
    # `1 == True`: the marks compare by identity for True, so `x-grounded: 1` is refused too.
    if not (mark is True or (isinstance(mark, str) and mark in _GROUNDED_MARKS)):
        raise ValueError(f"{where}: {GROUNDED_KEY} must be True, 'phrase' or 'expression', not {mark!r}")


def _check_grounded(schema: dict[str, Any], tool: str) -> None:
    """Refuse a misspelt mark (`"phrse"`) or one on a parameter that is not a string when the tool is made:
    otherwise it would be silently ignored, or offered as strings to a number."""
    for name, node in schema.get("properties", {}).items():
        if isinstance(node, dict) and node.get(GROUNDED_KEY, False) is not False:  # False: not grounded
            where = f"tool {tool!r}, parameter {name!r}"
            _check_grounded_mark(node[GROUNDED_KEY], where)
            if node.get("type") != "string":
                kind = node.get("type", "untyped")
                raise ValueError(f"{where}: only a string parameter can be grounded, not {kind!r}")


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
        if key in DATA_KEYS:
            cleaned[key] = value
        elif key in _NAMED_SCHEMA_KEYS and isinstance(value, dict):
            cleaned[key] = {name: clean_json_schema(sub) for name, sub in value.items()}
        else:
            cleaned[key] = clean_json_schema(value)
    return cleaned


def parameters_schema(args_model: type[BaseModel], tool: str = "") -> dict[str, Any]:
    """The JSON Schema of a tool's arguments model, cleaned for models' tool-call APIs; `ValueError` for a
    grounded mark that cannot hold (`grounded`)."""
    schema = clean_json_schema(args_model.model_json_schema(by_alias=True))
    schema.setdefault("properties", {})
    schema["type"] = "object"
    _check_grounded(schema, tool)
    return typing.cast(dict[str, Any], schema)


# Validation errors are for the model to fix its reply; a handful of them is plenty.
_MAX_REPORTED_ERRORS = 5


def validation_problems(exc: ValidationError, *, whole: str, wording: Mapping[str, str], prefix: str = "") -> list[str]:
    """The first few problems in `exc` as `- 'where': what (got value)` lines, for a model to fix its reply.

    `whole` names the place of an error about the whole value; `wording` replaces pydantic's message for
    error types it names (e.g. `"missing"`); `prefix` goes before every place."""
    problems = []
    for error in exc.errors(include_url=False)[:_MAX_REPORTED_ERRORS]:
        where = ".".join(str(part) for part in (prefix, *error["loc"]) if part != "") or whole
        if error["type"] in wording:
            problems.append(f"- '{where}': {wording[error['type']]}")
        else:
            shown = repr(error.get("input"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            problems.append(f"- '{where}': {error['msg']} (got {shown})")
    if exc.error_count() > _MAX_REPORTED_ERRORS:
        problems.append(f"- ... and {exc.error_count() - _MAX_REPORTED_ERRORS} more")
    return problems


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
