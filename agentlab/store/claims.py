"""Claims on runs: which process is going on with a run right now, so that two cannot at once.

A claim is an exclusive `flock` on a lock file of its own beside the run store (`runs.db.claims/`). The
kernel drops it when its holder closes it or dies, however it dies (a crash, kill -9, a container that
stops), so a claim never outlives its process and nothing has to guess whether a holder is still alive
(a pid or a host name can't say: a restarted container has a new host name and may reuse the pid). Two
claims conflict within one process too: `flock` locks belong to the open file, not to the process. The lock
file is removed while its lock is still held, when the claim is released; a process that opened the file
before then notices that its lock is on a file no longer in place and tries again.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: there a claim never conflicts (runs are not guarded)
    fcntl = None  # type: ignore[assignment]


class RunClaim:
    """A held claim on one run: `release` gives it up (closing the process gives it up too)."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def release(self) -> None:
        """Give the run up (once; again does nothing)."""
        if self._fd < 0:
            return
        try:
            self.path.unlink(missing_ok=True)  # before the lock goes: see the module's docstring
        finally:
            os.close(self._fd)
            self._fd = -1


def claim_run(folder: Path, run_id: str) -> RunClaim | None:
    """Claim `run_id` with a lock file in `folder`: the claim, or None while another holder has it."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha256(run_id.encode()).hexdigest()[:32]  # a run id may hold any character
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if fcntl is None:
            return RunClaim(path, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        if _same_file(fd, path):
            return RunClaim(path, fd)
        os.close(fd)  # released and removed between our open and our lock: claim the file now in place


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)
