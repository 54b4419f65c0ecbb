"""Session mode: one confined worker kept for several snippets that share their globals and can call
functions that run in the parent.

The channel is the worker's existing pipes, with one JSON object per line in both directions:

worker -> parent: ``{"ready": true}`` once, then per snippet any number of ``{"o": text}`` /
``{"e": text}`` output chunks and ``{"call": {"name", "arguments"}}`` requests, and one final
``{"done": {...}}``.
parent -> worker: ``{"setup": {...}}`` once, then ``{"exec": {"code", "cpu"}}`` per snippet and one
``{"result": {"ok", "value" | "error"}}`` per call.

Everything the worker sends is untrusted (the snippet shares its process and can write raw bytes to the
channel): every line is capped, must be a JSON object of exactly one known kind, and anything else kills
the worker and fails the snippet.  Nothing is ever unpickled.  The parent decides what a call does
(``call_handler``); the worker only ever gets JSON back.
"""

from __future__ import annotations

import json
import keyword
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._result import SnippetResult, done_value

if TYPE_CHECKING:  # asyncio is imported on first use, keeping `import agentlab.sandbox` cheap
    import asyncio

    from ._launch import LaunchConfig
    from ._proc import Worker

CallHandler = Callable[[str, dict[str, Any]], Awaitable[Any]]
"""``(function name, arguments) -> JSON-able result``; raising :class:`CallRefused` sends its message."""

RESERVED_NAMES = frozenset({"final_answer", "ToolError", "print"})
DEFAULT_FRAME_LIMIT = 1 << 20
DEFAULT_MAX_CALLS = 50


class CallRefused(Exception):
    """Raised by a call handler: the call failed or was refused; ``str()`` goes back to the code."""


class ProtocolViolation(Exception):
    """The worker sent something the protocol does not allow; the worker is killed."""


