"""Typed output: the final answer as a validated Python value, not only a string.

`OutputSpec.for_type(Invoice)` gives the JSON Schema that becomes the parameters of the final-answer action
(whatever the decision format: a native tool, a grammar-constrained JSON object, prompted JSON), validates
the model's arguments back into an `Invoice`, and renders the value as the text kept in `result.answer`.
Validation errors and `ModelRetry` from output validators become `OutputValidationError`, a `DecisionError`
whose message tells the model what to fix, so the loop repairs a bad answer like any unusable decision.
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeAlias, TypeVar, get_args, get_origin, overload

from agentlab.decisions import DecisionError
from agentlab.tools.schema import clean_json_schema, describe_parameters, validation_problems

T = TypeVar("T")

OutputValidator: TypeAlias = Callable[[Any], Any | Awaitable[Any]]
"""Checks (and may replace) a validated output: `value -> value`, sync or async; raises `ModelRetry` to refuse it."""

if TYPE_CHECKING:
    # pydantic loads with the first output spec, not with `import agentlab` (import time), so at run time
    # `ShortAnswer` is built by the module's __getattr__ below, once.
    from pydantic import Field, TypeAdapter, ValidationError

    ShortAnswer: TypeAlias = Annotated[str, Field(max_length=200)]
    """A plain-text answer of at most 200 characters (`output_type=ShortAnswer`), for QA benchmarks that score
    short answers (the evaluation harness uses it): a longer final answer goes back to the model to be shortened."""

SHORT_ANSWER_INSTRUCTIONS = "Give the final answer as a short phrase (at most 200 characters), not a full sentence."
"""The instruction that goes with `ShortAnswer`: the schema's limit alone does not tell a model to be brief."""

ANSWER_KEY = "answer"
"""The single property that carries a non-object output (`int`, `list[...]`, `str`, ...)."""


class ModelRetry(Exception):
    """Raise from an output validator (`ModelRetry("the total must be positive")`) to send the answer back to
    the model with that reason, for another try within the run's output retries."""


class OutputValidationError(DecisionError):
    """The model's final answer does not fit the output type, or a validator refused it; the message is
    written for the model to fix its answer."""


