"""Script items and the chat-completions payloads built from them (pure functions, no I/O).

A script item is a plain dict so tests stay short and readable; this module validates it (typos in
a test script should fail loudly, not produce a confusing reply) and turns it into OpenAI wire JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentlab.models.openai_compatible import PROBE_NAME  # the server must recognise the client's probe

ScriptItem = dict[str, Any]
"""One scripted reply: `content` and/or `tool_calls` (with `usage`, `finish_reason`), or an HTTP failure
(`status`, `headers`, `body`); `delay` waits that many seconds first, `drop` closes the connection instead.
A streamed reply (the request asked `stream: true`) waits `chunk_delay` seconds between chunks, and with
`break_after` sends only that many chunks before the connection is aborted (a stream that breaks part-way)."""
# A generator of replies for endless runs (benchmarks): (request body, 0-based index) -> item.
# Returning None means "exhausted".
ScriptFn = Callable[[dict[str, Any], int], "ScriptItem | None"]
"""Replies computed per request: `(request body, 0-based index) -> item`, None when exhausted."""
Script = Sequence[ScriptItem] | ScriptFn
"""What a `ScriptedServer` serves: a list of replies in order, or a function of the request."""


_ITEM_KEYS = frozenset(
    {
        "content",
        "tool_calls",
        "usage",
        "status",
        "headers",
        "body",
        "delay",
        "drop",
        "reset",
        "truncate",
        "message",
        "finish_reason",
        "chunk_delay",
        "break_after",
    }
)
_TOOL_CALL_KEYS = frozenset({"name", "arguments", "id"})
_REPLY_KEYS = frozenset({"content", "tool_calls", "usage", "finish_reason", "message", "chunk_delay", "break_after"})
# Kinds of capability probe, for ``ScriptedServer(probe_script={kind: [items]})``.
PROBE_KINDS = frozenset({"tools", "json_schema"})


class ScriptError(ValueError):
    """A script item is malformed or cannot be served with the server's flags (a test bug)."""


def validate_item(item: object) -> ScriptItem:
    """Return ``item`` if well formed, else raise ScriptError naming the problem."""
    if not isinstance(item, dict):
        raise ScriptError(f"script item must be a dict, got {type(item).__name__}: {item!r}")
    unknown = item.keys() - _ITEM_KEYS
    if unknown:
        raise ScriptError(f"unknown script item keys {sorted(unknown)} in {item!r}")
    content = item.get("content")
    if content is not None and not isinstance(content, str):
        raise ScriptError(f"'content' must be a str, got {content!r}")
    _validate_tool_calls(item.get("tool_calls"))
    if "status" in item:
        status = item["status"]
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ScriptError(f"'status' must be an int HTTP status, got {status!r}")
        clash = item.keys() & _REPLY_KEYS
        if clash:
            raise ScriptError(f"'status' item cannot also carry {sorted(clash)}; use 'body' instead")
    elif "body" in item or "headers" in item:
        raise ScriptError("'body'/'headers' are only meaningful together with 'status'")
    if not isinstance(item.get("headers", {}), dict):
        raise ScriptError(f"'headers' must be a dict, got {item['headers']!r}")
    delay = item.get("delay", 0)
    if isinstance(delay, bool) or not isinstance(delay, int | float) or delay < 0:
        raise ScriptError(f"'delay' must be a number >= 0, got {delay!r}")
    for flag in ("drop", "reset"):
        if not isinstance(item.get(flag, False), bool):
            raise ScriptError(f"'{flag}' must be a bool, got {item[flag]!r}")
    chunk_delay = item.get("chunk_delay", 0)
    if isinstance(chunk_delay, bool) or not isinstance(chunk_delay, int | float) or chunk_delay < 0:
        raise ScriptError(f"'chunk_delay' must be a number >= 0 (seconds between streamed chunks), got {chunk_delay!r}")
    break_after = item.get("break_after")
    if break_after is not None and (
        isinstance(break_after, bool) or not isinstance(break_after, int) or break_after < 0
    ):
        raise ScriptError(
            f"'break_after' must be an int >= 0 (streamed chunks sent before the break), got {break_after!r}"
        )
    truncate = item.get("truncate", 0)
    if isinstance(truncate, bool) or not isinstance(truncate, int) or truncate < 0:
        raise ScriptError(f"'truncate' must be an int >= 0 (bytes of the body to send), got {truncate!r}")
    message = item.get("message")
    if message is not None and (not isinstance(message, dict) or item.keys() & {"content", "tool_calls"}):
        raise ScriptError(f"'message' must be a dict sent verbatim, without 'content'/'tool_calls' beside it: {item!r}")
    if not isinstance(item.get("usage", {}), dict):
        raise ScriptError(f"'usage' must be a dict, got {item['usage']!r}")
    if not isinstance(item.get("finish_reason", ""), str):
        raise ScriptError(f"'finish_reason' must be a str, got {item['finish_reason']!r}")
    return item


def _validate_tool_calls(calls: object) -> None:
    if calls is None:
        return
    if not isinstance(calls, list) or not calls:
        raise ScriptError(f"'tool_calls' must be a non-empty list, got {calls!r}")
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise ScriptError(f"each tool call needs a str 'name', got {call!r}")
        unknown = call.keys() - _TOOL_CALL_KEYS
        if unknown:
            raise ScriptError(f"unknown tool call keys {sorted(unknown)} in {call!r}")
        if "id" in call and not isinstance(call["id"], str):
            raise ScriptError(f"tool call 'id' must be a str, got {call['id']!r}")


# --- probes -------------------------------------------------------------------------------------