def _check_functions(functions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    checked: dict[str, list[str]] = {}
    for name, params in functions.items():
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_") or name in RESERVED_NAMES:
            raise ValueError(f"cannot expose a function named {name!r} in the sandbox")
        params = list(params)
        if not all(isinstance(p, str) and p.isidentifier() for p in params):
            raise ValueError(f"parameter names of {name!r} must be identifiers: {params!r}")
        checked[name] = params
    return checked


def _kill(worker: Worker) -> None:
    worker.kill()


class SandboxSession:
    """One worker for several :meth:`execute` calls; use as ``async with sandbox.session(...) as s``.

    ``functions`` maps each name the code may call to its parameter names (positional arguments are
    mapped to them in order).  A snippet that breaks the protocol, exceeds its time or makes more than
    ``max_calls`` calls kills the worker; the next snippet then starts on a fresh one (``restarted``
    says so: the earlier variables are gone).  Closing the session kills the worker.
    """

    def __init__(
        self,
        config: LaunchConfig,
        take_worker: Callable[[], Worker],
        check_code: Callable[[str], str | None],
        functions: Mapping[str, Sequence[str]],
        *,
        timeout: float,
        max_calls: int = DEFAULT_MAX_CALLS,
        frame_limit: int = DEFAULT_FRAME_LIMIT,
        cpu_total: float | None = None,
    ) -> None:
        if max_calls < 0 or frame_limit < 1024:
            raise ValueError("max_calls >= 0 and frame_limit >= 1024")
        self.functions = _check_functions(functions)
        self.timeout = timeout
        self.max_calls = max_calls
        self.frame_limit = frame_limit
        self.cpu_total = cpu_total if cpu_total is not None else max(60.0, 20 * timeout)
        self._config = config
        self._take_worker = take_worker
        self._check_code = check_code
        self._worker: Worker | None = None
        self._finalizer: weakref.finalize[[Worker], SandboxSession] | None = None
        self._reader: asyncio.StreamReader | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self._writer: asyncio.WriteTransport | None = None
        self._noise = ""
        self._lost = False  # a worker died: the next snippet starts on a fresh one
        self._closed = False

    async def __aenter__(self) -> SandboxSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Kill the worker (no state survives it).  Idempotent."""
        self._closed = True
        self._stop()

    def close(self) -> None:
        """Synchronous :meth:`aclose` (safe from any thread; kills the worker)."""
        self._closed = True
        self._stop()

    async def execute(self, code: str, call_handler: CallHandler, timeout: float | None = None) -> SnippetResult:
        """Run one snippet in the session's namespace; calls of the exposed functions go to ``call_handler``."""
        if self._closed:
            raise RuntimeError("the sandbox session is closed")
        started = time.monotonic()
        limit = self.timeout if timeout is None else float(timeout)
        rejected = self._check_code(code)
        if rejected is not None:
            return SnippetResult(ok=False, stderr=rejected + "\n", error=rejected, duration=time.monotonic() - started)
        restarted = self._lost
        snippet = _Snippet(limit, self._config.output_limit)
        try:
            if self._worker is None:
                await self._start(started + limit)
            self._send({"exec": {"code": code, "cpu": limit}})
            await self._serve(snippet, call_handler)
        except ProtocolViolation as violation:
            snippet.fail(f"SandboxError: {violation}")
            self._lose()
        except TimeoutError:
            snippet.fail(f"TimeoutError: execution exceeded the time limit of {limit:g} s", timed_out=True)
            self._lose()
        except EOFError:
            snippet.fail(self._death_reason())
            self._lose()
        except BaseException:  # cancelled: the worker must not outlive the run that owned it
            self._lose()
            raise
        if snippet.done is not None and str(snippet.done.get("error") or "").startswith("MemoryError"):
            self._lose()  # a worker that ran out of memory is not trusted with the next snippet: start afresh
        self._lost = self._lost and self._worker is None
        return snippet.result(time.monotonic() - started, restarted)

    # -- the channel ------------------------------------------------------------------------------

    async def _start(self, deadline: float) -> None:
        for attempt in (0, 1):
            try:
                await self._connect(deadline)
                return
            except EOFError:
                # A pre-spawned worker can die while idle (e.g. the thread that spawned it ended).
                self._stop()
                if attempt:
                    raise

    async def _connect(self, deadline: float) -> None:
        import asyncio

        worker = self._take_worker()
        self._worker = worker
        self._finalizer = weakref.finalize(self, _kill, worker)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=self.frame_limit, loop=loop)
        self._reader = reader
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), worker.proc.stdout
        )
        self._writer, _ = await loop.connect_write_pipe(asyncio.Protocol, worker.proc.stdin)
        self._transports = [read_transport, self._writer]
        setup = {"functions": self.functions, "cpu_total": self.cpu_total}
        self._writer.write(b"session\n" + _frame({"setup": setup}))
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            frame = await self._frame()
        if frame != {"ready": True}:
            raise ProtocolViolation("the worker did not start its session")

    def _send(self, message: dict[str, Any]) -> None:
        assert self._writer is not None
        if self._writer.is_closing():
            raise EOFError
        self._writer.write(_frame(message))

    async def _frame(self) -> dict[str, Any]:
        """The next frame from the worker: a capped line holding one JSON object."""
        import asyncio

        assert self._reader is not None
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise ProtocolViolation(f"a message from the worker exceeded {self.frame_limit} bytes") from None
        except asyncio.IncompleteReadError as eof:
            self._noise = eof.partial[-300:].decode("utf-8", "replace")
            raise EOFError from None
        try:
            frame = json.loads(line)
        except (ValueError, RecursionError):
            shown = line[:80].decode("utf-8", "replace")
            raise ProtocolViolation(f"malformed message from the worker (not JSON): {shown!r}") from None
        if not isinstance(frame, dict) or len(frame) != 1:
            raise ProtocolViolation("malformed message from the worker (not a single-key JSON object)")
        return frame

    async def _serve(self, snippet: _Snippet, call_handler: CallHandler) -> None:
        """Read frames until ``done``, answering calls; the clock stops while the parent runs a call."""
        import asyncio

        deadline = time.monotonic() + snippet.timeout
        while True:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                frame = await self._frame()
            kind, body = next(iter(frame.items()))
            if kind in ("o", "e") and isinstance(body, str):
                snippet.output(kind, body)
            elif kind == "call" and isinstance(body, dict):
                began = time.monotonic()
                await self._answer(snippet, body, call_handler)
                deadline += time.monotonic() - began
            elif kind == "done" and isinstance(body, dict):
                snippet.finish(body)
                return
            else:
                raise ProtocolViolation(f"malformed message from the worker (unexpected {kind!r} message)")

    async def _answer(self, snippet: _Snippet, body: dict[str, Any], call_handler: CallHandler) -> None:
        name, arguments = body.get("name"), body.get("arguments")
        if set(body) != {"name", "arguments"} or not isinstance(name, str) or not isinstance(arguments, dict):
            raise ProtocolViolation("malformed call message from the worker")
        snippet.calls += 1
        if snippet.calls > self.max_calls:
            raise ProtocolViolation(f"more than {self.max_calls} function calls in one snippet")
        if name not in self.functions:
            self._send({"result": {"ok": False, "error": f"{name}() is not available in this sandbox"}})
            return
        try:
            value = await call_handler(name, arguments)
            reply = _frame({"result": {"ok": True, "value": value}})
        except CallRefused as refused:
            reply = _frame({"result": {"ok": False, "error": str(refused)}})
        except (TypeError, ValueError) as bad:  # the handler returned something that is not JSON
            reply = _frame({"result": {"ok": False, "error": f"the result is not JSON: {bad}"}})
        if len(reply) > self.frame_limit:
            reply = _frame({"result": {"ok": False, "error": f"the result exceeds {self.frame_limit} bytes"}})
        assert self._writer is not None
        if self._writer.is_closing():
            raise EOFError
        self._writer.write(reply)

    # -- ending a worker --------------------------------------------------------------------------

    def _death_reason(self) -> str:
        from ._proc import describe_exit

        worker = self._worker
        returncode = None
        if worker is not None:
            try:
                returncode = worker.proc.wait(timeout=2)
            except Exception:
                returncode = None
        return describe_exit(returncode, self._config.mode != "direct", [self._noise] if self._noise.strip() else [])

    def _lose(self) -> None:
        self._stop()
        self._lost = True

    def _stop(self) -> None:
        for transport in self._transports:
            transport.close()
        self._transports = []
        self._writer = None
        self._reader = None
        if self._finalizer is not None:
            self._finalizer()  # kills the worker once
        self._finalizer = None
        self._worker = None