@dataclass(frozen=True)
class OutputSpec(Generic[T]):
    """How one output type is asked for, checked and shown. Build it with `OutputSpec.for_type(...)`.

    Attributes:
        output_type: The type asked for (a pydantic model, dataclass, TypedDict (from `typing_extensions`
            before Python 3.12), `int`, `float`, `bool`, `str`, `list[...]`, `Literal`, an Enum).
        parameters: The JSON Schema object used as the parameters of the final-answer action: an object
            type's own schema, anything else wrapped as `{"answer": <schema>}`. `$ref`s are inlined and
            titles dropped, so a llama.cpp grammar and OpenAI's strict mode can take it.
        wrapped: Whether the value travels under the `answer` property.
    """

    output_type: Any
    parameters: dict[str, Any]
    wrapped: bool
    adapter: TypeAdapter[T]

    @overload
    @classmethod
    def for_type(cls, output_type: type[T]) -> OutputSpec[T]: ...

    @overload
    @classmethod
    def for_type(cls, output_type: Any) -> OutputSpec[Any]: ...

    @classmethod
    def for_type(cls, output_type: Any = str) -> OutputSpec[Any]:
        """The spec for `output_type` (default `str`, the plain-text answer). Raises TypeError for a type
        pydantic cannot validate or a recursive one (a grammar needs a finite schema)."""
        if output_type is str and cls is OutputSpec:
            # Every agent without an output type asks for this one: its validator and schema are built once
            # (0.5 ms and a few hundred objects per agent otherwise); the schema is copied, callers own it.
            text = _text_spec()
            return cls(str, copy.deepcopy(text.parameters), text.wrapped, typing.cast(Any, text.adapter))
        return cls._built(output_type)

    @classmethod
    def _built(cls, output_type: Any) -> OutputSpec[Any]:
        from pydantic import ConfigDict, TypeAdapter

        wrapped = not _is_object_type(output_type)
        try:
            # NaN and infinity are no answer (a program's float('nan')); a model or dataclass keeps its config.
            config = ConfigDict(allow_inf_nan=False) if wrapped else None
            adapter: TypeAdapter[Any] = TypeAdapter(output_type, config=config)
            schema = adapter.json_schema()
        except Exception as exc:
            raise TypeError(f"cannot use {output_type!r} as an output type: {exc}") from exc
        inlined = _close_objects(clean_json_schema(inline_refs(schema)))
        if wrapped:
            inlined.setdefault("description", "The final answer.")
            if output_type is str:
                inlined.setdefault("minLength", 1)  # an empty final answer is never useful
            parameters: dict[str, Any] = {
                "type": "object",
                "properties": {ANSWER_KEY: inlined},
                "required": [ANSWER_KEY],
            }
        else:
            parameters = inlined
        return cls(output_type=output_type, parameters=parameters, wrapped=wrapped, adapter=adapter)

    @property
    def is_text(self) -> bool:
        """True for plain-text output: `str` (the default), or `str` with constraints (`ShortAnswer`): the answer
        is the text itself (a final action's text is checked against the constraints)."""
        return self.output_type is str or (
            get_origin(self.output_type) is Annotated and get_args(self.output_type)[0] is str
        )

    def validate(self, arguments: Mapping[str, Any]) -> T:
        """The final-answer action's arguments as a value of the output type.

        Raises OutputValidationError (a DecisionError) saying what to fix.
        """
        if not isinstance(arguments, Mapping):
            raise OutputValidationError(
                f"The final answer must be a JSON object with: {describe_parameters(self.parameters)}."
            )
        if self.wrapped:
            if ANSWER_KEY not in arguments:
                raise OutputValidationError(
                    f'The final answer is missing "{ANSWER_KEY}". Give it as: {describe_parameters(self.parameters)}.'
                )
            answer = arguments[ANSWER_KEY]
            if self.output_type is str and isinstance(answer, str) and not answer.strip():
                # The schema's minLength says so too, but not every endpoint enforces a schema.
                raise OutputValidationError("The final answer is empty. Give the answer itself.")
            if self.is_text and answer is not None and not isinstance(answer, str):
                # A plain-text answer given as a number or an object still answers: keep its text.
                answer = json.dumps(answer) if isinstance(answer, dict | list) else str(answer)
            return self._validate_value(answer, prefix=ANSWER_KEY)
        try:
            return self._validate_value(dict(arguments), prefix="")
        except OutputValidationError:
            # Lenient reading: a model that put the object under "answer" meant the object.
            inner = arguments.get(ANSWER_KEY)
            if len(arguments) == 1 and isinstance(inner, Mapping):
                return self._validate_value(dict(inner), prefix="")
            raise

    def read_text(self, text: str) -> T:
        """A plain-text answer that already is a value of the output type, as its JSON (`15`, `true`,
        `{"city": "Paris"}`) or, for a wrapped type, as the answer's JSON. Raises OutputValidationError when it
        is not, and the answer has to be restated."""
        try:
            data = json.loads(text)
        except ValueError as error:
            raise OutputValidationError("the answer is not JSON of the output type") from error
        return self.validate({ANSWER_KEY: data} if self.wrapped else data)

    def as_text(self, value: T) -> str:
        """The text form of an output, kept in `result.answer`: a string as is, numbers and booleans via
        `str`, an Enum member as its value, anything else (models, dataclasses, lists) as compact JSON."""
        if isinstance(value, str):
            return value
        if isinstance(value, enum.Enum):
            return str(value.value)
        if isinstance(value, bool | int | float):
            return str(value)
        return self.adapter.dump_json(value).decode()

    def _validate_value(self, data: Any, *, prefix: str) -> T:
        from pydantic import ValidationError  # loaded already: the adapter is pydantic's

        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            raise OutputValidationError(self._explain(exc, prefix)) from exc

    def _explain(self, exc: ValidationError, prefix: str) -> str:
        problems = validation_problems(exc, whole="answer", wording={"missing": "missing"}, prefix=prefix)
        return (
            "The final answer does not fit the required output:\n" + "\n".join(problems) + "\n"
            f"Give the final answer again with: {describe_parameters(self.parameters)}."
        )


