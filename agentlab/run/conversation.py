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

from agentlab.events import ToolCall

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
    assistant["tool_calls"] = [
        {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": json.dumps(call.arguments)}}
        for call in calls
    ]
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
