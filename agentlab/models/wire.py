"""The chat-completions wire format, spoken without the `openai` client's per-call work.

`client.chat.completions.create` walks every message of the growing conversation through its typed dicts
on each call and builds pydantic models of every reply: most of a step's cost. agentlab builds its
messages itself, so it sends a body it encoded (`BodyEncoder`, which reuses the JSON of the messages
already sent) through the client's low-level `post` (which keeps the client's auth, base URL, headers,
timeouts and error classes) and reads the reply as plain JSON (`read_completion`, `sse_chunks`).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

PER_CLIENT = 32  # requests in flight on one HTTP client before another is opened (see ClientShards)
CAPACITY = 16384  # encoded messages kept per model: ~500 concurrent runs of 30 messages each

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@functools.cache
def response_class() -> type[Any]:
    """The HTTP response class the installed `openai` client returns for `cast_to` (httpx2 or httpx)."""
    import importlib

    try:
        module = importlib.import_module("httpx2")
    except ImportError:  # openai releases before the httpx2 switch
        module = importlib.import_module("httpx")
    response: type[Any] = module.Response
    return response


class BodyEncoder:
    """Request bodies as UTF-8 JSON, reusing each message's encoding from earlier requests.

    A conversation only grows: step n sends step n-1's messages again, as the same dict objects (strategies
    keep one list and append to it). So each message is encoded once and its text reused while the dict is
    the same object holding the same top-level values; a value replaced is noticed, a nested list edited in
    place is not (agentlab never edits a message after sending it). The tool list is reused the same way.
    Entries hold their dict, so an id cannot be reused while cached; the oldest are dropped past `capacity`.
    """

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._encoded: OrderedDict[int, tuple[Any, tuple[Any, ...], str]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def encode(self, params: dict[str, Any]) -> bytes:
        """`params` as the JSON body; raises ValueError (NaN) or UnicodeEncodeError (a lone surrogate)."""
        parts = []
        for key, value in params.items():
            if key == "messages":
                text = "[" + ",".join([self._reused(message) for message in value]) + "]"
            elif key == "tools":
                text = self._reused(value)
            else:
                text = _encode(value)
            parts.append(f"{_encode(key)}:{text}")
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    def _reused(self, value: Any) -> str:
        if not isinstance(value, dict | list):
            return _encode(value)
        entry = self._encoded.get(id(value))
        if entry is not None and entry[0] is value and _unchanged(value, entry[1]):
            self.hits += 1
            return entry[2]
        self.misses += 1
        text = _encode(value)
        self._encoded[id(value)] = (value, _snapshot(value), text)
        if len(self._encoded) > self.capacity:
            with contextlib.suppress(KeyError):  # another thread's request emptied it first
                self._encoded.popitem(last=False)
        return text


class ClientShards:
    """The `openai` clients of one event loop, each carrying at most `per_client` requests at a time.

    httpx's connection pool scans every connection and waiting request on each request it assigns, so its
    cost per request grows with the number in flight: with 500 agents sharing one client, most of the
    client's time went there. Small pools keep that scan short. A lone agent stays on the first client (and
    its kept-alive connection); a client is added only when all are busy.
    """

    def __init__(self, new_client: Callable[[], Any], per_client: int = PER_CLIENT) -> None:
        self._new_client = new_client
        self.per_client = per_client
        self.clients: list[Any] = []
        self._in_flight: list[int] = []

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Any]:
        """A client with room for one more request, for the duration of the request."""
        index = next((i for i, n in enumerate(self._in_flight) if n < self.per_client), len(self.clients))
        if index == len(self.clients):
            self.clients.append(self._new_client())
            self._in_flight.append(0)
        self._in_flight[index] += 1
        try:
            yield self.clients[index]
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        clients, self.clients, self._in_flight = self.clients, [], []
        for client in clients:
            await client.close()


def _snapshot(value: dict[str, Any] | list[Any]) -> tuple[Any, ...]:
    return tuple(value.items()) if isinstance(value, dict) else tuple(value)


def _unchanged(value: dict[str, Any] | list[Any], snapshot: tuple[Any, ...]) -> bool:
    if len(value) != len(snapshot):
        return False
    if isinstance(value, list):
        return all(now is then for now, then in zip(value, snapshot, strict=True))
    missing = object()
    return all(value.get(key, missing) is then for key, then in snapshot)


def read_completion(content: bytes, content_type: str) -> Any:
    """A non-streamed reply body as plain JSON (a dict for a completion); a body that is not JSON comes back
    as its text when the server did not call it JSON (a proxy's HTML page), else raises ValueError."""
    try:
        return json.loads(content)
    except ValueError:
        if content_type.split(";")[0].strip().endswith("json"):
            raise
        return content.decode("utf-8", "replace")


async def sse_chunks(response: Any) -> AsyncIterator[Any]:
    """The JSON chunks of a server-sent event stream, up to `[DONE]`; the rest of the body is read so the
    connection can be reused. Each event's `data:` lines are joined; other fields are ignored."""
    data: list[str] = []
    done = False
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
            continue
        if line or not data:
            continue  # `event:`, `id:`, comments, or a blank line without data
        text, data = "\n".join(data), []
        if done or text.startswith("[DONE]"):
            done = True
            continue
        yield json.loads(text)
    if data and not done and not "\n".join(data).startswith("[DONE]"):
        yield json.loads("\n".join(data))
