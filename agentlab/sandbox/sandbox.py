"""The :class:`Sandbox` facade: policy check, warm pool, sync and async runs."""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._policy import DEFAULT_ALLOWED_IMPORTS, PolicyViolation, precheck
from ._result import Isolation, SandboxResult, SandboxUnavailable

if TYPE_CHECKING:  # the process machinery is imported on first use, keeping `import` cheap
    from collections.abc import Mapping, Sequence

    from ._launch import LaunchConfig
    from ._proc import Exchange, Worker
    from ._session import SandboxSession

logger = logging.getLogger("agentlab.sandbox")


def _weak_host_message(isolation: Isolation) -> str:
    return (
        "refusing to run model-written code: neither bubblewrap nor Landlock can confine the file system "
        "here, so the code could read and write the host's files. Install bubblewrap (Debian/Ubuntu: "
        "apt-get install bubblewrap; Fedora: dnf install bubblewrap) or use Linux >= 5.13 with Landlock "
        "enabled (CONFIG_SECURITY_LANDLOCK=y and 'landlock' in the lsm= boot parameter); or pass "
        f"Sandbox(allow_weak=True) to run it anyway. Details: {isolation}"
    )


def _kill_all(workers: list[Worker]) -> None:
    while workers:
        workers.pop().kill()


