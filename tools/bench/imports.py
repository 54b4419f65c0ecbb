"""Import time of `import agentlab` and `from agentlab import Agent, tool, OpenAIModel`, each in a fresh interpreter,
and the time to a ready agent (that import, one `@tool` and an `Agent`), which shows where deferred imports land.

Python writes bytecode caches unless PYTHONDONTWRITEBYTECODE is set (as in some containers, this one included):
without them every import recompiles the modules changed since the cache was last written, which is not what a
user's interpreter does. So each statement runs once first to write the caches, and with that variable unset.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tools.bench.serve import REPO_ROOT
from tools.bench.stats import spread

FULL = "from agentlab import Agent, tool, OpenAIModel"
READY = "ready agent (import, one @tool, Agent)"
READY_CODE = (
    f"{FULL}\n"
    "@tool\n"
    "def add(a: int, b: int) -> int:\n"
    "    return a + b\n"
    "Agent(model=OpenAIModel(model='m', base_url='http://127.0.0.1:9/v1', api_key='x'), tools=[add])"
)
STATEMENTS = {"import agentlab": "import agentlab", FULL: FULL, READY: READY_CODE}
TARGETS = {"import agentlab": 0.15, FULL: 0.25}


def _environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}


def time_import(statement: str) -> float:
    """Seconds spent in `statement` alone (interpreter start-up excluded), in a new process."""
    code = f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=_environment(), capture_output=True, text=True, check=True
    )
    return float(done.stdout.strip())


def measure(n: int = 15) -> dict[str, list[float]]:
    for statement in STATEMENTS.values():
        time_import(statement)  # writes the bytecode caches a user's interpreter would already have
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(n):  # interleaved, so load changes hit both
        for name, statement in STATEMENTS.items():
            samples[name].append(time_import(statement))
    return samples


def heaviest_modules(statement: str, top: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time under `-X importtime` (one run: indicative)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=REPO_ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2].rstrip()
            if len(name) - len(name.lstrip()) <= 1:  # top-level imports only: their times include children
                rows.append((name.strip(), int(parts[1]) / 1e6))
    return sorted(rows, key=lambda row: -row[1])[:top]


def table(samples: dict[str, list[float]]) -> list[str]:
    lines = ["| statement | median s | p10–p90 s | runs |", "|---|---:|---|---:|"]
    for name, values in samples.items():
        median, p10, p90 = spread(values)
        lines.append(f"| `{name}` | {median:.3f} | {p10:.3f}–{p90:.3f} | {len(values)} |")
    lines += ["", f"heaviest top-level imports of `{FULL}` (one run, cumulative):", ""]
    heaviest = heaviest_modules(FULL)
    lines += [f"- {name}: {seconds * 1e3:.0f} ms" for name, seconds in heaviest]
    return lines


def summary(samples: dict[str, list[float]]) -> str:
    parts = [f"{name} {spread(samples[name])[0]:.3f} s (target <= {TARGETS[name]} s)" for name in TARGETS]
    return "imports: " + ", ".join(parts)
