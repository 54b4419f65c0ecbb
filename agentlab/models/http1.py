"""A small HTTP/1.1 client on asyncio streams: agentlab's way to a chat endpoint when no proxy is in the way.

With hundreds of agents on one event loop the client's CPU per request is the limit, and httpx (with
httpcore, h11 and anyio below it) spends about 1.7 ms of it per request where a request on bare asyncio
streams costs about 0.13 ms. agentlab's requests are few and simple (a JSON POST and the odd GET to one
endpoint), so it speaks that much HTTP/1.1 itself:

- a pool of keep-alive connections per origin, idle ones on a stack (the one used last is taken first, so
  a quiet period leaves the older ones to expire on the server), a new connection when none is idle;
- a connection goes back to the pool only after its response body was read to the end and the server did
  not ask to close it; one that a request leaves part-way (an error, a cancellation) is closed;
- an idle connection the server closed meanwhile fails before any byte of the reply arrives: the request
  is then sent once more on a new connection (it cannot have been answered), as httpcore does;
- bodies framed by Content-Length, chunked transfer-encoding (streamed replies) or the end of the
  connection; gzip/deflate decoded if a server compresses although it was asked not to;
- a timeout for connecting and for each read: a streamed reply may run long as long as bytes keep coming;
- redirects: 307/308 are followed with the same method and body, other redirects only for GET (a POST
  turned into a GET, as 301-303 would have it, is not the request that was meant); the Authorization
  header is not sent to another origin.

Failures are this module's `TransportError` subclasses; `wire` turns them into the `openai` client's errors.
Nothing here knows about chat completions.
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

MAX_REDIRECTS = 5
READ_SIZE = 65536
MAX_TICK = 1.0  # seconds between the watchdog's looks at the deadlines (less for timeouts under 4 s)
MIN_TICK = 0.01
_HEAD_END = b"\r\n\r\n"
_FOLLOWED_ANY_METHOD = frozenset({307, 308})  # the method and body are kept by definition
_FOLLOWED_FOR_GET = frozenset({301, 302, 303, 307, 308})
_NOT_TO_OTHER_ORIGINS = frozenset({"authorization"})


class TransportError(Exception):
    """The exchange failed below HTTP semantics: no connection, a broken one, a reply that is not HTTP."""


class ConnectError(TransportError):
    """No connection could be opened (refused, unknown host, TLS handshake failed)."""


class Timeout(TransportError):
    """No progress for the timeout's length: connecting, or waiting for the next bytes of a reply."""


class ConnectTimeout(Timeout):
    """Connecting took longer than the timeout."""


class ReadTimeout(Timeout):
    """The server sent nothing for the timeout's length while a reply was awaited or being read."""


class ConnectionBroken(TransportError):
    """The connection ended or failed before the reply was complete."""


class ProtocolError(TransportError):
    """The server's bytes are not an HTTP/1.x reply this client can read."""


class _Stale(Exception):
    """A reused connection ended before any byte of the reply: the request is sent again on a new one."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a URL points: its origin (the pool's key) and the request target sent in the request line."""

    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


