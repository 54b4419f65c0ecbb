"""Import time of `import agentlab` and `from agentlab import Agent, tool, OpenAIModel`, each in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

from tools.bench.serve import REPO_ROOT
from tools.bench.stats import spread

FULL = "from agentlab import Agent, tool, OpenAIModel"
STATEMENTS = {"import agentlab": "import agentlab", FULL: FULL}
TARGETS = {"import agentlab": 0.15, FULL: 0.25}


def time_import(statement: str) -> float:
    """Seconds spent in `statement` alone (interpreter start-up excluded), in a new process."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return float(done.stdout.strip())


def measure(n: int = 15) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in STATEMENTS}
    for _ in range(n):  # interleaved, so load changes hit both
        for name, statement in STATEMENTS.items():
            samples[name].append(time_import(statement))
    return samples


def heaviest_modules(statement: str, top: int = 8) -> list[tuple[str, float]]:
    """The modules with the largest cumulative import time under `-X importtime` (one run: indicative)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], cwd=REPO_ROOT, capture_output=True, text=True, check=True
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
    parts = [f"{name} {spread(samples[name])[0]:.3f} s (target <= {TARGETS[name]} s)" for name in STATEMENTS]
    return "imports: " + ", ".join(parts)
