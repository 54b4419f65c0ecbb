"""Folding a streamed chat completion back into one reply.

A streamed reply arrives as `chat.completion.chunk`s; `StreamedReply` hands each piece on as a `ReplyDelta`
and, at the end, gives the same completion shape a non-streamed request returns, so one reader turns
either into a `ModelResponse` (and traces, budgets and parsing cannot tell them apart).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentlab.models.base import ReplyDelta

CHARS_PER_TOKEN = 4  # for a usage estimate when the server sends none (a rough, conventional ratio)


class StreamBroken(Exception):
    """The connection failed part-way through a streamed reply: a transient fault, retried like a 502."""


def _get(value: Any, name: str) -> Any:
    """`value.name` or `value[name]`: the openai client builds chunks without validation, so odd servers
    leave plain dicts (or None) where objects were expected."""
    if isinstance(value, dict):
        return value.get(name)
    return getattr(value, name, None)


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""


class StreamedReply:
    """The pieces of one streamed reply so far; `add` each chunk, then take `completion()`."""

    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None
        self.pieces = 0  # chunks that carried text or arguments: about one token each on real servers

    def add(self, chunk: Any) -> list[ReplyDelta]:
        """Take one chunk; return the pieces of the reply it carried, in order."""
        usage = _get(chunk, "usage")
        if usage is not None:
            self.usage = usage  # OpenAI sends it on a last chunk without choices (stream_options.include_usage)
        choices = _get(chunk, "choices")
        if not isinstance(choices, list) or not choices:
            return []
        choice = choices[0]
        finish = _get(choice, "finish_reason")
        if isinstance(finish, str):
            self.finish_reason = finish
        delta = _get(choice, "delta")
        if delta is None:
            return []
        pieces: list[ReplyDelta] = []
        text = _get(delta, "content")
        if isinstance(text, str) and text:
            self.content.append(text)
            pieces.append(ReplyDelta(text=text))
        calls = _get(delta, "tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            pieces.append(self._add_call(call, position))
        self.pieces += len(pieces)
        return pieces

    def _add_call(self, call: Any, position: int) -> ReplyDelta:
        index = _get(call, "index")
        index = index if isinstance(index, int) and not isinstance(index, bool) else len(self.calls) + position
        known = self.calls.setdefault(index, _Call())
        call_id, function = _get(call, "id"), _get(call, "function")
        name, arguments = _get(function, "name"), _get(function, "arguments")
        name = name if isinstance(name, str) and name else None
        arguments = arguments if isinstance(arguments, str) else ""
        if isinstance(call_id, str) and call_id:
            known.id = call_id
        if name:
            known.name += name
        known.arguments += arguments
        return ReplyDelta(call_index=index, call_id=call_id or None, name=name, arguments=arguments)

    def completion(self, prompt_chars: int) -> dict[str, Any]:
        """The reply in the shape of a non-streamed `chat.completion`; usage as the server counted it, else
        estimated (`prompt_chars` / 4 prompt tokens, one completion token per streamed piece)."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) if self.content else None}
        if self.calls:
            message["tool_calls"] = [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for _, call in sorted(self.calls.items())
            ]
        usage = self.usage
        if usage is None:
            usage = {"prompt_tokens": prompt_chars // CHARS_PER_TOKEN, "completion_tokens": self.pieces}
        return {
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": usage,
        }
