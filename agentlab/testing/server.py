"""ScriptedServer: an OpenAI-compatible chat-completions endpoint that replays a script.

The server runs its own asyncio loop in a daemon thread, so the same object works from sync tests,
async tests (the test's loop is never blocked by the server, and vice versa) and benchmark scripts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from agentlab.testing import _http
from agentlab.testing.script import (
    PROBE_KINDS,
    Completion,
    Script,
    ScriptError,
    ScriptItem,
    build_completion,
    completion_json,
    error_json,
    probe_item,
    probe_kind,
    stream_chunks,
    validate_item,
)

# The default listen backlog (100) overflows when ~500 clients connect at once, and Linux then
# retransmits the dropped SYNs only after a second, which would distort concurrency benchmarks.
_BACKLOG = 4096
_JSON = "application/json"
EXHAUSTED = "scripted server: script exhausted"


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a TCP RST (SO_LINGER 0), as a crashing proxy does, instead of a clean close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ScriptedServer:
    """Serve ``script`` on ``http://127.0.0.1:<port>/v1`` until stopped.

    ``script`` is a list of reply items consumed in order, or a callable
    ``(request_body, index) -> item | None`` (None = exhausted). Capability probes
    (see :func:`agentlab.testing.script.probe_kind`) are answered from the flags and never
    consume the script. ``latency`` seconds are added before every chat reply.
    ``record=False`` skips storing request bodies and headers (for long benchmark runs).

    Faults are script items too, so each request can get its own: ``status`` (+ ``headers`` such as
    Retry-After, + ``body``, a str sent verbatim, e.g. HTML with status 200), ``delay``, ``drop``
    (close without a reply), ``reset`` (abort the connection with a TCP RST), ``truncate`` (announce
    the whole body, send only that many bytes, close) and ``message`` (a dict sent verbatim as the
    choice's message, for odd shapes: object arguments, a null tool name, content as a list of parts).
    A request with ``stream: true`` gets the reply as SSE chunks (text and tool-call arguments in pieces of
    16 characters, cut mid-JSON; usage in a last chunk when ``stream_options.include_usage`` asks for it);
    ``chunk_delay`` spaces the chunks (the first piece goes at once) and ``break_after`` aborts the
    connection after that many chunks (a stream that breaks part-way).
    ``probe_script`` maps a probe kind ("tools", "json_schema") to items answering that kind's probes
    first, in order (e.g. a 429, then the flags' answer). ``echo_tool_results=False`` makes the tools
    probe fail the way an endpoint does whose model never sees tool results.
    """

    def __init__(
        self,
        script: Script,
        *,
        native_tools: bool = True,
        json_schema: bool = True,
        latency: float = 0.0,
        model: str = "scripted",
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        probe_script: dict[str, list[ScriptItem]] | None = None,
        echo_tool_results: bool = True,
        props: dict[str, Any] | str | None = None,
        model_info: dict[str, Any] | None = None,
    ) -> None:
        if callable(script):
            self._script_fn: Callable[[dict[str, Any], int], ScriptItem | None] | None = script
            self._items: list[ScriptItem] = []
        else:
            self._script_fn = None
            # Validate up front so a typo fails at construction, in the test's own traceback.
            self._items = [validate_item(item) for item in script]
        unknown = (probe_script or {}).keys() - PROBE_KINDS
        if unknown:
            raise ScriptError(f"unknown probe kinds {sorted(unknown)}; use {sorted(PROBE_KINDS)}")
        self._probe_items = {kind: [validate_item(i) for i in items] for kind, items in (probe_script or {}).items()}
        self.echo_tool_results = echo_tool_results
        self.native_tools = native_tools
        self.json_schema = json_schema
        self.latency = latency
        self.model = model
        self.record = record
        self._host = host
        self._port = port
        self.props = props
        self.model_info = model_info or {}

        self.requests: list[dict[str, Any]] = []
        self.request_headers: list[dict[str, str]] = []  # each recorded request's headers (names lower-cased)
        self.probe_requests: list[dict[str, Any]] = []
        self.info_requests: list[str] = []  # paths of GET /props and GET /v1/models, in order
        # Server-side problems (exhaustion, bad items, unparsable requests), for assertions like
        # `assert not srv.failures` when the client swallowed the HTTP error.
        self.failures: list[str] = []
        self._consumed = 0
        self._call_ids = itertools.count(1)
        self._completion_ids = itertools.count(1)

        self._thread: threading.Thread | None = None
        self._request_stop: Callable[[], object] | None = None

    # --- public state ---------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port; RuntimeError before `start`."""
        if self._thread is None:
            raise RuntimeError("ScriptedServer is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL (`http://host:port/v1`) to hand to a client."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def consumed(self) -> int:
        """Number of script items consumed so far (probes excluded)."""
        return self._consumed

    @property
    def remaining(self) -> int:
        """Unconsumed scripted replies; ``sys.maxsize`` for a callable script."""
        if self._script_fn is not None:
            return sys.maxsize
        return len(self._items) - self._consumed

    def extend(self, items: list[ScriptItem]) -> None:
        """Append replies to a list script (e.g. between phases of a test)."""
        if self._script_fn is not None:
            raise TypeError("cannot extend a callable script")
        # list.extend is atomic under the GIL, and the server thread only reads by index.
        self._items.extend(validate_item(item) for item in items)

    def __repr__(self) -> str:
        where = self.base_url if self._thread is not None else "stopped"
        return f"<ScriptedServer {where} consumed={self._consumed}>"

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> Self:
        """Start serving on a background thread; returns once the socket is bound."""
        if self._thread is not None:
            raise RuntimeError("ScriptedServer already started")
        ready: concurrent.futures.Future[int] = concurrent.futures.Future()
        thread = threading.Thread(target=self._run, args=(ready,), name="ScriptedServer", daemon=True)
        thread.start()
        try:
            self._port = ready.result(timeout=30)
        except BaseException:
            thread.join(timeout=5)
            raise
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop serving and close all connections; idempotent."""
        thread, request_stop = self._thread, self._request_stop
        if thread is None or request_stop is None:
            return
        request_stop()
        thread.join(timeout=30)
        self._thread = None
        self._request_stop = None

    async def astart(self) -> Self:
        """`start` without blocking the caller's event loop."""
        # start() only waits for the socket to be bound; a worker thread keeps the caller's loop free.
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """`stop` without blocking the caller's event loop."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.astop()

    def _run(self, ready: concurrent.futures.Future[int]) -> None:
        try:
            # asyncio.run cancels the leftover connection handlers (idle keep-alive connections,
            # delayed replies) on exit, so every socket is closed when the thread ends.
            asyncio.run(self._main(ready))
        except BaseException as exc:
            if ready.done():
                raise
            ready.set_exception(exc)

    async def _main(self, ready: concurrent.futures.Future[int]) -> None:
        stopping = asyncio.Event()
        server = await asyncio.start_server(self._serve_connection, self._host, self._port, backlog=_BACKLOG)
        loop = asyncio.get_running_loop()
        self._request_stop = lambda: loop.call_soon_threadsafe(stopping.set)
        ready.set_result(server.sockets[0].getsockname()[1])
        await stopping.wait()
        # No wait_closed(): from 3.12 it waits for open keep-alive connections, which only the
        # cancellation done by asyncio.run closes.
        server.close()

    # --- connection handling --------------------------------------------------------------------

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    request = await _http.read_request(reader)
                except _http.BadRequest as exc:
                    self.failures.append(f"bad HTTP request: {exc}")
                    await self._send_json(writer, 400, error_json(400, str(exc)), keep_alive=False)
                    return
                if request is None:
                    return
                if not await self._dispatch(request, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away; nothing to answer
        except asyncio.CancelledError:
            # Only stop() cancels handlers. Ending normally matters: on 3.11 the streams machinery
            # logs a spurious traceback for a handler task that finishes cancelled.
            pass
        finally:
            writer.close()

    async def _dispatch(
        self, request: _http.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must be closed afterwards."""
        path = request.path.rstrip("/")
        if request.method == "POST" and path.endswith("/chat/completions"):
            return await self._chat(request, reader, writer)
        if request.method == "GET" and path.endswith("/props"):
            self.info_requests.append(path)
            return await self._send_props(writer, request.keep_alive)
        if request.method == "GET" and path.endswith("/models"):
            self.info_requests.append(path)
            body = {"object": "list", "data": [self._model_json()]}
            return await self._send_json(writer, 200, body, keep_alive=request.keep_alive)
        if request.method == "GET" and path.endswith(f"/models/{self.model}"):
            return await self._send_json(writer, 200, self._model_json(), keep_alive=request.keep_alive)
        message = f"scripted server: no route for {request.method} {request.path}"
        return await self._send_json(writer, 404, error_json(404, message), keep_alive=request.keep_alive)

    def _model_json(self) -> dict[str, Any]:
        return {"id": self.model, "object": "model", "created": 0, "owned_by": "agentlab", **self.model_info}

    async def _send_props(self, writer: asyncio.StreamWriter, keep_alive: bool) -> bool:
        if self.props is None:
            message = "scripted server: no route for GET /props (this server was given no props)"
            return await self._send_json(writer, 404, error_json(404, message), keep_alive=keep_alive)
        if isinstance(self.props, dict):
            return await self._send_json(writer, 200, self.props, keep_alive=keep_alive)
        data = self.props.encode()
        head = _http.response_head(200, content_type=_JSON, keep_alive=keep_alive, content_length=len(data))
        writer.write(head + data)
        await writer.drain()
        return keep_alive

    async def _chat(self, request: _http.Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        keep_alive = request.keep_alive
        try:
            body = json.loads(request.body)
            if not isinstance(body, dict):
                raise ValueError("request body is not a JSON object")
        except ValueError as exc:
            return await self._fail(writer, 400, f"scripted server: invalid JSON body: {exc}", keep_alive)

        kind = probe_kind(body)
        if kind is not None:
            self.probe_requests.append(body)
            item = self._probe_reply(kind, body)
        else:
            try:
                next_item = self._next_item(body, request.headers)
            except ScriptError as exc:
                return await self._fail(writer, 500, f"scripted server: {exc}", keep_alive)
            if next_item is None:
                message = f"{EXHAUSTED} after {self._consumed} replies"
                return await self._fail(writer, 500, message, keep_alive)
            item = next_item

        wait = self.latency + item.get("delay", 0)
        if wait > 0:  # zero-latency mode must not even yield to the loop
            await asyncio.sleep(wait)
            if reader.at_eof():
                return False  # the client timed out and hung up while we slept
        if item.get("drop"):
            return False
        if item.get("reset"):
            _reset(writer)
            return False
        if "status" in item:
            return await self._send_error_item(writer, item, keep_alive)
        if item.get("tool_calls") and not self.native_tools:
            message = (
                "scripted server: script item has tool_calls but the server runs with "
                "native_tools=False (test bug: script text replies for this mode)"
            )
            return await self._fail(writer, 500, message, keep_alive)

        completion = build_completion(item, body, self._next_call_id)
        if body.get("stream") and completion.raw_message is not None:
            return await self._fail(writer, 500, "scripted server: 'message' items cannot be streamed", keep_alive)
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await self._send_stream(writer, completion, include_usage, keep_alive, item)
        payload = completion_json(
            completion, completion_id=self._next_completion_id(), model=self.model, created=int(time.time())
        )
        if item.get("truncate"):
            data = json.dumps(payload).encode()
            return await self._send_truncated(writer, 200, _JSON, data, item["truncate"], {})
        return await self._send_json(writer, 200, payload, keep_alive=keep_alive)

    def _probe_reply(self, kind: str, body: dict[str, Any]) -> ScriptItem:
        """The next scripted item for this kind of probe, else what the flags say the endpoint can do."""
        scripted = self._probe_items.get(kind)
        if scripted:
            return scripted.pop(0)
        return probe_item(
            kind,
            native_tools=self.native_tools,
            json_schema=self.json_schema,
            body=body,
            echo_tool_results=self.echo_tool_results,
        )

    def _next_item(self, body: dict[str, Any], headers: dict[str, str]) -> ScriptItem | None:
        """Consume and return the next item, or None when the script is exhausted."""
        index = self._consumed
        if self._script_fn is not None:
            try:
                raw = self._script_fn(body, index)
            except Exception as exc:
                raise ScriptError(f"script callable raised {type(exc).__name__}: {exc}") from exc
            if raw is None:
                return None
            item = validate_item(raw)
        elif index < len(self._items):
            item = self._items[index]
        else:
            return None
        self._consumed += 1
        if self.record:
            self.requests.append(body)
            self.request_headers.append(headers)
        return item

    def _next_call_id(self) -> str:
        return f"call_{next(self._call_ids)}"

    def _next_completion_id(self) -> str:
        return f"chatcmpl-scripted-{next(self._completion_ids)}"

    # --- writing --------------------------------------------------------------------------------

    async def _fail(self, writer: asyncio.StreamWriter, status: int, message: str, keep_alive: bool) -> bool:
        self.failures.append(message)
        return await self._send_json(writer, status, error_json(status, message), keep_alive=keep_alive)

    async def _send_error_item(self, writer: asyncio.StreamWriter, item: ScriptItem, keep_alive: bool) -> bool:
        status: int = item["status"]
        body = item.get("body")
        if body is None:
            body = error_json(status, f"scripted error (HTTP {status})") if status >= 400 else {}
        # A str body goes out verbatim so tests can send malformed responses.
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers = {str(k): str(v) for k, v in (item.get("headers") or {}).items()}
        content_type = headers.pop("Content-Type", None) or headers.pop("content-type", None) or _JSON
        if item.get("truncate"):
            return await self._send_truncated(writer, status, content_type, data, item["truncate"], headers)
        writer.write(
            _http.response_head(
                status,
                content_type=content_type,
                keep_alive=keep_alive,
                content_length=len(data),
                extra=headers,
            )
            + data
        )
        await writer.drain()
        return keep_alive

    async def _send_truncated(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        content_type: str,
        data: bytes,
        sent: int,
        headers: dict[str, str],
    ) -> bool:
        """Announce all of ``data`` but send only its first ``sent`` bytes, then close: a body cut off mid-way."""
        head = _http.response_head(
            status, content_type=content_type, keep_alive=False, content_length=len(data), extra=headers
        )
        writer.write(head + data[: min(sent, max(0, len(data) - 1))])
        await writer.drain()
        return False

    async def _send_json(
        self, writer: asyncio.StreamWriter, status: int, payload: dict[str, Any], *, keep_alive: bool
    ) -> bool:
        data = json.dumps(payload).encode()
        head = _http.response_head(status, content_type=_JSON, keep_alive=keep_alive, content_length=len(data))
        writer.write(head + data)  # one write: one segment for small replies
        await writer.drain()
        return keep_alive

    async def _send_stream(
        self,
        writer: asyncio.StreamWriter,
        completion: Completion,
        include_usage: bool,
        keep_alive: bool,
        item: ScriptItem,
    ) -> bool:
        """Send `completion` as SSE chunks, `chunk_delay` seconds apart; with `break_after`, abort the
        connection after that many chunks, as a crashing server or proxy does mid-reply."""
        head = _http.response_head(200, content_type="text/event-stream", keep_alive=keep_alive, content_length=None)
        writer.write(head)
        chunks = stream_chunks(
            completion,
            completion_id=self._next_completion_id(),
            model=self.model,
            created=int(time.time()),
            include_usage=include_usage,
        )
        pause, break_after = item.get("chunk_delay", 0), item.get("break_after")
        for sent, chunk in enumerate(chunks):
            if sent == break_after:
                _reset(writer)
                return False
            if pause and sent > 1:  # the opening (role) chunk and the first piece go at once
                await asyncio.sleep(pause)
            writer.write(_http.encode_chunk(b"data: %s\n\n" % json.dumps(chunk).encode()))
            await writer.drain()
        writer.write(_http.encode_chunk(b"data: [DONE]\n\n") + _http.LAST_CHUNK)
        await writer.drain()
        return keep_alive