def _frame(message: dict[str, Any]) -> bytes:
    return json.dumps(message, ensure_ascii=True, allow_nan=False).encode("ascii") + b"\n"


class _Snippet:
    """What one snippet produced so far, with the output limit applied on this side too."""

    def __init__(self, timeout: float, output_limit: int) -> None:
        self.timeout = timeout
        self.limit = output_limit
        self.parts: dict[str, list[str]] = {"o": [], "e": []}
        self.sizes = {"o": 0, "e": 0}
        self.calls = 0
        self.done: dict[str, Any] | None = None
        self.error: str | None = None
        self.timed_out = False

    def output(self, key: str, text: str) -> None:
        room = self.limit - self.sizes[key]
        if room > 0:
            self.parts[key].append(text[:room])
        self.sizes[key] += len(text)

    def finish(self, done: dict[str, Any]) -> None:
        self.done = done

    def fail(self, error: str, timed_out: bool = False) -> None:
        self.error, self.timed_out = error, timed_out

    def _text(self, key: str) -> str:
        from ._proc import truncate_output

        text = "".join(self.parts[key])
        dropped = max(0, self.sizes[key] - len(text))
        if self.done is not None:
            reported = self.done.get("dropped")
            extra = reported.get(key) if isinstance(reported, dict) else 0
            dropped += extra if isinstance(extra, int) and extra > 0 else 0
        return truncate_output(text, self.limit, dropped)

    def result(self, duration: float, restarted: bool) -> SnippetResult:
        done = self.done or {}
        ok = self.error is None and done.get("ok") is True
        error = self.error
        if error is None and not ok:
            error = done.get("error") if isinstance(done.get("error"), str) else "SandboxError: the snippet failed"
        final = ok and done.get("final") is True
        value = done_value(done) if ok else None
        return SnippetResult(
            ok=ok,
            stdout=self._text("o"),
            stderr=self._text("e"),
            error=error,
            timed_out=self.timed_out,
            duration=duration,
            value=value,
            value_is_repr=ok and done.get("shown") is True,
            final=final,
            calls=self.calls,
            restarted=restarted,
        )
