"""The conversation a run carries, kept provider-valid: what `result.messages` and sessions hold and what
a later run may send to any OpenAI-compatible endpoint (llama.cpp's server is the pickiest we know).

Be lenient in what you read, strict in what you send: a history from a crash or an app bug (a tool call
without its result, a result without its call, null content, content as a list of parts) is repaired here
rather than sent broken.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentlab.events import Decision, Event, Final, Guardrail, RunStarted, ToolCall, ToolResult

ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
"""The chat roles a conversation may hold."""

INTERRUPTED_RESULT = "Error: this tool call was interrupted and has no result."
"""The tool message that stands in for a result that never arrived."""


def repair_history(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A provider-valid copy of `messages` (OpenAI chat format); the input is not modified.

    - every assistant tool call is answered: a missing result becomes a tool message saying the call was
      interrupted, placed right after the results that did arrive;
    - a tool result with no matching call before it (or a second result for the same call) is dropped;
    - `content: None` (or missing) becomes "" (llama.cpp's server rejects null); a list of text parts is
      joined into one string; tool-call arguments given as objects become JSON strings; an empty
      `tool_calls` list is removed.

    User, system and assistant messages are never dropped or reordered. Idempotent. Raises ValueError for
    a message that is not an object, an unknown role, or a tool call without an id or a function name.
    """
    repaired: list[dict[str, Any]] = []
    unanswered: dict[str, str] = {}  # call id -> tool name, for the latest assistant turn's calls
    for index, original in enumerate(messages):
        message = _normalised(original, index)
        if message["role"] == "tool":
            call_id = message.get("tool_call_id")
            if isinstance(call_id, str) and call_id in unanswered:
                del unanswered[call_id]
                repaired.append(message)
            continue  # an orphan result: no call before it is waiting for it
        repaired += _interrupted_results(unanswered)
        unanswered = {call["id"]: call["function"]["name"] for call in message.get("tool_calls", [])}
        repaired.append(message)
    repaired += _interrupted_results(unanswered)
    return repaired


def decision_exchange_messages(
    thought: str, calls: Sequence[ToolCall], results: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """One step in the provider-valid form a native tool-calling step has, whatever decision format made it.

    A JSON-mode step (the model's `{"thought": ..., "action": ...}` text answered by an "Observation: ..."
    user message) becomes an assistant turn with `tool_calls` and one tool message per call, so a stored
    conversation replays on any endpoint. `results[i]` answers `calls[i]`; calls without a result are marked
    interrupted. With no calls, the step is a plain assistant message holding the thought.
    """
    assistant: dict[str, Any] = {"role": "assistant", "content": thought}
    if not calls:
        return [assistant]
    assistant["tool_calls"] = _wire_calls(calls)
    answers = [
        {"role": "tool", "tool_call_id": call.id, "content": results[i] if i < len(results) else INTERRUPTED_RESULT}
        for i, call in enumerate(calls)
    ]
    return [assistant, *answers]


def _interrupted_results(unanswered: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"role": "tool", "tool_call_id": call_id, "content": INTERRUPTED_RESULT} for call_id in unanswered]


def _normalised(original: Mapping[str, Any], index: int) -> dict[str, Any]:
    """A copy of one message with a known role, string content and well-formed tool calls."""
    if not isinstance(original, Mapping):
        raise ValueError(f"message {index} must be an object with a 'role', got {type(original).__name__}")
    message = dict(original)
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"message {index} has unknown role {role!r}; expected one of {', '.join(sorted(ROLES))}")
    message["content"] = _text_content(message.get("content"))
    if role == "assistant" and "tool_calls" in message:
        calls = [_normalised_call(call, index) for call in message.get("tool_calls") or []]
        if calls:
            message["tool_calls"] = calls
        else:
            del message["tool_calls"]  # some servers reject an empty list
    return message


