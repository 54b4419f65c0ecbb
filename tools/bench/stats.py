"""Robust summaries for noisy timings: medians and percentile spreads, never means."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(samples: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation between closest ranks."""
    ordered = sorted(samples)
    if not ordered:
        raise ValueError("no samples")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(samples: Sequence[float]) -> tuple[float, float, float]:
    """(median, p10, p90)."""
    return statistics.median(samples), percentile(samples, 10), percentile(samples, 90)


def episode_table(
    steps: int, rounds: int, episodes: int, times: dict[str, list[float]], base: str, label: str
) -> list[str]:
    """The markdown table of episode timings by contender, each as a multiple (column `× label`) of the `base`
    contender's median."""
    base_median = spread(times[base])[0]
    lines = [
        f"{steps}-step episodes, {rounds} interleaved rounds × {episodes} episodes each",
        "",
        f"| contender | median ms / episode | p10–p90 ms | ms / step | × {label} |",
        "|---|---:|---|---:|---:|",
    ]
    for name, samples in times.items():
        median, p10, p90 = spread(samples)
        lines.append(
            f"| {name} | {median * 1e3:.2f} | {p10 * 1e3:.2f}–{p90 * 1e3:.2f} | {median * 1e3 / steps:.2f} "
            f"| {median / base_median:.2f} |"
        )
    return lines
