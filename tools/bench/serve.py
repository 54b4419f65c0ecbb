"""The episode's scripted server in a child process, so its CPU time is not spent under the benchmark's GIL.

`python -m tools.bench.serve --steps 10 --latency 0` prints its base URL and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def served(steps: int, latency: float) -> Iterator[str]:
    """Start the server process and yield its base URL; it exits when we close its stdin."""
    with served_process(steps, latency) as (base_url, _):
        yield base_url


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process so far (Linux /proc), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


@contextmanager
def served_process(steps: int, latency: float) -> Iterator[tuple[str, int]]:
    """`served`, also yielding the server's process id (to read its CPU time)."""
    command = [sys.executable, "-m", "tools.bench.serve", "--steps", str(steps), "--latency", str(latency)]
    child = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the benchmark server did not start (said {line!r})")
        yield line, child.pid
    finally:
        if child.stdin:
            child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if child.stdout:
            child.stdout.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    from agentlab.testing import ScriptedServer
    from tools.bench.episode import episode_script

    with ScriptedServer(episode_script(args.steps), latency=args.latency, record=False) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # until the parent closes our stdin (or dies)


if __name__ == "__main__":
    main()
