"""Resuming a run from its recorded events: the run is driven again from the start through the same loop
and strategy, with the recorded model replies served instead of new requests and the recorded tool results
instead of new calls, until the record runs out; then it goes on for real.

This needs no code of any strategy: a strategy is a function of the replies and observations it is given,
so feeding it the recorded ones rebuilds its state exactly. The events the replay produces again are
recognised (`Replay.seen`) and neither stored nor yielded a second time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from agentlab.events import (
    Compacted,
    Decision,
    Event,
    ModelCall,
    Paused,
    Resumed,
    RunFinished,
    RunStarted,
    ToolCall,
    ToolResult,
    ToolStarted,
    Usage,
    event_from_dict,
)
from agentlab.models.base import ModelRequest, ModelResponse, RawToolCall
from agentlab.tools.output import ToolOutput
from agentlab.tools.running import approval_value

INTERRUPTED = (
    "Interrupted: this call of tool '{name}' started but the run stopped before it returned, so whether it "
    "took effect is unknown. It was not run again. Check before repeating it, or continue without it."
)
DENIED = "Denied: the user did not approve calling tool '{name}'. Do not retry this call."
# Fields that differ between a run and its replay without the event meaning anything else.
_VOLATILE = frozenset({"time", "duration", "run_id", "parent_run_id"})
_RESUMABLE = frozenset({None, "paused"})


class ResumeError(ValueError):
    """The run cannot be resumed: it is unknown, it already ended, or its record does not fit this agent."""


def response_record(response: ModelResponse) -> dict[str, Any]:
    """A reply in the JSON form a `ModelCall` event keeps, for replay."""
    return {
        "content": response.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in response.tool_calls],
        "finish_reason": response.finish_reason,
        "malformed": response.malformed,
    }


def response_from_record(record: dict[str, Any], usage: Usage) -> ModelResponse:
    """The reply a `ModelCall` event recorded (see `response_record`)."""
    calls = [RawToolCall(str(c["id"]), str(c["name"]), str(c["arguments"])) for c in record.get("tool_calls") or []]
    return ModelResponse(record.get("content"), calls, usage, record.get("finish_reason"), record.get("malformed"))


@dataclass
class Recording:
    """What the events of a stopped run say: enough to start it again and to replay it.

    Attributes:
        events: The run's recorded events, without the ends of earlier attempts (`paused`, `run_finished`).
        task, history, strategy, tools: From its `RunStarted` (tools: the names of those offered).
        replies: The recorded model replies in order, with how many messages each request carried.
        results: Recorded tool outputs by (step, position of the call in its step).
        started: Calls that started, by (step, position).
        approvals: Decisions given when it was resumed before, by call id.
        call_ids: The ids of the tool calls its model made (what approvals may name).
    """

    run_id: str
    task: str
    history: list[dict[str, Any]]
    strategy: str
    tools: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    replies: list[tuple[int, ModelResponse]] = field(default_factory=list)
    results: dict[tuple[int, int], ToolOutput] = field(default_factory=dict)
    started: set[tuple[int, int]] = field(default_factory=set)
    approvals: dict[str, bool] = field(default_factory=dict)
    call_ids: set[str] = field(default_factory=set)  # of every tool call the run's model made
    signatures: Counter[str] = field(default_factory=Counter)
    summaries: list[str] = field(default_factory=list)  # summaries compaction asked the model for, in order


def read_recording(run_id: str, rows: list[dict[str, Any]]) -> Recording:
    """The recording of `run_id` from its stored events (a run store's rows); ResumeError when the run ended
    for good (only a paused run, or one that never finished, can be resumed)."""
    events = [event_from_dict(row) for row in rows if not str(row.get("kind", "")).endswith("_delta")]
    begin = next((e for e in events if isinstance(e, RunStarted)), None)
    if begin is None:
        raise ResumeError(f"run {run_id!r} has no recorded start; it cannot be resumed")
    ends = [e for e in events if isinstance(e, RunFinished | Resumed)]
    status = ends[-1].status if ends and isinstance(ends[-1], RunFinished) else None
    if status not in _RESUMABLE:
        raise ResumeError(f"run {run_id!r} already ended ({status}); only a paused or interrupted run can be resumed")
    recording = Recording(run_id, begin.task, list(begin.history), begin.strategy, list(begin.tools))
    recording.events = [e for e in events if not isinstance(e, RunFinished | Paused)]
    calls: dict[int, list[ToolCall]] = {}
    for event in recording.events:
        recording.signatures[signature(event)] += 1
        if isinstance(event, ModelCall) and event.response is not None:
            recording.replies.append((event.messages, response_from_record(event.response, event.usage)))
        elif isinstance(event, Decision):
            calls[event.step] = list(event.tool_calls)
            recording.call_ids.update(call.id for call in event.tool_calls)
        elif isinstance(event, ToolStarted | ToolResult):
            position = _position(calls.get(event.step, []), event.call, event.step, recording, event)
            if position is None:
                continue
            key = (event.step, position)
            if isinstance(event, ToolStarted):
                recording.started.add(key)
            else:
                recording.results[key] = ToolOutput(event.ok, event.output, None if event.ok else "exception")
        elif isinstance(event, Resumed):
            recording.approvals.update(event.approvals)
        elif isinstance(event, Compacted) and event.summary is not None:
            recording.summaries.append(event.summary)
    return recording


def _position(calls: list[ToolCall], call: ToolCall, step: int, recording: Recording, event: Event) -> int | None:
    """The position of `call` in its step: the first equal call not yet matched by an event of this kind
    (a server may give two calls of one step the same id)."""
    taken = recording.results if isinstance(event, ToolResult) else recording.started
    for index, candidate in enumerate(calls):
        if candidate == call and (step, index) not in taken:
            return index
    return None


def signature(event: Event) -> str:
    """What identifies an event between a run and its replay (its content without times and durations)."""
    data = {k: v for k, v in event.to_dict().items() if k not in _VOLATILE}
    return json.dumps(data, sort_keys=True, default=str)


class Replay:
    """A resumed run's record, consumed as the loop drives the run again."""

    def __init__(self, recording: Recording, approvals: dict[str, bool] | None = None) -> None:
        self.recording = recording
        for call_id, decision in (approvals or {}).items():
            approval_value(decision, f"the approval for call {call_id!r} is")
            if call_id not in recording.call_ids:  # a typo would leave the call waiting, silently
                raise ResumeError(f"run {recording.run_id!r} has no tool call {call_id!r} to approve or deny")
        self.approvals = {**recording.approvals, **(approvals or {})}
        self._replies = list(recording.replies)
        self._summaries = list(recording.summaries)
        self._unseen = Counter(recording.signatures)

    @property
    def replaying(self) -> bool:
        """Whether recorded replies remain to be served."""
        return bool(self._replies)

    def reply(self, request: ModelRequest) -> ModelResponse | None:
        """The next recorded reply, or None when the record is used up (ask the model). ResumeError when the
        replayed request is not the one recorded (the agent's strategy or tools differ from the run's)."""
        if not self._replies:
            return None
        messages, response = self._replies.pop(0)
        if messages != len(request.messages):
            raise ResumeError(
                f"the resumed run does not follow its record (a request of {len(request.messages)} messages where "
                f"{messages} were recorded): resume it with the agent that started it"
            )
        return response

    def summary(self) -> str | None:
        """The next summary compaction recorded ("" for one that failed), or None when none is left."""
        return self._summaries.pop(0) if self._summaries else None

    def outcome(self, step: int, position: int, call: ToolCall, idempotent: bool) -> ToolOutput | None:
        """The recorded output of a call, or the note that it was interrupted; None when it should run."""
        key = (step, position)
        if key in self.recording.results:
            return self.recording.results[key]
        if key in self.recording.started and not idempotent:
            return ToolOutput(False, INTERRUPTED.format(name=call.name), "exception")
        return None

    def seen(self, event: Event) -> bool:
        """Whether `event` was recorded already (then it is a replay's, and is neither stored nor yielded)."""
        key = signature(event)
        if self._unseen[key] <= 0:
            return False
        self._unseen[key] -= 1
        return True


def denied(call: ToolCall) -> ToolOutput:
    """The observation for a call a person refused."""
    return ToolOutput(False, DENIED.format(name=call.name), "denied")
