"""One worker process: spawning, the deadline, bounded reading, killing, decoding the reply.

The parent owns the clock: at the deadline it SIGKILLs the worker's whole process group (bwrap
and, through ``--die-with-parent`` and the pid namespace, everything inside).  It reads at most
``byte_cap`` bytes, so a worker that floods its pipe cannot exhaust the parent's memory, and it
only ever parses JSON from the worker - never pickle.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import Any

from agentlab._text import COUNTED, clip, scrub

from ._launch import NOBODY, WORKDIR, LaunchConfig
from ._result import SandboxResult, done_value

_READ_CHUNK = 65536
# After EOF, how long a worker gets to exit on its own (its exit status explains a missing result).
_EXIT_GRACE = 2.0


def truncate_output(text: str, limit: int, dropped: int | None) -> str:
    """Apply the output limit with a visible marker (``dropped`` None = unknown count)."""
    text = scrub(text)  # no lone surrogates downstream
    if dropped is None and len(text) == limit:  # the worker may have dropped more: how much is unknown
        return clip(text, limit, marker="…[truncated]", dropped=1)
    return clip(text, limit, marker=COUNTED, dropped=dropped or 0)


@dataclass
class Exchange:
    """Raw outcome of talking to one worker."""

    raw: bytes
    timed_out: bool
    overflow: bool
    returncode: int | None


class Worker:
    """A spawned (possibly still starting) worker waiting for its single job on stdin."""

    def __init__(self, config: LaunchConfig) -> None:
        self.config = config
        self.workdir: str | None = None
        if config.mode == "direct":
            self.workdir = tempfile.mkdtemp(prefix="agentlab-sandbox-")
            if config.drop_uid and os.geteuid() == 0:
                os.chown(self.workdir, NOBODY, NOBODY)
            argv = config.python_argv(self.workdir)
            env = config.env()
        else:
            argv = config.bwrap_argv() + config.python_argv(WORKDIR)
            env = {}  # bwrap --clearenv/--setenv define the sandbox environment
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # bwrap's own errors end up in the reply for diagnosis
            env=env,
            cwd="/",
            close_fds=True,
            start_new_session=True,  # own process group: the deadline kills all of it
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin.fileno()
        self._out = self.proc.stdout.fileno()
        os.set_blocking(self._in, False)
        os.set_blocking(self._out, False)

    def alive(self) -> bool:
        return self.proc.returncode is None and not self.exited()

    def exited(self) -> bool:
        """Whether the leader has exited, *without* reaping it (so its pid/pgid stay ours)."""
        if self.proc.returncode is not None:
            return True
        try:
            return os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            return True

    def kill(self) -> None:
        """SIGKILL the whole process group, reap it and remove the work dir."""
        if self.proc.returncode is None:  # not reaped yet, so the group id cannot be recycled
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(OSError):
                stream.close()  # type: ignore[union-attr]
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # -- the exchange -----------------------------------------------------------------------------

    def exchange(self, job: bytes, deadline: float, byte_cap: int) -> Exchange:
        """Blocking :meth:`aexchange` (used by the isolation probe)."""
        from agentlab._sync import run_sync

        return run_sync(self.aexchange(job, deadline, byte_cap))

    async def aexchange(self, job: bytes, deadline: float, byte_cap: int) -> Exchange:
        import asyncio

        loop = asyncio.get_running_loop()
        finished: asyncio.Future[bool] = loop.create_future()  # result: overflow
        raw = bytearray()
        pending = memoryview(job)

        def on_writable() -> None:
            nonlocal pending
            pending = self._write_some(pending)
            if not pending:
                loop.remove_writer(self._in)
                self._close_stdin()

        def on_readable() -> None:
            data = self._read_some()
            if data is None or finished.done():
                return
            if not data:
                finished.set_result(False)
                return
            raw.extend(data)
            if len(raw) > byte_cap:
                finished.set_result(True)

        loop.add_writer(self._in, on_writable)
        loop.add_reader(self._out, on_readable)
        timed_out = overflow = False
        try:
            overflow = await asyncio.wait_for(finished, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            timed_out = True
        finally:
            loop.remove_writer(self._in)
            loop.remove_reader(self._out)
            if not finished.done() or finished.cancelled():
                self.kill()  # deadline or cancellation of the awaiting task (wait_for cancels `finished` too)
        if not timed_out and not overflow:
            # EOF: the worker has exited or is about to; let it finish so its exit status is real.
            give_up = time.monotonic() + _EXIT_GRACE
            while not self.exited() and time.monotonic() < give_up:
                await asyncio.sleep(0.005)
        self.kill()  # kills stragglers of the group (or a worker that closed its pipe and went on)
        return Exchange(bytes(raw), timed_out, overflow, self.proc.returncode)

    # -- helpers ----------------------------------------------------------------------------------

    def _write_some(self, pending: memoryview) -> memoryview:
        try:
            return pending[os.write(self._in, pending) :]
        except BlockingIOError:
            return pending
        except OSError:  # the worker died early; its output explains why
            return pending[len(pending) :]

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # type: ignore[union-attr]

    def _read_some(self) -> bytes | None:
        try:
            return os.read(self._out, _READ_CHUNK)
        except BlockingIOError:
            return None
        except OSError:
            return b""


def _signal_of(returncode: int | None, via_bwrap: bool) -> int | None:
    if returncode is None:
        return None
    if returncode < 0:
        return -returncode
    if via_bwrap and returncode > 128:
        return returncode - 128
    return None


def decode(ex: Exchange, config: LaunchConfig, timeout: float, duration: float) -> SandboxResult:
    """Turn the worker's JSON lines into a :class:`SandboxResult`, trusting none of it."""
    limit = config.output_limit
    out: list[str] = []
    err: list[str] = []
    done: dict[str, Any] | None = None
    noise: list[str] = []
    for line in ex.raw.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except (ValueError, RecursionError):
            if line.strip():
                noise.append(line)
            continue
        if not isinstance(msg, dict):
            continue
        if isinstance(msg.get("o"), str):
            out.append(msg["o"])
        elif isinstance(msg.get("e"), str):
            err.append(msg["e"])
        elif isinstance(msg.get("done"), dict):
            done = msg["done"]

    dropped = done.get("dropped") if done else None
    dropped = dropped if isinstance(dropped, dict) else {}
    known = done is not None
    stdout = truncate_output("".join(out), limit, _int(dropped.get("o")) if known else None)
    stderr = truncate_output("".join(err), limit, _int(dropped.get("e")) if known else None)

    value: Any = None
    error: str | None
    if ex.timed_out:
        ok, error = False, f"TimeoutError: execution exceeded the time limit of {timeout:g} s"
    elif ex.overflow:
        ok, error = False, "SandboxError: the worker produced more output than the protocol allows"
    elif done is not None:
        ok = done.get("ok") is True
        error = done.get("error") if isinstance(done.get("error"), str) else None
        value = done_value(done) if ok else None
        if not ok and error is None:
            error = "SandboxError: the run failed"
    else:
        ok = False
        error = describe_exit(ex.returncode, config.mode != "direct", noise)
    return SandboxResult(
        ok=ok,
        stdout=stdout,
        stderr=stderr,
        error=error,
        timed_out=ex.timed_out,
        duration=duration,
        value=value,
        value_is_repr=ok and done is not None and done.get("shown") is True,
    )


