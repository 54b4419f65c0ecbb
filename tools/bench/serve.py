"""The episode's scripted server in a child process, so its CPU time is not spent under the benchmark's GIL.

`python -m tools.bench.serve --steps 10 --latency 0` prints its base URL and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def served(steps: int, latency: float) -> Iterator[str]:
    """Start the server process and yield its base URL; it exits when we close its stdin."""
    command = [sys.executable, "-m", "tools.bench.serve", "--steps", str(steps), "--latency", str(latency)]
    child = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        if not line.startswith("http://"):
            raise RuntimeError(f"the benchmark server did not start (said {line!r})")
        yield line
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
