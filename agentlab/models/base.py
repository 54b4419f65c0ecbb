"""The model protocol: one async call from a request to a response, plus what the endpoint can do.

Models know nothing about agents or tools beyond the JSON Schemas handed to them in a request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from agentlab.events import Usage

DecisionFormat = Literal["tools", "json_schema", "json"]
"""How a decision is asked for: native tool calls, JSON constrained by a schema, or plain JSON text."""

RetryCallback = Callable[[int, str, float], None]
"""Called as (attempt, error, wait_seconds) before a transient failure is retried."""


@dataclass(frozen=True)
class ReplyDelta:
    """A piece of a reply as it streams: text, or a piece of one tool call, or a reset.

    Attributes:
        text: More of the reply's text.
        call_index: The position of the tool call this piece belongs to (None for text).
        call_id: That call's id, when the endpoint sent it in this piece.
        name: That call's tool name, when the endpoint sent it in this piece.
        arguments: More of that call's arguments (JSON text, possibly cut mid-token).
        reset: The stream broke and the call is being retried: every earlier piece is void.
    """

    text: str = ""
    call_index: int | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str = ""
    reset: bool = False


DeltaCallback = Callable[[ReplyDelta], None]
"""Called with each piece of a streamed reply, in order, on the caller's event loop."""


SchemaDialect = Literal["json_schema", "json_object"]
"""How `response_format` carries a schema: OpenAI's `json_schema`, or `json_object` + `schema`
(llama-cpp-python's server, which rejects the former)."""


@dataclass(frozen=True)
class Capabilities:
    """What a model endpoint supports, as found by probing it (or as configured).

    Attributes:
        native_tools: Tool calls are emitted and tool results reach the model.
        json_schema: Replies can be constrained to a JSON Schema.
        schema_dialect: How `response_format` carries that schema.
    """

    native_tools: bool  # tool calls are emitted AND tool results reach the model
    json_schema: bool
    schema_dialect: SchemaDialect = "json_schema"

    def best_format(self) -> DecisionFormat:
        """The most reliable decision format: native tools, else schema-constrained JSON, else plain JSON."""
        if self.native_tools:
            return "tools"
        if self.json_schema:
            return "json_schema"
        return "json"


@dataclass
class ModelRequest:
    """One chat request, in OpenAI's message format.

    Attributes:
        messages: The chat messages.
        tools: OpenAI tool schemas, for native tool calls.
        tool_choice: `"auto"`, `"required"` or a named tool; sent with `tools`.
        response_schema: Constrain the reply to this JSON Schema.
        schema_name: The schema's name in `response_format`.
        max_tokens: Completion token limit; the model's default when None.
        temperature: Sampling temperature; the model's default when None.
    """

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None  # OpenAI tool schemas (native tool calls)
    tool_choice: str | dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None  # constrain the reply to this JSON Schema
    schema_name: str = "decision"
    max_tokens: int | None = None
    temperature: float | None = None


@dataclass(frozen=True)
class RawToolCall:
    """A tool call as the model emitted it: arguments are unparsed text, possibly malformed."""

    id: str
    name: str
    arguments: str


@dataclass
class ModelResponse:
    """A model's reply: text and/or raw tool calls, with the tokens it used."""

    content: str | None
    tool_calls: list[RawToolCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finish_reason: str | None = None
    # What the endpoint sent that could not be read with a clear meaning (e.g. content that is neither
    # text nor a list of text parts), said so that the model can be told; the reply is then unusable.
    malformed: str | None = None


class ModelError(RuntimeError):
    """The model endpoint failed for good (after retries, or with a non-retryable error)."""


@runtime_checkable
class Model(Protocol):
    """What the loop needs from a model: a name, one async chat call, and its capabilities.

    Any object with these members works; `OpenAIModel` and `LocalModel` are the two shipped.
    """

    name: str

    async def complete(self, request: ModelRequest, on_retry: RetryCallback | None = None) -> ModelResponse:
        """Send one chat request; raise ModelError when it cannot be answered. A model that can stream
        may also accept an optional `on_delta` (see `complete_with_deltas`)."""
        ...

    async def capabilities(self) -> Capabilities:
        """What the endpoint supports; may probe it once and remember. A model whose probes can be
        retried may also accept an optional `on_retry` (see `probe_capabilities`)."""
        ...


async def probe_capabilities(model: Model, on_retry: RetryCallback | None = None) -> Capabilities:
    """`model.capabilities(on_retry=...)` when the model reports its probes' retries, else
    `model.capabilities()`: models written against the protocol's plain signature keep working."""
    if _accepts(model.capabilities, "on_retry"):
        return await model.capabilities(on_retry=on_retry)  # type: ignore[call-arg]
    return await model.capabilities()


def _accepts(method: Any, parameter: str) -> bool:
    import inspect

    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):  # builtins and C callables have no signature to read
        return False


async def complete_with_deltas(
    model: Model, request: ModelRequest, on_retry: RetryCallback | None, on_delta: DeltaCallback | None
) -> ModelResponse:
    """`model.complete(request, on_retry, on_delta=on_delta)` when there is an `on_delta` and the model takes
    one, else `model.complete(request, on_retry)`: the same call either way (the whole reply is the same
    `ModelResponse`), and a model written against the plain signature keeps working (it just sends no deltas)."""
    if on_delta is not None and _accepts(model.complete, "on_delta"):
        return await model.complete(request, on_retry, on_delta=on_delta)  # type: ignore[call-arg]
    return await model.complete(request, on_retry)
