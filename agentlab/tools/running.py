"""Running a tool function off the event loop, with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import os
import queue
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

T = TypeVar("T")

KEEP_IDLE = 32  # idle tool threads kept waiting for the next call; more start when all are busy
IDLE_SECONDS = 60.0  # an idle thread waiting this long for a call ends


class DeadlineExceeded(Exception):
    """The tool ran past its timeout (as opposed to the tool itself raising `TimeoutError`)."""


class ToolThreads:
    """Daemon threads that run sync tool calls, reused from call to call.

    Starting a thread per call cost about a sixth of a benchmark step. The threads are daemons for the
    reason the default executor is not used: a sync tool cannot be interrupted, so a call past its deadline
    keeps its thread until it returns (the caller has already been told it timed out, and the result is
    dropped); a daemon thread cannot make the interpreter wait for it at exit, while `asyncio.run()` joins
    the default executor's workers. A thread held by a hung call is not counted as idle, so the next call
    gets another thread (a new one when none is idle): stuck calls never queue the others.
    """

    def __init__(self, keep_idle: int = KEEP_IDLE, idle_seconds: float = IDLE_SECONDS) -> None:
        self.keep_idle = keep_idle
        self.idle_seconds = idle_seconds
        self.pid = os.getpid()  # threads do not survive a fork: a child process needs its own
        self._calls: queue.SimpleQueue[Callable[[], Callable[[], None]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0  # threads waiting for a call that no submitted call has claimed yet
        self.started = 0  # threads started so far

    def submit(self, call: Callable[[], T], done: Callable[[T | None, BaseException | None], None]) -> None:
        """Run `call` on an idle thread (a new one when every thread is busy), then hand `done` its result
        or the exception it raised. The thread counts as idle again before `done` runs, so a caller that
        submits its next call as soon as it hears of this one reuses the thread."""
        with self._lock:
            claimed = self._idle > 0
            if claimed:
                self._idle -= 1
            else:
                self.started += 1
        self._calls.put(partial(_call_then, call, done))
        if not claimed:
            threading.Thread(target=self._serve, name="agentlab-tool", daemon=True).start()

    def _serve(self) -> None:
        # Each thread waiting on the queue is either counted in `_idle` or claimed by a call already queued,
        # so every queued call finds a thread.
        while True:
            try:
                job = self._calls.get(timeout=self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._idle > 0:  # unclaimed: this thread may go (another waiting one covers the count)
                        self._idle -= 1
                        return
                continue  # every waiting thread is claimed: a call is on its way
            report = job()
            with self._lock:
                staying = self._idle < self.keep_idle
                if staying:
                    self._idle += 1
            report()
            if not staying:
                return


def _call_then(call: Callable[[], T], done: Callable[[T | None, BaseException | None], None]) -> Callable[[], None]:
    """Run `call` now; return what tells `done` about it (run once the thread is back among the idle)."""
    try:
        result = call()
    except BaseException as exc:
        return partial(done, None, exc)
    return partial(done, result, None)


_threads: ToolThreads | None = None


def tool_threads() -> ToolThreads:
    """The process's tool threads, created on first use (and again in a forked child)."""
    global _threads
    if _threads is None or _threads.pid != os.getpid():
        _threads = ToolThreads()
    return _threads


def _run_in_tool_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Like `asyncio.to_thread`, but on one of the daemon `ToolThreads` (see there why not the executor)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.cancelled():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def report(result: T | None, error: BaseException | None) -> None:
        # If the loop closed while this call was still running, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, result, error)

    tool_threads().submit(partial(context.run, func, *args, **kwargs), report)
    return future


async def call_with_timeout(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """Call a sync or async function without blocking the loop; raise DeadlineExceeded past `timeout`.

    Async functions are cancelled at the deadline; a sync one keeps its thread until it returns, its result
    dropped (threads cannot be interrupted; see `ToolThreads`).
    """

    async def run() -> Any:
        if inspect.iscoroutinefunction(func):
            result = await func(*args, **kwargs)
        else:
            result = await _run_in_tool_thread(func, *args, **kwargs)
        # A sync callable may still hand back an awaitable (a partial of an async function, say).
        if inspect.isawaitable(result):
            result = await result
        return result

    deadline = asyncio.timeout(timeout)
    try:
        async with deadline:
            return await run()
    except TimeoutError:
        if deadline.expired():
            raise DeadlineExceeded from None
        raise


async def resolve_approval(
    decision: bool | Awaitable[bool],
) -> bool:
    """An approval callback's answer, awaited when the callback is async. Only True approves: an answer
    that is no bool (a form's "false", a "deny") is a TypeError, which the caller turns into a denial."""
    if inspect.isawaitable(decision):
        decision = await decision
    return approval_value(decision, "the approval callback returned")


def approval_value(decision: object, what: str) -> bool:
    """`decision` when it is a bool; TypeError otherwise (a truthy string must not approve a call)."""
    if not isinstance(decision, bool):
        raise TypeError(f"{what} {decision!r}: approve with True, deny with False")
    return decision
