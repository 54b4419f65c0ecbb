"""The chat-completions wire format, spoken without the `openai` client's per-call work.

`client.chat.completions.create` walks every message of the growing conversation through its typed dicts
on each call and builds pydantic models of every reply: most of a step's cost. agentlab builds its
messages itself, so it sends a body it encoded (`BodyEncoder`, which reuses the JSON of the messages
already sent) through its own HTTP client with the URL and headers the `openai` client resolves and the
error classes it raises (`Endpoint`), and reads the reply as plain JSON (`read_completion`, `sse_chunks`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import json
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

PER_CLIENT = 1  # requests in flight on one HTTP client before another is opened (see ClientShards)
CAPACITY = 16384  # encoded messages kept per model: ~500 concurrent runs of 30 messages each

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


@functools.cache
def http_module() -> ModuleType:
    """The HTTP library the installed `openai` client is built on (httpx2, or httpx before the switch)."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:  # openai releases before the httpx2 switch
        return importlib.import_module("httpx")


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One TLS context for every client of the process: loading the CA bundle takes ~50 ms, which each
    `Agent.run` (a new event loop, so new clients) would otherwise pay again."""
    context: ssl.SSLContext = http_module().create_ssl_context()
    return context


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
    """The HTTP clients of one event loop, each carrying at most `per_client` requests at a time.

    httpx's connection pool scans every connection it holds each time it assigns a request, and probes
    the socket of each idle one (`has_expired`): with 200 agents on 32-request clients that scan was a
    quarter of the client's CPU. A client per connection (the default, `per_client=1`) makes the scan one
    connection long, and agentlab does the pooling: the clients with room are kept on a stack, so a lease
    takes the one used last (its connection kept alive) and costs the same with 5 agents or 500. Clients
    are added only when all are busy, and kept (with their connections) until `aclose`.
    """

    def __init__(self, new_client: Callable[[], Any], per_client: int = PER_CLIENT) -> None:
        self._new_client = new_client
        self.per_client = per_client
        self.clients: list[Any] = []
        self._in_flight: list[int] = []
        self._with_room: list[int] = []  # indices of clients below `per_client`, the last used on top

    def first(self) -> Any:
        """The first client (opened now if none is), the one a lone caller uses."""
        if not self.clients:
            self._add()
        return self.clients[0]

    def _add(self) -> None:
        self._with_room.append(len(self.clients))
        self.clients.append(self._new_client())
        self._in_flight.append(0)

    @asynccontextmanager
    async def lease(self) -> AsyncIterator[Any]:
        """A client with room for one more request, for the duration of the request."""
        if not self._with_room:
            self._add()
        index = self._with_room[-1]
        self._in_flight[index] += 1
        if self._in_flight[index] == self.per_client:
            self._with_room.pop()
        try:
            yield self.clients[index]
        finally:
            if index < len(self._in_flight):  # else `aclose` ran meanwhile and forgot the clients
                self._in_flight[index] -= 1
                if self._in_flight[index] == self.per_client - 1:
                    self._with_room.append(index)

    async def aclose(self) -> None:
        clients, self.clients, self._in_flight, self._with_room = self.clients, [], [], []
        for client in clients:
            await client.aclose()


class Endpoint:
    """One event loop's way to an OpenAI-compatible endpoint: agentlab's own HTTP clients (`ClientShards`),
    and the URL and headers the `openai` client resolves from the model's settings (its default base URL and
    environment variables, the bearer key, its User-Agent and organisation/project headers).

    Requests go through the HTTP client directly: the `openai` client's `request()` rebuilds its options,
    URL and headers on every call, about a quarter of a request's cost. Failures are raised as the `openai`
    client would raise them (`APIStatusError` subclasses by status, `APITimeoutError`,
    `APIConnectionError`), so retries, Retry-After and callers' `except` clauses see the same errors.
    """

    def __init__(self, base_url: str | None, api_key: str, timeout: float, per_client: int = PER_CLIENT) -> None:
        from openai import AsyncOpenAI

        http = http_module()
        self._timeout = http.Timeout(timeout)
        self.headers: dict[str, str] = {}  # known once the openai client has resolved them, below
        self.shards = ClientShards(self._new_client, per_client)
        settings = AsyncOpenAI(
            base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0, http_client=self.shards.first()
        )
        self.base_url = str(settings.base_url).rstrip("/")
        headers = {**settings.default_headers, **settings.auth_headers}  # an `Omit` marks a header left out
        self.headers = {name: value for name, value in headers.items() if isinstance(value, str)}
        self.chat_url = http.URL(self.base_url + "/chat/completions")
        for client in self.shards.clients:
            client.headers.update(self.headers)

    def _new_client(self) -> Any:
        http = http_module()
        return http.AsyncClient(
            timeout=self._timeout,
            limits=http.Limits(max_connections=1000, max_keepalive_connections=self.shards.per_client),
            follow_redirects=True,
            verify=tls_context(),
            headers=self.headers,
        )

    async def post_chat(self, client: Any, body: bytes, *, stream: bool) -> Any:
        """POST `body` to chat/completions; the response (its body read unless `stream`), or an `openai` error."""
        return await send(client, client.build_request("POST", self.chat_url, content=body), stream=stream)

    async def get_json(self, client: Any, url: str, timeout: float) -> Any:
        """GET `url` (absolute, or relative to the base URL) as JSON; ValueError when the body is not JSON."""
        if "://" not in url:
            url = f"{self.base_url}/{url}"
        response = await send(client, client.build_request("GET", url, timeout=timeout), stream=False)
        return json.loads(response.content)

    async def aclose(self) -> None:
        await self.shards.aclose()


async def send(client: Any, request: Any, *, stream: bool) -> Any:
    """`client.send(request)` with its failures raised as the `openai` client raises them."""
    import openai

    try:
        response = await client.send(request, stream=stream)
        if response.is_success:
            return response
        if stream:
            try:
                await response.aread()  # the error's body
            finally:
                await response.aclose()
    except Exception as error:
        if isinstance(error, http_module().TimeoutException):
            raise openai.APITimeoutError(request=request) from error
        if is_transport_error(error):
            raise openai.APIConnectionError(request=request) from error
        raise
    raise status_error(response)


def is_transport_error(error: BaseException) -> bool:
    """The connection failed: the HTTP library's own errors (whose package differs between versions),
    socket and TLS errors, anyio's end of stream."""
    return isinstance(error, OSError) or type(error).__module__.split(".")[0] in (
        "httpx",
        "httpx2",
        "httpcore",
        "httpcore2",
        "anyio",
    )


def status_error(response: Any) -> Exception:
    """The `openai` error for a reply whose status is not 2xx: the class by status, the message the
    client writes (`Error code: 429 - <the body's error.message>`), the body's `error` object as `body`."""
    import openai

    message = f"Error code: {response.status_code}"
    text = response.text.strip()
    body: Any = text
    try:
        body = json.loads(text)
    except ValueError:
        pass
    else:
        error = body.get("error", body) if isinstance(body, dict) else None
        detail = error.get("message") if isinstance(error, dict) else None
        if isinstance(detail, str) and detail:
            message += f" - {detail}"
        body = error if isinstance(body, dict) else body
    kind = _STATUS_ERRORS.get(response.status_code)
    if kind is None:
        kind = "InternalServerError" if response.status_code >= 500 else "APIStatusError"
    error_class: type[openai.APIStatusError] = getattr(openai, kind)
    return error_class(message, response=response, body=body)


_STATUS_ERRORS = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    409: "ConflictError",
    422: "UnprocessableEntityError",
    429: "RateLimitError",
}


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
