"""Per-step overhead: agentlab `Agent.arun` against a hand-written loop on the raw `openai` client (sync and
async), on the same zero-latency scripted server, in the same process, in interleaved rounds (so drifting
machine load hits all alike). Other frameworks would be extra rows here; none is installed or depended on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tools.bench.episode import (
    agentlab_agent,
    agentlab_episode,
    agentlab_model,
    close_model,
    raw_client,
    raw_episode,
    raw_sync_client,
    raw_sync_episode,
)
from tools.bench.serve import served
from tools.bench.stats import percentile, spread

Episode = Callable[[], Awaitable[int]]
SYNC, ASYNC = "raw openai sync", "raw openai async"
TARGET = 0.6  # issue 16: agentlab per step at most 0.6x the hand-written loop on either client


@dataclass
class OverheadResult:
    steps: int
    rounds: int
    episodes: int
    times: dict[str, list[float]]  # seconds per episode, by contender
    round_ratios: list[float]  # agentlab median / raw sync median, per round

    def ratio(self, baseline: str = SYNC) -> float:
        return spread(self.times["agentlab"])[0] / spread(self.times[baseline])[0]


async def _measure(base_url: str, steps: int, rounds: int, episodes: int) -> OverheadResult:
    client, sync_client, model = raw_client(base_url), raw_sync_client(base_url), agentlab_model(base_url)
    agent = agentlab_agent(base_url, steps, model)

    async def sync_episode() -> int:  # blocks the loop while it runs, as a sync program would
        return raw_sync_episode(sync_client, steps)

    contenders: dict[str, Episode] = {
        SYNC: sync_episode,
        ASYNC: lambda: raw_episode(client, steps),
        "agentlab": lambda: agentlab_episode(agent, steps),
    }
    for run in contenders.values():  # warm-up: connections, imports, first-call caches
        for _ in range(max(2, episodes // 4)):
            await run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    round_ratios = []
    for number in range(rounds):
        order = list(contenders) if number % 2 == 0 else list(reversed(contenders))
        this_round: dict[str, list[float]] = {}
        for name in order:
            samples = this_round[name] = []
            for _ in range(episodes):
                start = time.perf_counter()
                await contenders[name]()
                samples.append(time.perf_counter() - start)
            times[name] += samples
        round_ratios.append(spread(this_round["agentlab"])[0] / spread(this_round[SYNC])[0])
    await client.close()
    sync_client.close()
    await close_model(model)
    return OverheadResult(steps, rounds, episodes, times, round_ratios)


def measure(steps: int = 10, rounds: int = 10, episodes: int = 20) -> OverheadResult:
    with served(steps, 0.0) as base_url:
        return asyncio.run(_measure(base_url, steps, rounds, episodes))


def table(result: OverheadResult) -> list[str]:
    sync_median, async_median = spread(result.times[SYNC])[0], spread(result.times[ASYNC])[0]
    lines = [
        f"{result.steps}-step episodes, {result.rounds} interleaved rounds × {result.episodes} episodes each",
        "",
        "| contender | median ms / episode | p10–p90 ms | ms / step | × raw sync | × raw async |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for name, samples in result.times.items():
        median, p10, p90 = spread(samples)
        lines.append(
            f"| {name} | {median * 1e3:.2f} | {p10 * 1e3:.2f}–{p90 * 1e3:.2f} | {median * 1e3 / result.steps:.2f} "
            f"| {median / sync_median:.2f} | {median / async_median:.2f} |"
        )
    ratios = result.round_ratios
    lines += [
        "",
        f"per-round ratio agentlab / raw sync: median {spread(ratios)[0]:.2f}, p10–p90 {percentile(ratios, 10):.2f}–"
        f"{percentile(ratios, 90):.2f}, min–max {min(ratios):.2f}–{max(ratios):.2f}",
    ]
    return lines


def summary(result: OverheadResult) -> str:
    extra_ms = (spread(result.times["agentlab"])[0] - spread(result.times[SYNC])[0]) * 1e3 / result.steps
    return (
        f"overhead: agentlab / raw openai sync = {result.ratio(SYNC):.2f}x ({extra_ms:+.2f} ms per step), "
        f"/ raw openai async = {result.ratio(ASYNC):.2f}x, target <= {TARGET}x"
    )


def profile(steps: int = 10, episodes: int = 200, top: int = 25) -> str:
    """cProfile of agentlab episodes (after a warm-up), the top functions by own time, as text."""
    import cProfile
    import io
    import pstats

    async def episodes_under(profiler: cProfile.Profile, base_url: str) -> None:
        model = agentlab_model(base_url)
        agent: Any = agentlab_agent(base_url, steps, model)
        for _ in range(10):
            await agentlab_episode(agent, steps)
        profiler.enable()
        for _ in range(episodes):
            await agentlab_episode(agent, steps)
        profiler.disable()
        await close_model(model)

    profiler = cProfile.Profile()
    with served(steps, 0.0) as base_url:
        asyncio.run(episodes_under(profiler, base_url))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats("agentlab", top)
    return out.getvalue()
