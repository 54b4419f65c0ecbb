"""Running a tool function off the event loop, with a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The tool ran past its timeout (as opposed to the tool itself raising `TimeoutError`)."""


def _run_in_daemon_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """Like `asyncio.to_thread`, but on a daemon thread of its own.

    A sync tool cannot be interrupted. On the default executor a hung call would keep a worker busy
    and make `asyncio.run()` wait for it at shutdown (`shutdown_default_executor` joins the
    workers), so one stuck tool would hang the whole program after its timeout was reported.
    """
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

    def work() -> None:
        try:
            result = context.run(func, *args, **kwargs)
        except BaseException as exc:
            outcome: tuple[T | None, BaseException | None] = (None, exc)
        else:
            outcome = (result, None)
        # If the loop closed while this call was still running, nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=work, name=f"tool:{getattr(func, '__name__', 'call')}", daemon=True).start()
    return future


async def call_with_timeout(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
) -> Any:
    """Call a sync or async function without blocking the loop; raise DeadlineExceeded past `timeout`.

    Async functions are cancelled at the deadline; sync ones run in a thread that is abandoned.
    """

    async def run() -> Any:
        if inspect.iscoroutinefunction(func):
            result = await func(*args, **kwargs)
        else:
            result = await _run_in_daemon_thread(func, *args, **kwargs)
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
    """An approval callback's answer, awaited when the callback is async."""
    if inspect.isawaitable(decision):
        decision = await decision
    return bool(decision)
