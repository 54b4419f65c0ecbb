"""Sandbox run latency, cold (a worker process spawned for the run) and warm (a pre-spawned worker),
for each isolation level this host can run, next to unsandboxed references (a bare `python -c` child and
an in-process `exec`).

`agentlab.sandbox.Sandbox` picks the strongest level by itself and has no public switch, so the other
levels are pinned through its launch configuration (internal; a level that cannot be pinned is skipped
with the reason)."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

from tools.bench.stats import spread

CODE = "def solution():\n    return sum(i * i for i in range(1000))"
EXPECTED = sum(i * i for i in range(1000))


class SandboxMissing(RuntimeError):
    """agentlab.sandbox is not in this checkout (yet)."""


@dataclass
class SandboxRow:
    level: str
    cold: list[float]
    warm: list[float]
    note: str = ""


def _sandbox_class() -> Any:
    try:
        from agentlab.sandbox import Sandbox
    except ImportError as error:
        raise SandboxMissing(f"agentlab.sandbox.Sandbox is not available: {error}") from None
    return Sandbox


def _timed_runs(sandbox: Any, runs: int, warm: bool) -> list[float]:
    samples = []
    for _ in range(runs):
        if warm:
            _wait_for_pool(sandbox)
        start = time.perf_counter()
        result = sandbox.run(CODE, call="solution")
        samples.append(time.perf_counter() - start)
        if not result.ok or result.value != EXPECTED:
            raise RuntimeError(f"sandbox run failed: {result.error or result.value!r}")
    return samples


def _wait_for_pool(sandbox: Any, limit: float = 10.0) -> None:
    """Give pre-spawned workers time to finish starting, so a warm run measures a warm worker."""
    deadline = time.monotonic() + limit
    while len(getattr(sandbox, "_idle", ())) < sandbox.pool_size and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the worker process is spawned; let its interpreter finish start-up


def _level_rows(runs: int) -> list[SandboxRow]:
    sandbox_class = _sandbox_class()
    with sandbox_class(pool_size=0) as probe:
        detected = probe.isolation
    active = ", ".join(name for name, on in detected.layers.items() if on)
    levels: list[tuple[str, Any]] = [(f"{detected.mode}, as chosen by Sandbox() (active: {active})", None)]
    rows = []
    try:
        from agentlab.sandbox._detect import _candidates, launch_config

        levels += [
            (_pinned_label(mode, seccomp, landlock), (launch_config, mode, seccomp, landlock))
            for mode, seccomp, landlock in _candidates()
        ]
    except ImportError as error:
        rows.append(SandboxRow("other levels", [], [], f"skipped: cannot pin a level ({error})"))
    for label, pin in levels:
        try:
            cold = _measure_level(sandbox_class, pin, runs, warm=False)
            rows.append(SandboxRow(label, cold, _measure_level(sandbox_class, pin, runs, warm=True)))
        except Exception as error:  # a level this host cannot run: say so, keep the others
            rows.append(SandboxRow(label, [], [], f"skipped: {type(error).__name__}: {error}"[:160]))
    return rows


def _pinned_label(mode: str, seccomp: bool, landlock: int) -> str:
    parts = [mode] + (["seccomp"] if seccomp else []) + ([f"Landlock ABI {landlock}"] if landlock else [])
    only = " (Landlock only: no bubblewrap)" if mode == "direct" and landlock else ""
    return " + ".join(parts) + only + " (pinned)"


def _measure_level(sandbox_class: Any, pin: Any, runs: int, warm: bool) -> list[float]:
    # Pinned levels include unconfined ones (no bubblewrap, no Landlock): measured, never the default.
    with sandbox_class(pool_size=1 if warm else 0, allow_weak=pin is not None) as sandbox:
        if pin is not None:
            make, mode, seccomp, landlock = pin
            base = sandbox._cfg()
            sandbox._config = make(
                mode,
                seccomp,
                landlock,
                memory_mb=base.memory_mb,
                output_limit=base.output_limit,
                allowed=base.allowed,
                packages=base.packages,
                tag=base.tag,
            )
        sandbox.run(CODE, call="solution")  # first run also probes the host once per process
        return _timed_runs(sandbox, runs, warm)


def _reference_rows(runs: int) -> list[SandboxRow]:
    script = CODE + "\nprint(solution())"
    cold = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-I", "-S", "-c", script], capture_output=True, check=True)
        cold.append(time.perf_counter() - start)
    warm = []
    for _ in range(runs):
        start = time.perf_counter()
        namespace: dict[str, Any] = {}
        exec(CODE, namespace)  # our own constant code: the unsandboxed floor
        namespace["solution"]()
        warm.append(time.perf_counter() - start)
    return [SandboxRow("none (python -I -S -c / in-process exec)", cold, warm)]


def measure(runs: int = 10) -> list[SandboxRow]:
    return _level_rows(runs) + _reference_rows(runs)


def table(rows: list[SandboxRow]) -> list[str]:
    lines = ["| isolation level | cold median ms (p10–p90) | warm median ms (p10–p90) |", "|---|---|---|"]
    for row in rows:
        if not row.cold:
            lines.append(f"| {row.level} | {row.note} | |")
            continue
        cells = []
        for samples in (row.cold, row.warm):
            median, p10, p90 = spread(samples)
            cells.append(f"{median * 1e3:.1f} ({p10 * 1e3:.1f}–{p90 * 1e3:.1f})")
        lines.append(f"| {row.level} | {cells[0]} | {cells[1]} |")
    return lines


def summary(rows: list[SandboxRow]) -> str:
    first = rows[0]
    if not first.cold:
        return f"sandbox: {first.level}: {first.note}"
    return (
        f"sandbox: {first.level.split(' ')[0]} cold {spread(first.cold)[0] * 1e3:.0f} ms, "
        f"warm {spread(first.warm)[0] * 1e3:.0f} ms per run"
    )