class Sandbox:
    """Run untrusted, model-written Python in a separate, confined process.

    Every run gets a fresh worker process (never reused, so no state survives between runs);
    ``pool_size`` workers are pre-spawned and wait - fully confined - for their job, which hides
    the interpreter start-up.  See ``docs/security.md`` for the layers.

    Strict by default: when neither bubblewrap nor Landlock can confine the file system, runs raise
    :class:`SandboxUnavailable` saying what to install or enable; ``allow_weak=True`` accepts such a
    host (a warning is logged).  ``strict=True`` refuses when *any* layer is missing.
    ``use_bwrap=False`` / ``use_landlock=False`` leave that layer out even where it is available.
    """

    def __init__(
        self,
        timeout: float = 5.0,
        memory_mb: int = 256,
        output_limit: int = 10_000,
        allowed_imports: Iterable[str] | None = None,
        extra_imports: Iterable[str] = (),
        strict: bool = False,
        *,
        pool_size: int = 2,
        precheck: bool = True,
        allow_weak: bool = False,
        use_bwrap: bool = True,
        use_landlock: bool = True,
    ) -> None:
        if timeout <= 0 or memory_mb < 32 or output_limit < 1 or pool_size < 0:
            raise ValueError("timeout > 0, memory_mb >= 32, output_limit >= 1, pool_size >= 0")
        if strict and allow_weak:
            raise ValueError("strict=True (refuse if any layer is missing) contradicts allow_weak=True")
        self.timeout = float(timeout)
        self.memory_mb = int(memory_mb)
        self.output_limit = int(output_limit)
        self.strict = strict
        self.allow_weak = allow_weak
        self.use_bwrap = use_bwrap
        self.use_landlock = use_landlock
        self.pool_size = pool_size
        self.extra_imports = tuple(extra_imports)
        base = DEFAULT_ALLOWED_IMPORTS if allowed_imports is None else frozenset(allowed_imports)
        self.allowed_imports = base | frozenset(self.extra_imports) | {"__future__"}
        self._precheck = precheck
        self._tag = os.urandom(6).hex()
        self._config: LaunchConfig | None = None
        self._lock = threading.Lock()
        self._idle: list[Worker] = []
        self._warned = False
        self._closed = False
        self._finalizer = weakref.finalize(self, _kill_all, self._idle)

    # -- public API -------------------------------------------------------------------------------

    @property
    def isolation(self) -> Isolation:
        """The protection actually in force on this host (probed once per process)."""
        from ._detect import detect

        return detect(self.use_bwrap, self.use_landlock)[3]

    def run(self, code: str, timeout: float | None = None, call: str | None = None) -> SandboxResult:
        """Execute ``code``; with ``call="solution"`` also return ``solution()``'s value (blocking :meth:`arun`)."""
        from agentlab._sync import run_sync

        return run_sync(self.arun(code, timeout, call))

    async def arun(self, code: str, timeout: float | None = None, call: str | None = None) -> SandboxResult:
        """Async :meth:`run`: waits on the worker's pipe without blocking the event loop."""
        started = time.monotonic()
        timeout = self._timeout(timeout)
        rejected = self._prepare(code, started)
        if rejected is not None:
            return rejected
        for attempt in (0, 1):
            worker, warm = self._take()
            job = self._job(code, call, timeout)
            ex = await worker.aexchange(job, time.monotonic() + timeout, self._byte_cap)
            if warm and attempt == 0 and not ex.raw and not ex.timed_out:
                continue  # a pre-spawned worker died while idle (e.g. its parent thread ended)
            break
        return self._decode(ex, timeout, started)

    def session(
        self,
        functions: Mapping[str, Sequence[str]] | None = None,
        *,
        timeout: float | None = None,
        max_calls: int = 50,
        frame_limit: int = 1 << 20,
    ) -> SandboxSession:
        """A worker kept for several snippets that share their globals (``async with`` it; closing kills it).

        ``functions`` maps names the code may call to their parameter names; each call is sent to the
        ``call_handler`` given to :meth:`SandboxSession.execute` (in this process) and only its JSON result
        goes back.  ``final_answer(value)`` ends a snippet with ``final=True``.  ``timeout`` is per snippet
        (time spent in the handler does not count); ``max_calls`` caps the calls per snippet and
        ``frame_limit`` the bytes of every message; breaking either kills the worker.
        """
        from ._session import SandboxSession

        self._admit()
        return SandboxSession(
            self._cfg(),
            lambda: self._take()[0],
            self._precheck_error,
            functions or {},
            timeout=self._timeout(timeout),
            max_calls=max_calls,
            frame_limit=frame_limit,
        )

    def close(self) -> None:
        """Kill the idle pre-spawned workers.  Runs in progress finish normally."""
        with self._lock:
            self._closed = True
            _kill_all(self._idle)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = self._config.mode if self._config else "not probed yet"  # repr must not spawn
        return f"Sandbox(timeout={self.timeout}, memory_mb={self.memory_mb}, mode={mode})"

    # -- internals --------------------------------------------------------------------------------

    def _timeout(self, timeout: float | None) -> float:
        timeout = self.timeout if timeout is None else float(timeout)
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        return timeout

    @property
    def _byte_cap(self) -> int:
        # Worst case of honest JSON: every char escaped (6 bytes) in stdout, stderr and the value.
        return 6 * (2 * self.output_limit + max(self.output_limit, 65536)) + (1 << 20)

    def _cfg(self) -> LaunchConfig:
        if self._config is None:
            from ._detect import detect, launch_config
            from ._launch import find_packages

            mode, use_seccomp, landlock, _ = detect(self.use_bwrap, self.use_landlock)
            self._config = launch_config(
                "direct" if mode == "unavailable" else mode,
                use_seccomp,
                landlock,
                memory_mb=self.memory_mb,
                output_limit=self.output_limit,
                allowed=self.allowed_imports,
                packages=find_packages(self.extra_imports),
                tag=self._tag,
            )
            missing = [n for n in self.extra_imports if n not in self._config.packages]
            if missing:
                logger.warning("sandbox extra_imports not installed on the host: %s", ", ".join(missing))
        return self._config

    def _prepare(self, code: str, started: float) -> SandboxResult | None:
        """Strict/degradation handling and the AST pre-check; a result means "rejected"."""
        self._admit()
        error = self._precheck_error(code)
        if error is None:
            return None
        return SandboxResult(ok=False, stderr=error + "\n", error=error, duration=time.monotonic() - started)

    def _admit(self) -> None:
        """Raise unless this host may run code under this sandbox's policy (warn once when degraded)."""
        if self._closed:
            raise RuntimeError("Sandbox is closed")
        isolation = self.isolation
        if not isolation.filesystem_confined and not self.allow_weak:
            raise SandboxUnavailable(_weak_host_message(isolation))
        if isolation.missing:
            if self.strict:
                raise SandboxUnavailable(f"refusing to run untrusted code: {isolation}")
            if not self._warned:
                self._warned = True
                logger.warning("agentlab sandbox is running with reduced protection: %s", isolation)
        self._cfg()

    def _precheck_error(self, code: str) -> str | None:
        """The pre-check's message for code that would obviously be refused, else None."""
        if not self._precheck:
            return None
        try:
            precheck(code, self.allowed_imports)
        except PolicyViolation as exc:
            return f"PolicyViolation: {exc}"
        except SyntaxError as exc:
            return f"SyntaxError: {exc.msg} (line {exc.lineno})"
        except (ValueError, RecursionError, MemoryError) as exc:  # NUL bytes, absurd nesting
            return f"{type(exc).__name__}: {exc}"
        return None

    def _decode(self, ex: Exchange, timeout: float, started: float) -> SandboxResult:
        from ._proc import decode

        return decode(ex, self._cfg(), timeout, time.monotonic() - started)

    def _job(self, code: str, call: str | None, timeout: float) -> bytes:
        # Line format read by the worker: CPU seconds, the function to call, then the code.
        if call is not None and not call.isidentifier():
            raise ValueError(f"call must be a function name, not {call!r}")
        return f"{timeout!r}\n{call or ''}\n{code}".encode("utf-8", "surrogatepass")

    def _take(self) -> tuple[Worker, bool]:
        """A ready worker (warm if possible) - and top the pool up for the next run."""
        from ._proc import Worker

        config = self._cfg()
        worker: Worker | None = None
        with self._lock:
            while self._idle and worker is None:
                candidate = self._idle.pop(0)
                if candidate.alive():
                    worker = candidate
                else:
                    candidate.kill()
        warm = worker is not None
        if worker is None:
            worker = Worker(config)
        self._refill(config)
        return worker, warm

    def _refill(self, config: LaunchConfig) -> None:
        # Spawning is cheap for the parent (fork+exec); the worker's start-up runs concurrently.
        while True:
            with self._lock:
                if self._closed or len(self._idle) >= self.pool_size:
                    return
            from ._proc import Worker

            worker = Worker(config)
            with self._lock:
                if self._closed or len(self._idle) >= self.pool_size:
                    worker.kill()
                    return
                self._idle.append(worker)
