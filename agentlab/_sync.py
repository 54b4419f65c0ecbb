"""Blocking wrappers over coroutines: every component has one async implementation, and sync callers
get it through `run_sync`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, also from code that already runs an event loop (Jupyter, async apps, a tool called
    from the loop's thread): there the coroutine runs on a private loop in a helper thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coroutine)
        except BaseException as error:
            box["error"] = error

    thread = threading.Thread(target=target, name="agentlab-run-sync")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def iterate_sync(events: AsyncIterator[T], close: Callable[[], Coroutine[Any, Any, Any]]) -> Iterator[T]:
    """Blocking iteration over `events` on a private event loop, one item at a time (nothing runs ahead of
    the consumer); `close()` runs on that loop at the end, also when the consumer stops early. Where this
    thread already runs an event loop, the private loop runs in a helper thread."""
    loop = _PrivateLoop()
    try:
        while True:
            try:
                yield loop.run(events.__anext__())
            except StopAsyncIteration:
                return
    finally:
        try:
            loop.run(close())
        finally:
            loop.close()


class _PrivateLoop:
    """A new event loop that runs coroutines to completion for a blocking caller: in the caller's thread,
    or in its own thread when the caller's thread is busy running another loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread: threading.Thread | None = None
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self.thread = threading.Thread(target=self.loop.run_forever, name="agentlab-iterate-sync", daemon=True)
        self.thread.start()

    def run(self, coroutine: Awaitable[T]) -> T:
        if self.thread is None:
            return self.loop.run_until_complete(coroutine)
        return asyncio.run_coroutine_threadsafe(_awaited(coroutine), self.loop).result()

    def close(self) -> None:
        try:
            self.run(self.loop.shutdown_asyncgens())
            self.run(self.loop.shutdown_default_executor())
        finally:
            if self.thread is not None:
                self.loop.call_soon_threadsafe(self.loop.stop)
                self.thread.join()
            self.loop.close()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
