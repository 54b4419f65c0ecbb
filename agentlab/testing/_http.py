"""Just enough HTTP/1.1 over asyncio streams for the openai client (httpx): keep-alive,
Content-Length and chunked bodies. Hand-rolled instead of http.server because a thread per
connection is slow under ~500 concurrent clients and the benchmark needs low per-request overhead.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from http import HTTPStatus

_MAX_BODY = 256 * 1024 * 1024  # a guard against garbage lengths, far above any real request


class BadRequest(Exception):
    """The peer sent something that is not a request we can parse; answer 400 and close."""


@dataclass(slots=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    keep_alive: bool


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the peer closed the connection between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise BadRequest("connection closed mid-headers") from exc
    except asyncio.LimitOverrunError as exc:
        raise BadRequest("headers too large") from exc

    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadRequest(f"bad request line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()

    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest("bad Content-Length") from exc
        if not 0 <= length <= _MAX_BODY:
            raise BadRequest("bad Content-Length")
        body = await reader.readexactly(length) if length else b""

    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method.upper(), target.split("?", 1)[0], headers, body, keep_alive)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest("bad chunk size") from exc
        if size == 0:
            # Skip trailers up to the blank line that ends the message.
            while (await reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


def _status_line(status: int) -> bytes:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Status"
    return f"HTTP/1.1 {status} {phrase}\r\n".encode()


def response_head(
    status: int,
    *,
    content_type: str,
    keep_alive: bool,
    content_length: int | None,
    extra: dict[str, str] | None = None,
) -> bytes:
    """Status line + headers; ``content_length=None`` means a chunked body follows."""
    lines = [_status_line(status), f"Content-Type: {content_type}\r\n".encode()]
    if content_length is None:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    else:
        lines.append(f"Content-Length: {content_length}\r\n".encode())
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    for name, value in (extra or {}).items():
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(b"\r\n")
    return b"".join(lines)


def encode_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


LAST_CHUNK = b"0\r\n\r\n"