def probe_kind(body: dict[str, Any]) -> str | None:
    """'tools' or 'json_schema' when the request is a capability probe, else None."""
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            fn = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(fn, dict) and fn.get("name") == PROBE_NAME:
                return "tools"
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        schema = fmt.get("json_schema")
        if isinstance(schema, dict) and schema.get("name") == PROBE_NAME:
            return "json_schema"
    return None


def probe_item(
    kind: str,
    *,
    native_tools: bool,
    json_schema: bool,
    body: dict[str, Any] | None = None,
    echo_tool_results: bool = True,
) -> ScriptItem:
    """The reply a real endpoint with (or without) the capability would give to a probe.

    An endpoint lacking the capability typically ignores the unknown request field and just
    chats, hence plain text. A capable model repeats what an earlier `tool` message said (the
    client probes that tool results reach the model), so the reply echoes the last tool message;
    with ``echo_tool_results=False`` it calls the tool without the code, like an endpoint that
    emits tool calls but never shows the model their results.
    """
    if kind == "tools" and native_tools:
        arguments: dict[str, Any] = {"ok": True}
        seen = [m.get("content") for m in (body or {}).get("messages", []) if m.get("role") == "tool"]
        if echo_tool_results and seen and isinstance(seen[-1], str):
            arguments["code"] = seen[-1].rsplit(" ", 1)[-1]
        return {"tool_calls": [{"name": PROBE_NAME, "arguments": arguments}]}
    if kind == "json_schema" and json_schema:
        return {"content": '{"ok": true}'}
    return {"content": "pong"}


# --- completions --------------------------------------------------------------------------------


@dataclass(slots=True)
class Completion:
    """One assistant turn, already in wire-ready pieces."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str = "stop"
    usage: dict[str, Any] = field(default_factory=dict)
    raw_message: dict[str, Any] | None = None  # sent verbatim instead of content/tool_calls (odd shapes)


def build_completion(item: ScriptItem, request: dict[str, Any], next_call_id: Callable[[], str]) -> Completion:
    """Turn a validated reply item into a Completion (usage estimated where not given)."""
    calls = [
        {
            "id": call.get("id") or next_call_id(),
            "type": "function",
            "function": {"name": call["name"], "arguments": _encode_arguments(call.get("arguments", {}))},
        }
        for call in item.get("tool_calls") or ()
    ]
    content = item.get("content")
    if content is None and not calls:
        content = ""  # e.g. a bare {"delay": 1.0} item still yields a valid (empty) reply
    finish = item.get("finish_reason") or ("tool_calls" if calls else "stop")
    usage = _usage(item.get("usage") or {}, request, content, calls)
    return Completion(content, calls, finish, usage, item.get("message"))


def _encode_arguments(arguments: object) -> str:
    # Strings pass verbatim so tests can feed deliberately malformed JSON to the client.
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _usage(
    given: dict[str, Any], request: dict[str, Any], content: str | None, calls: list[dict[str, Any]]
) -> dict[str, Any]:
    completion_chars = len(content or "") + sum(
        len(c["function"]["name"]) + len(c["function"]["arguments"]) for c in calls
    )
    usage: dict[str, Any] = {
        "prompt_tokens": max(1, _prompt_chars(request) // 4),
        "completion_tokens": max(1, completion_chars // 4),
    }
    usage.update(given)  # extra keys (e.g. prompt_tokens_details) pass through untouched
    usage.setdefault("total_tokens", usage["prompt_tokens"] + usage["completion_tokens"])
    return usage


def _prompt_chars(request: dict[str, Any]) -> int:
    total = 0
    messages = request.get("messages")
    for msg in messages if isinstance(messages, list) else ():
        if not isinstance(msg, dict):
            continue
        content = msg.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text") or "") for p in content if isinstance(p, dict))
        for call in msg.get("tool_calls") or ():
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += len(str(fn.get("arguments") or ""))
    return total


def _message(c: Completion) -> dict[str, Any]:
    if c.raw_message is not None:
        return c.raw_message
    msg: dict[str, Any] = {"role": "assistant", "content": c.content}
    if c.tool_calls:
        msg["tool_calls"] = c.tool_calls
    return msg


def completion_json(c: Completion, *, completion_id: str, model: str, created: int) -> dict[str, Any]:
    """A scripted completion as an OpenAI `chat.completion` response body."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": _message(c), "finish_reason": c.finish_reason, "logprobs": None}],
        "usage": c.usage,
    }


def stream_chunks(
    c: Completion, *, completion_id: str, model: str, created: int, include_usage: bool, piece: int = 16
) -> Iterator[dict[str, Any]]:
    """The chat.completion.chunk objects a streaming endpoint would send for ``c``."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
        if include_usage:
            out["usage"] = None  # OpenAI sends null usage on every chunk but the last
        return out

    yield chunk({"role": "assistant", "content": ""})
    text = c.content or ""
    for start in range(0, len(text), piece):
        yield chunk({"content": text[start : start + piece]})
    for index, call in enumerate(c.tool_calls):
        fn = call["function"]
        opening = {
            "index": index,
            "id": call["id"],
            "type": "function",
            "function": {"name": fn["name"], "arguments": ""},
        }
        yield chunk({"tool_calls": [opening]})
        args = fn["arguments"]
        for start in range(0, len(args), piece):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": args[start : start + piece]}}]})
    yield chunk({}, c.finish_reason)
    if include_usage:
        yield {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": c.usage,
        }


def error_json(status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    """An OpenAI-style error body, which the openai client turns into a readable exception message."""
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