@lru_cache(maxsize=64)
def parse_url(url: str) -> Target:
    """`url` as a `Target`; ValueError for a scheme other than http/https or a URL without a host.
    Cached: a client sends to the same few URLs again and again."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"only http and https URLs can be requested, not {url!r}")
    if not parts.hostname:
        raise ValueError(f"the URL {url!r} names no host")
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme, parts.hostname, port, path)


class Connection:
    """One socket's reader and writer; `reused` once it has carried a complete exchange. `deadline` is the
    loop time by which the next bytes must arrive while a request waits on it (0: none is waiting), and
    `timed_out` says the pool's watchdog aborted it for missing one."""

    __slots__ = ("deadline", "reader", "reused", "timed_out", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.deadline = 0.0
        self.timed_out = False

    def close(self) -> None:
        """Close without waiting: safe in a `finally` of a cancelled task (nothing here can be interrupted)."""
        self.writer.close()

    def is_dead(self) -> bool:
        """Whether the server closed it (or it failed) while it sat idle."""
        return self.reader.at_eof() or self.reader.exception() is not None or self.writer.is_closing()


class ConnectionPool:
    """Open connections by origin: the idle ones on a stack per origin, and every open one (to close on
    `aclose`). Belongs to one event loop."""

    def __init__(self, tls: Callable[[], ssl.SSLContext]) -> None:
        self._tls = tls
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._open: set[Connection] = set()
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching: asyncio.TimerHandle | None = None
        self._tick = MAX_TICK

    def wait_for_bytes(self, connection: Connection, timeout: float) -> None:
        """Give `connection` `timeout` seconds from now for its next bytes, watched by the pool.

        Read timeouts are not `asyncio.timeout` blocks: each costs a timer, a task look-up and a heap push
        and pop, twice per request, ~12% of the client's CPU with hundreds of agents. One watchdog timer
        per pool instead looks at the connections with a deadline a few times per timeout and aborts those
        past it; the read waiting on one then fails, and `timed_out` tells it why. A timeout thus fires up
        to a quarter of itself late (at most MAX_TICK)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        connection.deadline = loop.time() + timeout
        if timeout / 4 < self._tick:
            self._tick = max(timeout / 4, MIN_TICK)
            if self._watching is not None:  # a shorter timeout than the watchdog's pace: restart it
                self._watching.cancel()
                self._watching = None
        if self._watching is None:
            self._watching = loop.call_later(self._tick, self._watch)

    def _watch(self) -> None:
        assert self._loop is not None
        now, waiting = self._loop.time(), False
        for connection in list(self._open):
            if connection.deadline:
                if now >= connection.deadline:
                    connection.deadline, connection.timed_out = 0.0, True
                    transport = connection.writer.transport
                    transport.abort()
                    self._open.discard(connection)
                else:
                    waiting = True
        self._watching = self._loop.call_later(self._tick, self._watch) if waiting else None

    @property
    def open_count(self) -> int:
        """Connections open now, idle or carrying a request."""
        return len(self._open)

    @property
    def idle_count(self) -> int:
        """Connections waiting in the pool for the next request."""
        return sum(len(idle) for idle in self._idle.values())

    def take_idle(self, target: Target) -> Connection | None:
        """The idle connection to `target`'s origin used last that is still open, if any."""
        idle = self._idle.get(target.origin)
        while idle:
            connection = idle.pop()
            if not connection.is_dead():
                return connection
            self.discard(connection)
        return None

    async def connect(self, target: Target, timeout: float) -> Connection:
        """A new connection (TLS for https); ConnectTimeout or ConnectError when none can be opened."""
        tls = self._tls() if target.scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(
                    target.host,
                    target.port,
                    ssl=tls,
                    server_hostname=target.host if tls else None,
                    limit=READ_SIZE,
                )
        except TimeoutError as error:
            raise ConnectTimeout(f"connecting to {target.host_header} took over {timeout:g} s") from error
        except (OSError, ssl.SSLError) as error:
            raise ConnectError(f"cannot connect to {target.host_header}: {error}") from error
        connection = Connection(reader, writer)
        if self.closed:  # `aclose` ran while this connection was being opened
            connection.close()
            raise ConnectError("the HTTP client was closed")
        self._open.add(connection)
        return connection

    def release(self, connection: Connection, target: Target) -> None:
        """A connection whose exchange is complete and that the server keeps open: idle, reusable."""
        if self.closed or connection.is_dead():
            self.discard(connection)
            return
        connection.reused = True
        self._idle.setdefault(target.origin, []).append(connection)

    def discard(self, connection: Connection) -> None:
        """A connection that cannot carry another exchange: closed and forgotten."""
        connection.close()
        self._open.discard(connection)

    async def aclose(self) -> None:
        """Close every connection, idle or in use (a request still using one then fails)."""
        self.closed = True
        if self._watching is not None:
            self._watching.cancel()
            self._watching = None
        connections, self._open, self._idle = self._open, set(), {}
        for connection in connections:
            connection.close()
        waits = [connection.writer.wait_closed() for connection in connections]
        if waits:
            try:  # let the transports finish closing before the loop may end; never hang on a peer
                async with asyncio.timeout(1.0):
                    await asyncio.gather(*waits, return_exceptions=True)
            except TimeoutError:
                pass


class Response:
    """A reply: status, headers (lower-case names), and its body, read by `aread` or streamed by
    `aiter_bytes`/`aiter_lines`. The connection goes back to the pool when the body has been read to its
    end; `aclose` closes it if it was not (call it for every streamed response)."""

    __slots__ = (
        "_connection",
        "_decoder",
        "_framing",
        "_keep_alive",
        "_pool",
        "_remaining",
        "_target",
        "_timeout",
        "content",
        "headers",
        "method",
        "raw_headers",
        "status_code",
        "url",
    )

    def __init__(
        self,
        status_code: int,
        raw_headers: list[tuple[str, str]],
        method: str,
        url: str,
        connection: Connection,
        pool: ConnectionPool,
        target: Target,
        timeout: float,
    ) -> None:
        self.status_code = status_code
        self.raw_headers = raw_headers
        self.headers = _header_map(raw_headers)
        self.method = method
        self.url = url
        self.content = b""
        self._connection: Connection | None = connection
        self._pool = pool
        self._target = target
        self._timeout = timeout
        self._framing, self._remaining = _framing(method, status_code, self.headers)
        self._keep_alive = _keeps_alive(self.headers) and self._framing != "close"
        self._decoder = _decoder(self.headers.get("content-encoding", ""))
        if self._framing == "none":
            self._finish()

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    async def aread(self) -> bytes:
        """The whole body (also kept as `content`)."""
        self.content = b"".join([piece async for piece in self.aiter_bytes()])
        return self.content

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive, decoded if the server compressed them."""
        while self._connection is not None:
            try:
                piece = await self._read_piece(self._connection)
            except BaseException:
                self.aclose_now()
                raise
            if piece is None:
                self._finish()
                break
            if self._decoder is not None:
                piece = self._decoder.decompress(piece)
            if piece:
                yield piece
        if self._decoder is not None:
            tail, self._decoder = self._decoder.flush(), None
            if tail:
                yield tail

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines as text (UTF-8), without their endings (LF, CRLF or CR, as server-sent events
        allow). Split on bytes: no UTF-8 sequence contains those bytes, so each line decodes whole."""
        pending = b""
        async for piece in self.aiter_bytes():
            pending += piece
            if b"\r" in pending:
                pending = pending.replace(b"\r\n", b"\n")
                if pending.endswith(b"\r"):  # maybe the first half of a CRLF: wait for the next piece
                    *lines, rest = pending[:-1].replace(b"\r", b"\n").split(b"\n")
                    rest += b"\r"
                else:
                    *lines, rest = pending.replace(b"\r", b"\n").split(b"\n")
            else:
                *lines, rest = pending.split(b"\n")
            pending = rest
            for line in lines:
                yield line.decode("utf-8", "replace")
        if pending:
            yield pending.rstrip(b"\r").decode("utf-8", "replace")

    async def aclose(self) -> None:
        """Give up the rest of the body: the connection is closed unless it was read to the end."""
        self.aclose_now()

    def aclose_now(self) -> None:
        """`aclose` without awaiting, for code that must not be interrupted (cancellation clean-up)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.discard(connection)

    def _finish(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._keep_alive:
            self._pool.release(connection, self._target)
        else:
            self._pool.discard(connection)

    async def _read_piece(self, connection: Connection) -> bytes | None:
        """The next piece of the body as framed on the wire, None at its end; ReadTimeout when nothing
        comes for the timeout's length, ConnectionBroken when the connection ends first."""
        reader = connection.reader
        self._pool.wait_for_bytes(connection, self._timeout)
        try:
            if self._framing == "length":
                if self._remaining <= 0:
                    return None
                piece = await reader.read(min(self._remaining, READ_SIZE))
                if not piece:
                    missing = self._remaining
                    raise ConnectionBroken(f"the server closed the connection {missing} bytes before the body's end")
                self._remaining -= len(piece)
                return piece
            if self._framing == "chunked":
                return await self._read_chunk(reader)
            if self._framing == "close":
                piece = await reader.read(READ_SIZE)
                if not piece and connection.timed_out:
                    raise ConnectionBroken("timed out")  # turned into ReadTimeout below
                return piece or None
            return None
        except (TransportError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError) as error:
            if connection.timed_out:
                raise ReadTimeout(f"the server sent nothing for {self._timeout:g} s while sending the body") from error
            if isinstance(error, TransportError):
                raise
            if isinstance(error, asyncio.IncompleteReadError):
                raise ConnectionBroken("the server closed the connection in the middle of the body") from error
            if isinstance(error, asyncio.LimitOverrunError):
                raise ProtocolError("a chunk-size line of the body is too long") from error
            raise ConnectionBroken(f"the connection failed while reading the body: {error}") from error
        finally:
            connection.deadline = 0.0

    async def _read_chunk(self, reader: asyncio.StreamReader) -> bytes | None:
        if self._remaining < 0:
            return None  # the last chunk was read
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as error:
            raise ProtocolError(f"a chunk of the body has no size: {line[:40]!r}") from error
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass  # trailer fields: not used
            self._remaining = -1
            return None
        data = await reader.readexactly(size + 2)
        if not data.endswith(b"\r\n"):
            raise ProtocolError("a chunk of the body does not end where its size says")
        return data[:-2]


class Client:
    """HTTP/1.1 requests over a `ConnectionPool`, with `headers` on each (Authorization only to the origin
    of `home_url`: a redirect elsewhere must not carry the key). One client belongs to one event loop."""

    def __init__(
        self, headers: Mapping[str, str], timeout: float, tls: Callable[[], ssl.SSLContext], home_url: str
    ) -> None:
        for name, value in headers.items():
            if "\r" in name or "\n" in name or "\r" in value or "\n" in value or ":" in name:
                raise ValueError(f"the header {name!r} cannot be sent: its name or value breaks the HTTP framing")
        self.headers = dict(headers)
        self.timeout = timeout
        self.pool = ConnectionPool(tls)
        self._home = parse_url(home_url).origin
        self._heads: dict[tuple[str, Target], bytes] = {}

    async def request(
        self, method: str, url: str, body: bytes = b"", *, timeout: float | None = None, stream: bool = False
    ) -> Response:
        """Send the request, following redirects as the module says; the response with its body read
        (`content`) unless `stream`. Raises `TransportError` subclasses, ValueError for a URL it cannot
        request."""
        timeout = self.timeout if timeout is None else timeout
        for _ in range(MAX_REDIRECTS + 1):
            target = parse_url(url)
            response = await self._exchange(method, url, target, body, timeout)
            location = response.headers.get("location")
            followed = _FOLLOWED_ANY_METHOD if method not in ("GET", "HEAD") else _FOLLOWED_FOR_GET
            if response.status_code not in followed or not location:
                break
            await self._drain(response)
            url = urljoin(url, location)
        else:
            raise ProtocolError(f"more than {MAX_REDIRECTS} redirects, the last to {url}")
        if not stream:
            await self._drain(response)
        return response

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def _drain(self, response: Response) -> None:
        try:
            await response.aread()
        except BaseException:
            response.aclose_now()
            raise

    async def _exchange(self, method: str, url: str, target: Target, body: bytes, timeout: float) -> Response:
        """One request and the head of its reply, on an idle connection (sent again on a new one if that
        was stale) or a new one. The connection is closed if anything goes wrong, cancellation included."""
        payload = self._head(method, target, len(body)) + body
        connection = self.pool.take_idle(target)
        if connection is not None:
            try:
                return await self._send(method, url, target, payload, connection, timeout)
            except _Stale:
                self.pool.discard(connection)
            except BaseException:
                self.pool.discard(connection)
                raise
        connection = await self.pool.connect(target, timeout)
        try:
            return await self._send(method, url, target, payload, connection, timeout)
        except _Stale as error:  # a new connection is not `reused`, so `_send` does not raise this; mapped
            # anyway so that the private exception can never escape to callers
            self.pool.discard(connection)
            raise ConnectionBroken("the server closed the connection without replying") from error
        except BaseException:
            self.pool.discard(connection)
            raise

    async def _send(
        self, method: str, url: str, target: Target, payload: bytes, connection: Connection, timeout: float
    ) -> Response:
        reader, writer = connection.reader, connection.writer
        self.pool.wait_for_bytes(connection, timeout)
        try:
            writer.write(payload)
            await writer.drain()
            head = await reader.readuntil(_HEAD_END)
            status, headers = _parse_head(head)
            while 100 <= status < 200:  # interim replies (100 Continue, 103 Early Hints): the real one follows
                self.pool.wait_for_bytes(connection, timeout)
                head = await reader.readuntil(_HEAD_END)
                status, headers = _parse_head(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ssl.SSLError) as error:
            if connection.timed_out:
                raise ReadTimeout(f"no reply from {target.host_header} within {timeout:g} s") from error
            if isinstance(error, asyncio.IncompleteReadError):
                if connection.reused and not error.partial:
                    raise _Stale() from error
                raise ConnectionBroken("the server closed the connection before its reply was complete") from error
            if isinstance(error, asyncio.LimitOverrunError):
                raise ProtocolError("the reply's head is larger than this client reads (64 KiB)") from error
            if connection.reused and isinstance(error, ConnectionError):
                raise _Stale() from error  # reset before a byte came: the server had dropped it
            raise ConnectionBroken(f"the connection failed: {error}") from error
        finally:
            connection.deadline = 0.0
        return Response(status, headers, method, url, connection, self.pool, target, timeout)

    def _head(self, method: str, target: Target, length: int) -> bytes:
        """The request line and headers, up to the Content-Length (encoded once per method and URL)."""
        start = self._heads.get((method, target))
        if start is None:
            lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}"]
            for name, value in self.headers.items():
                if target.origin != self._home and name.lower() in _NOT_TO_OTHER_ORIGINS:
                    continue
                lines.append(f"{name}: {value}")
            start = self._heads[(method, target)] = _encode_header_text("\r\n".join(lines) + "\r\n")
        if method in ("GET", "HEAD") and not length:
            return start + b"\r\n"
        return start + b"Content-Length: %d\r\n\r\n" % length


