"""Many agents at once: N concurrent `arun` episodes against a server with fixed latency per reply.

The ideal wall time is steps × latency (every agent waits on the server in parallel); what exceeds it is
client-side CPU (the openai client, the loop, the tools) queued on one event loop. Memory is the peak RSS
growth of this process (the server runs in another) divided by N, sampled every 5 ms.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from typing import Any

from tools.bench.episode import (
    agentlab_agent,
    agentlab_episode,
    agentlab_model,
    close_model,
    raw_client,
    raw_episode,
)
from tools.bench.serve import served
from tools.bench.stats import rss_bytes


@dataclass
class ConcurrencyRow:
    contender: str
    agents: int
    wall: float
    ideal: float
    rss_per_agent: float  # bytes


class _PeakRss:
    """Samples RSS on a thread while a block runs (the event loop is too busy to sample itself)."""

    def __enter__(self) -> _PeakRss:
        self.baseline = self.peak = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


async def _timed(episodes: list[Any], agents: int) -> tuple[float, float]:
    """(wall seconds, peak RSS growth per agent) of running the episode coroutines together."""
    with _PeakRss() as memory:
        began = time.perf_counter()
        await asyncio.gather(*episodes)
        wall = time.perf_counter() - began
    return wall, (memory.peak - memory.baseline) / agents


async def _one_size(base_url: str, agents: int, steps: int, latency: float, raw: bool) -> list[ConcurrencyRow]:
    model = agentlab_model(base_url)  # one model (one connection pool) shared by all agents
    runners = [agentlab_agent(base_url, steps, model) for _ in range(agents)]
    await agentlab_episode(runners[0], steps)  # imports and first-call caches, outside the timing
    wall, rss = await _timed([agentlab_episode(agent, steps) for agent in runners], agents)
    rows = [ConcurrencyRow("agentlab", agents, wall, steps * latency, rss)]
    await close_model(model)
    if raw:
        client = raw_client(base_url)
        await raw_episode(client, steps)
        wall, rss = await _timed([raw_episode(client, steps) for _ in range(agents)], agents)
        rows.append(ConcurrencyRow("raw openai", agents, wall, steps * latency, rss))
        await client.close()
    return rows


def measure(sizes: tuple[int, ...] = (10, 100, 500), steps: int = 10, latency: float = 0.05,
            raw_up_to: int = 100) -> list[ConcurrencyRow]:
    """Rows for agentlab at each size, and for the raw client up to `raw_up_to` agents (for reference)."""
    rows: list[ConcurrencyRow] = []
    with served(steps, latency) as base_url:
        for agents in sizes:
            rows += asyncio.run(_one_size(base_url, agents, steps, latency, agents <= raw_up_to))
    return rows


def table(rows: list[ConcurrencyRow], steps: int, latency: float) -> list[str]:
    lines = [
        f"{steps}-step episodes, {latency * 1e3:.0f} ms server latency per reply; ideal wall = steps × latency",
        "",
        "| contender | agents | wall s | ideal s | wall / ideal | peak RSS growth per agent |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.contender} | {row.agents} | {row.wall:.2f} | {row.ideal:.2f} | {row.wall / row.ideal:.2f} | "
            f"{row.rss_per_agent / 1024:.0f} KiB |"
        )
    return lines


def summary(rows: list[ConcurrencyRow]) -> str:
    parts = [f"{r.agents} agents {r.wall / r.ideal:.2f}x ideal" for r in rows if r.contender == "agentlab"]
    return "concurrency: " + ", ".join(parts)
