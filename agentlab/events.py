"""Events of a run: plain typed records that the loop yields and renderers, traces and callers consume.

The loop never prints; whoever drains the event stream decides what to show or store.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["done", "max_steps", "budget", "stalled", "blocked", "error", "paused"]
"""How a run ended: `done` (an answer), `max_steps`, `budget` (tokens, wall time, tool calls or cost),
`stalled`, `blocked` (a guardrail tripped), `error`, or `paused` (a tool call waits for a person's approval;
`Agent.resume` goes on)."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens counted by the model endpoint; usages add up with `+`."""

    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool invocation chosen by the model."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Event:
    """Base of every event; `kind` names the event in traces.

    `run_id` names the run that produced the event (set by the loop as the event leaves it) and
    `parent_run_id` the run that started that one, for a sub-agent's events passed through its parent's
    stream (`Agent.as_tool`).

    Attributes:
        kind: The event's name in traces (`run_started`, `model_call`, ...).
        time: When it happened (Unix time).
    """

    kind: str = field(init=False, default="event")
    time: float = field(init=False, default_factory=time.time)
    run_id: str = field(default="", kw_only=True)
    parent_run_id: str | None = field(default=None, kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data, as written to a trace line."""
        return asdict(self)


@dataclass(slots=True)
class RunStarted(Event):
    """A run began.

    Attributes:
        task: The task as given to `Agent.run`.
        strategy: The strategy's name.
        model: The model's name.
        tools: The names of the tools offered, including the strategy's own.
        tool_schemas: Those tools' OpenAI function schemas.
    """

    task: str
    strategy: str
    model: str
    tools: list[str]
    # The tools' OpenAI schemas, so a trace alone can become fine-tuning data (agentlab.export).
    tool_schemas: list[dict[str, Any]] = field(default_factory=list)
    # The conversation this run continues (OpenAI chat format, repaired), so the events alone rebuild it.
    history: list[dict[str, Any]] = field(default_factory=list)
    kind: str = field(init=False, default="run_started")


@dataclass(slots=True)
class ModelCall(Event):
    """One request to the model finished.

    Attributes:
        step: The step the request belongs to.
        messages: How many messages the request carried.
        request_chars: The request's size in characters.
        usage: The tokens this call used.
        duration: Seconds the call took, retries included.
        decision_format: How the decision was asked for (`tools`, `json_schema` or `json`).
        response: The reply as the model gave it (content, raw tool calls, finish reason), so that a resumed
            run replays it instead of asking again.
    """

    step: int
    messages: int  # how many messages the request carried (the request itself may be large)
    request_chars: int
    usage: Usage
    duration: float
    decision_format: str
    response: dict[str, Any] | None = None
    kind: str = field(init=False, default="model_call")


@dataclass(slots=True)
class ModelRetry(Event):
    """The model endpoint failed transiently and the call is being retried."""

    attempt: int
    error: str
    wait: float
    kind: str = field(init=False, default="model_retry")


@dataclass(slots=True)
class ModelFallback(Event):
    """The run moved to the next model of a `FallbackModel`: the previous one failed for good (after its
    retries) or its replies stayed unusable after the repair round."""

    step: int
    from_model: str
    to_model: str
    reason: str
    kind: str = field(init=False, default="model_fallback")


@dataclass(slots=True)
class Decision(Event):
    """The model's reply, read as a decision: tool calls, or a final answer.

    Attributes:
        step: The step that decided.
        thought: The model's reasoning, when it gave any.
        tool_calls: The tools to run, in order (run concurrently).
        final_answer: The answer, when the model chose to finish.
    """

    step: int
    thought: str
    tool_calls: list[ToolCall]
    final_answer: str | None
    kind: str = field(init=False, default="decision")


@dataclass(frozen=True, slots=True)
class PendingCall:
    """A tool call that waits for a person's approval; approve or deny it by `id` in `Agent.resume`."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(slots=True)
class Delta(Event):
    """Base of the events a run yields only when asked for them (`astream(task, deltas=True)`): pieces of a
    reply as it streams. They are never written to a trace: the `ModelCall` and `Decision` that follow
    carry the whole reply."""

    step: int


@dataclass(slots=True)
class TextDelta(Delta):
    """More of the reply's text, as it arrives.

    Attributes:
        text: The new text; the pieces of one part concatenate to that part's final text.
        part: `content` (a plain-text reply: a thought before tool calls, or the answer), `thought` (the
            thought of a JSON decision) or `answer` (the final answer, read from the final action's arguments).
    """

    text: str
    part: str = "content"
    kind: str = field(init=False, default="text_delta")


@dataclass(slots=True)
class ToolCallDelta(Delta):
    """More of a tool call, as it arrives (the final answer streams as text or output deltas instead).

    Attributes:
        call_index: Which call of the reply this piece belongs to (0 for the first).
        name: The tool's name.
        arguments_delta: More of the call's arguments, as JSON text (cut anywhere, even mid-string).
    """

    call_index: int
    name: str
    arguments_delta: str
    kind: str = field(init=False, default="tool_call_delta")


@dataclass(slots=True)
class OutputDelta(Delta):
    """The typed output so far (JSON form), as the final answer streams: the fields complete so far, the
    last one possibly cut short; validated against the output type where the type allows a partial value.
    The output of the `Final` event is the validated whole."""

    partial: Any
    kind: str = field(init=False, default="output_delta")


@dataclass(slots=True)
class StreamReset(Delta):
    """The reply that was streaming broke off and is asked again: drop the deltas of this step shown so
    far; the retried reply's deltas follow."""

    reason: str = ""
    kind: str = field(init=False, default="stream_reset")


@dataclass(slots=True)
class ParseError(Event):
    """The model's reply could not be turned into a decision; it is told so and asked again."""

    step: int
    error: str
    raw: str
    kind: str = field(init=False, default="parse_error")


@dataclass(slots=True)
class ToolStarted(Event):
    """A tool call began."""

    step: int
    call: ToolCall
    kind: str = field(init=False, default="tool_started")


@dataclass(slots=True)
class ToolResult(Event):
    """A tool call finished; `output` is what the model will see.

    Attributes:
        step: The step the call belongs to.
        call: The call as the model made it.
        ok: False when the tool failed, timed out, was denied or got invalid arguments.
        output: The observation (an error message when not ok), capped in size.
        duration: Seconds the call took.
    """

    step: int
    call: ToolCall
    ok: bool
    output: str
    duration: float
    kind: str = field(init=False, default="tool_result")


@dataclass(slots=True)
class Note(Event):
    """Something the loop or a strategy wants the reader of a trace to know (a nudge, a phase change)."""

    step: int
    text: str
    data: dict[str, Any] = field(default_factory=dict)
    kind: str = field(init=False, default="note")


@dataclass(slots=True)
class RunWarning(Event):
    """Something went wrong beside the run, which goes on (its trace could not be written, say); said once."""

    text: str
    kind: str = field(init=False, default="warning")


@dataclass(slots=True)
class Guardrail(Event):
    """A guardrail rewrote a value or tripped (a guard that passes is not recorded).

    Attributes:
        step: The step it happened in (0 for the task's input guardrails).
        stage: `input` (the task), `output` (the final answer) or `tool` (a tool call's arguments).
        guard: The guard's name.
        action: `rewrote` or `tripped` (a trip ends the run with status `blocked`).
        reason: Why it tripped.
        value: The replacement, when it rewrote (the task, the output in JSON form, or the arguments).
        tool: The tool whose guard it was, for stage `tool`.
    """

    step: int
    stage: Literal["input", "output", "tool"]
    guard: str
    action: Literal["rewrote", "tripped"]
    reason: str = ""
    value: Any = None
    tool: str | None = None
    kind: str = field(init=False, default="guardrail")


@dataclass(slots=True)
class Final(Event):
    """The run produced its answer."""

    step: int
    answer: str
    output: Any = None  # the typed output in JSON form (None for plain-text output)
    kind: str = field(init=False, default="final")


@dataclass(slots=True)
class RunFinished(Event):
    """The run ended; always the last event of a run.

    Attributes:
        status: `done`, `max_steps`, `budget`, `stalled`, `blocked`, `error` or `paused`.
        answer: The answer, or the best one so far when the run stopped early (never for `blocked`).
        steps: How many steps ran.
        usage: The tokens used by the whole run.
        duration: Seconds the run took.
        error: What went wrong or why the run stopped early (which limit, which guardrail and why).
        cost: What the run's model calls cost, from the agent's price table (None without one).
    """

    status: Status
    answer: str | None
    steps: int
    usage: Usage
    duration: float
    error: str | None = None
    output: Any = None  # the typed output in JSON form (None for plain-text output or no answer)
    cost: float | None = None
    kind: str = field(init=False, default="run_finished")


@dataclass(slots=True)
class Paused(Event):
    """The run stopped to wait for approvals: these calls need a person's yes or no (`Agent.resume`)."""

    step: int
    pending: list[PendingCall]
    kind: str = field(init=False, default="paused")


@dataclass(slots=True)
class Resumed(Event):
    """A stopped run (paused, crashed or killed) goes on from its recorded events.

    Attributes:
        approvals: The decisions given for waiting calls, by call id (True: run it; False: deny it).
        replayed: How many recorded model replies were replayed instead of being asked again.
    """

    approvals: dict[str, bool] = field(default_factory=dict)
    replayed: int = 0
    kind: str = field(init=False, default="resumed")


@dataclass(slots=True)
class Compacted(Event):
    """The conversation was made shorter before a request, to stay within the model's context window.

    Attributes:
        step: The step whose request was compacted.
        action: What was done: `previews` (old tool outputs shortened), `summary` (oldest turns summarised
            by the model) or `dropped` (oldest whole turns dropped, when a summary failed).
        tokens_before: The request's estimated tokens before.
        tokens_after: And after.
        window: The context window it had to fit.
    """

    step: int
    action: str
    tokens_before: int
    tokens_after: int
    window: int
    # A summary the model wrote this time ("" when asking for one failed); None when none was asked for.
    summary: str | None = None
    kind: str = field(init=False, default="compacted")


def event_from_dict(data: dict[str, Any]) -> Event:
    """An event rebuilt from its JSON form (`Event.to_dict`, a trace line, a run store row); KeyError for an
    unknown kind."""
    cls = _EVENT_KINDS[data["kind"]]
    values: dict[str, Any] = {}
    for name, spec in cls.__dataclass_fields__.items():
        if not spec.init or name not in data:
            continue
        value = data[name]
        if name == "usage" and isinstance(value, dict):
            value = Usage(value.get("prompt_tokens", 0), value.get("completion_tokens", 0))
        elif name == "call" and isinstance(value, dict):
            value = ToolCall(**value)
        elif name == "tool_calls" and isinstance(value, list):
            value = [ToolCall(**call) for call in value]
        elif name == "pending" and isinstance(value, list):
            value = [PendingCall(**call) for call in value]
        values[name] = value
    event = cls(**values)
    event.time = data.get("time", event.time)
    return event


def _event_kinds() -> dict[str, type[Event]]:
    kinds: dict[str, type[Event]] = {}
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop()
        kinds[str(cls.__dataclass_fields__["kind"].default)] = cls
        pending += cls.__subclasses__()
    return kinds


class _Kinds(dict[str, type[Event]]):
    """The event classes by kind, found when first asked (so kinds defined after this module count too)."""

    def __missing__(self, kind: str) -> type[Event]:
        self.update(_event_kinds())
        if kind not in self:
            raise KeyError(f"unknown event kind {kind!r}")
        return self[kind]


_EVENT_KINDS = _Kinds()