def _text_content(content: Any) -> Any:
    """String content; a list of text parts joined. A list with non-text parts (an image) is kept as is."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        if all(isinstance(part, Mapping) and part.get("type") == "text" for part in content):
            return "\n".join(str(part.get("text") or "") for part in content)
        return content
    return json.dumps(content)


def _normalised_call(call: Any, index: int) -> dict[str, Any]:
    if not isinstance(call, Mapping) or not isinstance(call.get("function"), Mapping):
        raise ValueError(f"message {index}: a tool call must be an object with a 'function'")
    function = dict(call["function"])
    if not call.get("id") or not function.get("name"):
        raise ValueError(f"message {index}: a tool call needs an 'id' and a function 'name' to be answered")
    arguments = function.get("arguments")
    if not isinstance(arguments, str):
        function["arguments"] = json.dumps(arguments if arguments is not None else {})
    return {**call, "type": "function", "function": function}


def as_text_turns(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A repaired conversation for an endpoint that gets JSON decisions rather than native tool calls (and
    may not show `tool` messages to its model, like llama.cpp's server): each assistant tool call becomes
    the JSON decision text that would have made it, and tool results become one "Observation:" user turn."""
    turns: list[dict[str, Any]] = []
    observations: list[str] = []
    for message in repair_history(messages):
        if message["role"] == "tool":
            observations.append(f"Observation: {message['content']}")
            continue
        if observations:
            turns.append({"role": "user", "content": "\n".join(observations)})
            observations = []
        calls = message.get("tool_calls")
        if not calls:
            turns.append({"role": message["role"], "content": message["content"]})
            continue
        text = "\n".join(
            json.dumps(
                {
                    "thought": message["content"],
                    "action": {"name": call["function"]["name"], "arguments": _arguments(call)},
                },
                ensure_ascii=False,
            )
            for call in calls
        )
        turns.append({"role": "assistant", "content": text})
    if observations:
        turns.append({"role": "user", "content": "\n".join(observations)})
    return turns


def transcript(messages: Iterable[Mapping[str, Any]]) -> str:
    """The user and assistant text of a conversation as plain lines ("User: ...", "Assistant: ..."), for a
    strategy that takes history as context rather than continuing the chat."""
    lines = []
    for message in repair_history(messages):
        if message["role"] in ("user", "assistant") and message["content"].strip():
            lines.append(f"{message['role'].capitalize()}: {message['content'].strip()}")
    return "\n".join(lines)


def with_history(task: str, history: Sequence[Mapping[str, Any]]) -> str:
    """`task` preceded by the conversation so far, when there is one."""
    earlier = transcript(history)
    return f"Conversation so far:\n{earlier}\n\nNow: {task}" if earlier else task


def _arguments(call: Mapping[str, Any]) -> Any:
    raw = call["function"].get("arguments") or "{}"
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def messages_from_events(events: Iterable[Event], run_id: str | None = None) -> list[dict[str, Any]]:
    """The conversation of one run, rebuilt from its events (the run's record): the history it continued,
    the task, each tool-calling step as an assistant turn with its tool results, and the final answer.

    The result is provider-valid whatever decision format the run used, so it can be stored or sent to any
    OpenAI-compatible endpoint: every call is answered (a call without a result is marked interrupted) and
    call ids are unique. `run_id` picks one run's events when a sub-agent's are mixed in (by default the
    run of the first `RunStarted`)."""
    messages: list[dict[str, Any]] = []
    calls: list[ToolCall] = []  # the latest tool-calling step's calls, waiting for their results
    ids: list[str] = []  # their ids in the conversation
    results: dict[int, str] = {}
    used: set[str] = set()

    def answer_calls() -> None:
        messages.extend(
            {"role": "tool", "tool_call_id": call_id, "content": results.get(i, INTERRUPTED_RESULT)}
            for i, call_id in enumerate(ids)
        )
        calls.clear()
        ids.clear()
        results.clear()

    for event in events:
        if run_id is None and isinstance(event, RunStarted):
            run_id = event.run_id
        if event.run_id != run_id:
            continue
        if isinstance(event, RunStarted):
            messages += [*event.history, {"role": "user", "content": event.task}]
        elif isinstance(event, Guardrail) and event.stage == "input" and event.action == "rewrote":
            messages[-1] = {"role": "user", "content": event.value}  # the task the model was given
        elif isinstance(event, Decision) and event.tool_calls:
            answer_calls()
            calls.extend(event.tool_calls)
            ids.extend(_unique_id(call.id, index, used) for index, call in enumerate(calls))
            wire = [ToolCall(call_id, call.name, call.arguments) for call_id, call in zip(ids, calls, strict=True)]
            messages.append({"role": "assistant", "content": event.thought, "tool_calls": _wire_calls(wire)})
        elif isinstance(event, ToolResult):
            # By position: a server may give two calls of one step the same id.
            index = next((i for i, c in enumerate(calls) if c == event.call and i not in results), None)
            if index is not None:
                results[index] = event.output
        elif isinstance(event, Final):
            answer_calls()
            messages.append({"role": "assistant", "content": event.answer})
    answer_calls()
    return messages


def _unique_id(call_id: str, index: int, used: set[str]) -> str:
    candidate = call_id or f"call_{index}"
    while candidate in used:
        candidate = f"{call_id or 'call'}_{len(used)}"
    used.add(candidate)
    return candidate


def _wire_calls(calls: Sequence[ToolCall]) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": json.dumps(call.arguments, ensure_ascii=False)},
        }
        for call in calls
    ]
