"""Many agents at once: N concurrent `arun` episodes against a server with fixed latency per reply.

The ideal wall time is steps × latency (every agent waits on the server in parallel); what exceeds it is
client-side CPU (the openai client, the loop, the tools) queued on one event loop. Memory per agent is
measured in a separate pass (tracemalloc slows the run): the peak of Python allocations while N episodes
run, above the baseline, divided by N. The server runs in another process, so neither figure includes it.
"""

from __future__ import annotations

import asyncio
import time
import tracemalloc
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


@dataclass
class ConcurrencyRow:
    contender: str
    agents: int
    wall: float
    ideal: float
    memory_per_agent: float | None  # bytes of traced Python allocations at the peak


async def _wall(episodes: list[Any]) -> float:
    began = time.perf_counter()
    await asyncio.gather(*episodes)
    return time.perf_counter() - began


async def _traced_peak_per_agent(episodes: list[Any]) -> float:
    """Peak traced Python memory above the starting point while the episodes run together, per episode."""
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        await asyncio.gather(*episodes)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - baseline) / len(episodes)


async def _one_size(
    base_url: str, agents: int, steps: int, latency: float, raw: bool, memory: bool
) -> list[ConcurrencyRow]:
    model = agentlab_model(base_url)  # one model (one connection pool) shared by all agents
    await agentlab_episode(agentlab_agent(base_url, steps, model), steps)  # warm-up, outside the timing
    wall = await _wall([agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)])
    traced = None
    if memory:
        traced = await _traced_peak_per_agent(
            [agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)]
        )
    rows = [ConcurrencyRow("agentlab", agents, wall, steps * latency, traced)]
    await close_model(model)
    if raw:
        client = raw_client(base_url)
        await raw_episode(client, steps)
        wall = await _wall([raw_episode(client, steps) for _ in range(agents)])
        traced = await _traced_peak_per_agent([raw_episode(client, steps) for _ in range(agents)]) if memory else None
        rows.append(ConcurrencyRow("raw openai", agents, wall, steps * latency, traced))
        await client.close()
    return rows


def measure(
    sizes: tuple[int, ...] = (10, 100, 500),
    steps: int = 10,
    latency: float = 0.05,
    raw_up_to: int = 100,
    memory_up_to: int = 100,
) -> list[ConcurrencyRow]:
    """Rows for agentlab at each size, for the raw client up to `raw_up_to` agents (for reference); memory is
    measured up to `memory_up_to` agents."""
    rows: list[ConcurrencyRow] = []
    with served(steps, latency) as base_url:
        for agents in sizes:
            raw, memory = agents <= raw_up_to, agents <= memory_up_to
            rows += asyncio.run(_one_size(base_url, agents, steps, latency, raw, memory))
    return rows


def table(rows: list[ConcurrencyRow], steps: int, latency: float) -> list[str]:
    lines = [
        f"{steps}-step episodes, {latency * 1e3:.0f} ms server latency per reply; ideal wall = steps × latency",
        "",
        "| contender | agents | wall s | ideal s | wall / ideal | peak Python memory per agent |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.contender} | {row.agents} | {row.wall:.2f} | {row.ideal:.2f} | {row.wall / row.ideal:.2f} | "
            f"{'–' if row.memory_per_agent is None else f'{row.memory_per_agent / 1024:.0f} KiB'} |"
        )
    return lines


def summary(rows: list[ConcurrencyRow]) -> str:
    parts = [f"{r.agents} agents {r.wall / r.ideal:.2f}x ideal" for r in rows if r.contender == "agentlab"]
    return "concurrency: " + ", ".join(parts)