def _encode_header_text(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError:  # a non-ASCII header value (an organisation's name): sent as UTF-8, as httpx does
        return text.encode("utf-8")


def _parse_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    lines = head[: -len(_HEAD_END)].split(b"\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"the reply does not start with an HTTP/1.x status line: {lines[0][:60]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon:
            raise ProtocolError(f"a header line of the reply has no colon: {line[:60]!r}")
        headers.append((name.strip().decode("latin-1").lower(), value.strip().decode("latin-1")))
    if parts[0] == b"HTTP/1.0":
        headers.append((":http10", "1"))  # read by `_keeps_alive`; never a real header name
    return int(parts[1]), headers


def _header_map(raw: list[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name; repeated fields joined with ", " (as HTTP allows and httpx does)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def _framing(method: str, status: int, headers: dict[str, str]) -> tuple[str, int]:
    """How the body ends: "none", "length" (with its length), "chunked" or "close" (RFC 9112, 6.3)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return "none", 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        return ("chunked", 0) if coding.lower().rsplit(",", 1)[-1].strip() == "chunked" else ("close", 0)
    length = headers.get("content-length")
    if length is not None:
        values = {value.strip() for value in length.split(",")}
        if len(values) != 1 or not next(iter(values)).isdigit():
            raise ProtocolError(f"the reply's Content-Length is not a number: {length!r}")
        size = int(next(iter(values)))
        return ("length", size) if size else ("none", 0)
    return "close", 0


def _keeps_alive(headers: dict[str, str]) -> bool:
    tokens = {token.strip().lower() for token in headers.get("connection", "").split(",")}
    if ":http10" in headers:
        return "keep-alive" in tokens
    return "close" not in tokens


def _decoder(encoding: str) -> zlib._Decompress | None:
    """gzip and deflate (zlib-wrapped) are decoded; agentlab asks for none (`Accept-Encoding: identity`)."""
    coding = encoding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip", "deflate"):
        return zlib.decompressobj(wbits=zlib.MAX_WBITS | 32)  # 32: either header, detected
    raise ProtocolError(f"the reply is encoded as {encoding!r}, which this client does not decode")
