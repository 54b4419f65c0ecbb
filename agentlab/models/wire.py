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
import itertools
import json
import operator
import ssl
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

from agentlab.models import http1

PER_CLIENT = 1  # requests in flight on one HTTP client before another is opened (see ClientShards)
CAPACITY = 16384  # encoded messages kept per model: ~500 concurrent runs of 30 messages each

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# The body's keys and scalar values (model name, temperature, max_tokens) are the same in every request:
# their JSON is kept instead of going through the encoder's Python layers each time. `typed`: True and 1
# are equal as keys but encode differently.
_scalar_text = functools.lru_cache(maxsize=1024, typed=True)(_encode)


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
        # id -> (the object, its JSON, its keys (None for a list), then the objects it held): one flat tuple
        # per entry, since with hundreds of runs these entries are a good share of the objects the garbage
        # collector walks.
        self._encoded: OrderedDict[int, tuple[Any, ...]] = OrderedDict()
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
            elif isinstance(value, str | int | float) or value is None:
                text = _scalar_text(value)
            else:
                text = _encode(value)
            parts.append(f"{_scalar_text(key)}:{text}")
        return ("{" + ",".join(parts) + "}").encode("utf-8")

    def _reused(self, value: Any) -> str:
        if not isinstance(value, dict | list):
            return _encode(value)
        entry = self._encoded.get(id(value))
        if entry is not None and entry[0] is value and _unchanged(value, entry):
            self.hits += 1
            return str(entry[1])
        self.misses += 1
        text = _encode(value)
        self._encoded[id(value)] = _entry(value, text)
        if len(self._encoded) > self.capacity:
            with contextlib.suppress(KeyError):  # another thread's request emptied it first
                self._encoded.popitem(last=False)
        return text


class ClientShards:
    """The httpx clients of one event loop (used behind a proxy, see `Endpoint`), each carrying at most
    `per_client` requests at a time.

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
    """One event loop's way to an OpenAI-compatible endpoint: agentlab's own HTTP client, and the URL and
    headers the `openai` client resolves from the model's settings (its default base URL and environment
    variables, the bearer key, its User-Agent and organisation/project headers).

    The HTTP client is `http1.Client` (a small HTTP/1.1 client on asyncio streams: httpx's stack cost ~1.7
    ms of CPU per request, the limit with hundreds of agents on one loop), unless the environment names a
    proxy for the endpoint: then it is httpx (`ClientShards`), which speaks to proxies. `lease()` gives the
    client to pass to `post_chat`/`get_json` for one request (and, streamed, until its body is read).

    Requests go through that client directly: the `openai` client's `request()` rebuilds its options, URL
    and headers on every call, about a quarter of a request's cost. Failures are raised as the `openai`
    client would raise them (`APIStatusError` subclasses by status, `APITimeoutError`,
    `APIConnectionError`), so retries, Retry-After and callers' `except` clauses see the same errors.
    """

    def __init__(self, base_url: str | None, api_key: str, timeout: float, per_client: int = PER_CLIENT) -> None:
        from openai import AsyncOpenAI

        http = http_module()
        self.timeout = timeout
        # The client below only resolves settings and never sends: no CA bundle is loaded for it.
        settings = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            timeout=timeout,
            max_retries=0,
            http_client=http.AsyncClient(verify=False),
        )
        self.base_url = str(settings.base_url).rstrip("/")
        headers = {**settings.default_headers, **settings.auth_headers}  # an `Omit` marks a header left out
        self.headers = {name: value for name, value in headers.items() if isinstance(value, str)}
        self.chat_url = self.base_url + "/chat/completions"
        self.shards: ClientShards | None = None
        self.client: http1.Client | None = None
        if uses_proxy(self.chat_url):
            self.shards = ClientShards(self._new_client, per_client)
        else:
            # identity: replies are small JSON or an event stream, and decoding costs the client CPU that
            # is the limit with many agents; a server that compresses anyway is still read (gzip/deflate).
            wanted = {**self.headers, "Accept-Encoding": "identity"}
            self.client = http1.Client(wanted, timeout, tls_context, self.base_url)

    def _new_client(self) -> Any:
        http = http_module()
        return http.AsyncClient(
            timeout=http.Timeout(self.timeout),
            limits=http.Limits(max_connections=1000, max_keepalive_connections=PER_CLIENT),
            follow_redirects=True,
            verify=tls_context(),
            headers=self.headers,
        )

    def lease(self) -> AbstractAsyncContextManager[Any]:
        """The client for one request, held until its reply is read (`async with endpoint.lease() as c`)."""
        if self.shards is not None:
            return self.shards.lease()
        return contextlib.nullcontext(self.client)

    async def post_chat(self, client: Any, body: bytes, *, stream: bool) -> Any:
        """POST `body` to chat/completions; the response (its body read unless `stream`), or an `openai` error.
        A streamed response must be `aclose`d (its connection is closed unless the body was read to the end)."""
        if isinstance(client, http1.Client):
            return await send_http1(client, "POST", self.chat_url, body, stream=stream)
        return await send(client, client.build_request("POST", self.chat_url, content=body), stream=stream)

    async def get_json(self, client: Any, url: str, timeout: float) -> Any:
        """GET `url` (absolute, or relative to the base URL) as JSON; ValueError when the body is not JSON."""
        if "://" not in url:
            url = f"{self.base_url}/{url}"
        if isinstance(client, http1.Client):
            response = await send_http1(client, "GET", url, b"", stream=False, timeout=timeout)
        else:
            response = await send(client, client.build_request("GET", url, timeout=timeout), stream=False)
        return json.loads(response.content)

    async def aclose(self) -> None:
        if self.shards is not None:
            await self.shards.aclose()
        if self.client is not None:
            await self.client.aclose()


def uses_proxy(url: str) -> bool:
    """Whether the environment names a proxy for `url` (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, any case) that
    NO_PROXY does not exempt it from. Then agentlab uses httpx, which speaks to proxies; `http1` does not."""
    from urllib.request import getproxies_environment  # ~20 ms (http.client, email): when an endpoint is made

    proxies = getproxies_environment()  # lower-case names win, as with curl and httpx
    where = urlsplit(url)
    if not (proxies.get(where.scheme) or proxies.get("all")):
        return False
    return not _exempt_from_proxy(where.hostname or "", where.port, proxies.get("no", ""))


def _exempt_from_proxy(host: str, port: int | None, no_proxy: str) -> bool:
    """NO_PROXY's rule: `*`, or an entry that is the host or a domain it is in (`example.com` and
    `.example.com` both cover `api.example.com`), with the port if the entry names one."""
    host = host.lower()
    for entry in no_proxy.lower().replace(" ", "").split(","):
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and entry_port != str(port):
            continue
        name = name.removeprefix("*").strip(".").strip("[]")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


async def send_http1(
    client: http1.Client, method: str, url: str, body: bytes, *, stream: bool, timeout: float | None = None
) -> http1.Response:
    """`client.request(...)` with its failures raised as the `openai` client raises them; an error status's
    body is read (streamed or not) for the error's message."""
    import openai

    try:
        response = await client.request(method, url, body, timeout=timeout, stream=stream)
        if stream and not response.is_success:
            try:
                await response.aread()  # the error's body
            finally:
                await response.aclose()
    except http1.Timeout as error:
        raise openai.APITimeoutError(request=httpx_request(method, url)) from error
    except http1.TransportError as error:
        raise openai.APIConnectionError(request=httpx_request(method, url)) from error
    if response.is_success:
        return response
    raise status_error(httpx_response(response))