async def run_validators(validators: Iterable[OutputValidator], value: T) -> T:
    """Pass `value` through each validator in order (each may return a replacement, sync or async).

    A validator raising `ModelRetry("why")` becomes OutputValidationError (a DecisionError) telling the model
    why its answer was refused; any other exception is the app's bug and propagates unchanged.
    """
    for validator in validators:
        try:
            result = validator(value)
            if inspect.isawaitable(result):
                result = await result
        except ModelRetry as retry:
            raise OutputValidationError(f"The final answer was refused: {retry}. Fix it and answer again.") from retry
        value = typing.cast(T, result)
    return value


def _is_object_type(output_type: Any) -> bool:
    """Types whose values are JSON objects with named fields: they are the final action's parameters as is."""
    from pydantic import BaseModel
    from typing_extensions import is_typeddict  # knows both typing's and typing_extensions' TypedDict

    if isinstance(output_type, type) and issubclass(output_type, BaseModel):
        return True
    return (isinstance(output_type, type) and dataclasses.is_dataclass(output_type)) or is_typeddict(output_type)


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with every local `$ref` (`#/$defs/...`) replaced by its definition and `$defs` removed.

    Raises TypeError for a recursive definition, which no finite inlining (and no llama.cpp grammar) can express.
    """
    definitions: dict[str, Any] = {**schema.get("definitions", {}), **schema.get("$defs", {})}

    def resolve(node: Any, seen: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [resolve(item, seen) for item in node]
        if not isinstance(node, dict):
            return node
        node = _collapse_single_all_of(node)
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in seen:
                raise TypeError(f"recursive type {name!r}: an output type needs a finite JSON Schema")
            if name not in definitions:
                raise TypeError(f"unresolvable $ref {ref!r} in the output schema")
            siblings = {key: value for key, value in node.items() if key != "$ref"}
            # Sibling keywords (a field's description) refine the shared definition.
            return {**resolve(definitions[name], (*seen, name)), **resolve(siblings, seen)}
        return {key: resolve(value, seen) for key, value in node.items() if key not in ("$defs", "definitions")}

    resolved: dict[str, Any] = resolve(schema, ())
    return resolved


def _collapse_single_all_of(node: dict[str, Any]) -> dict[str, Any]:
    """Older pydantic wraps a described `$ref` as `{"allOf": [{"$ref": ...}], "description": ...}`."""
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        return {**all_of[0], **{key: value for key, value in node.items() if key != "allOf"}}
    return node


def _close_objects(node: Any) -> Any:
    """Mark objects with named properties `additionalProperties: false` (what OpenAI strict mode requires and
    what keeps a grammar from inventing fields), unless the schema already says otherwise."""
    if isinstance(node, list):
        return [_close_objects(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {
        key: (value if key in ("enum", "const", "default", "examples") else _close_objects(value))
        for key, value in node.items()
    }
    if closed.get("type") == "object" and "properties" in closed:
        closed.setdefault("additionalProperties", False)
    return closed


@functools.cache
def _text_spec() -> OutputSpec[str]:
    return OutputSpec._built(str)


def __getattr__(name: str) -> Any:
    if name == "ShortAnswer":
        from pydantic import Field

        short_answer = Annotated[str, Field(max_length=200)]
        globals()[name] = short_answer  # one object, so `output_type is ShortAnswer` holds
        return short_answer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