def describe_exit(returncode: int | None, via_bwrap: bool, noise: list[str]) -> str:
    """Why a worker ended without a result, from its exit status (and the last stray lines it wrote)."""
    sig = _signal_of(returncode, via_bwrap)
    if sig == signal.SIGXCPU or sig == signal.SIGKILL:
        error = "TimeoutError: CPU time limit exceeded"
    elif sig == signal.SIGSEGV:
        error = "SandboxError: the worker crashed (SIGSEGV; stack overflow from deep recursion?)"
    elif sig == signal.SIGSYS:
        error = "SandboxError: the worker was killed for a forbidden system call"
    else:
        error = f"SandboxError: the worker exited without a result (exit status {returncode})"
    if noise:
        error += ": " + " | ".join(noise[-3:])[-500:]
    return error


def _int(value: Any) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def decode_report(ex: Exchange) -> tuple[dict[str, Any] | None, str]:
    """For the probe: the worker's self-report, or the text explaining why there is none."""
    noise = []
    for line in ex.raw.decode("utf-8", "replace").splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            noise.append(line)
            continue
        if isinstance(msg, dict) and isinstance(msg.get("done"), dict):
            report = msg["done"].get("iso")
            if isinstance(report, dict):
                return report, ""
    return None, (" | ".join(noise[-5:]) or f"exit status {ex.returncode}")[-800:]