def httpx_request(method: str, url: str) -> Any:
    """The httpx request the `openai` error classes carry (built only for an error)."""
    return http_module().Request(method, url)


def request_of(response: Any) -> Any:
    """The httpx request behind a response of either client, for an `openai` error raised about it."""
    if isinstance(response, http1.Response):
        return httpx_request(response.method, response.url)
    return response.request


def httpx_response(response: http1.Response) -> Any:
    """An error reply as the httpx response the `openai` error classes carry (`error.response`): status,
    headers (Retry-After read from them) and the body, already decoded."""
    framing = {"content-encoding", "transfer-encoding", "content-length", ":http10"}
    headers = [(name, value) for name, value in response.raw_headers if name not in framing]
    return http_module().Response(
        response.status_code,
        headers=headers,
        content=response.content,
        request=httpx_request(response.method, response.url),
    )


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
    """The connection failed: `http1`'s errors, the HTTP library's own (whose package differs between
    versions), socket and TLS errors, anyio's end of stream."""
    return isinstance(error, OSError | http1.TransportError) or type(error).__module__.split(".")[0] in (
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
    if 300 <= response.status_code < 400:
        where = response.headers.get("location") or "nowhere"
        message += (
            f" - the endpoint redirected to {where}; agentlab follows only 307/308 redirects of a POST "
            "(a 301-303 would turn it into a GET): set base_url to the new address"
        )
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


def _entry(value: dict[str, Any] | list[Any], text: str) -> tuple[Any, ...]:
    """A cache entry: `value`, its JSON, its keys (None for a list), then the objects it holds."""
    if isinstance(value, dict):
        return (value, text, tuple(value), *value.values())
    return (value, text, None, *value)


def _unchanged(value: dict[str, Any] | list[Any], entry: tuple[Any, ...]) -> bool:
    """Whether `value` holds the very objects it held when `entry` was made (identity, not equality: True
    and 1 are equal but encode differently). Compared in C (`map(is_, ...)`): this runs for every message of
    every request."""
    if len(value) != len(entry) - 3:
        return False
    held = itertools.islice(entry, 3, None)
    if isinstance(value, list):
        return all(map(operator.is_, value, held))
    return all(map(operator.is_, value.values(), held)) and tuple(value) == entry[2]


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
