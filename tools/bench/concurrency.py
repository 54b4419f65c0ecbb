"""Many agents at once: N concurrent `arun` episodes against a server with fixed latency per reply.

The ideal wall time is steps × latency (every agent waits on the server in parallel); what exceeds it is
client-side CPU (the openai client, the loop, the tools) queued on one event loop. Memory per agent is
measured in a separate pass (tracemalloc slows the run): the peak of Python allocations while N episodes
run, above the baseline, divided by N. The server runs in another process, so neither figure includes it.

The first row at each size is the server alone: a bare `httpx` client posting the episode's requests,
encoded in advance, so the client costs next to nothing and the wall shows what the server can do.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any

from tools.bench.episode import (
    ADD_SCHEMA,
    MODEL,
    TASK,
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


SERVER_ALONE = "server alone (bare httpx)"


def _prebuilt_bodies(steps: int) -> list[bytes]:
    """The episode's `steps` request bodies, each with one more tool round than the last."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Use the tools to solve the task."},
        {"role": "user", "content": TASK},
    ]
    bodies = []
    for step in range(steps):
        body = {"model": MODEL, "messages": messages, "tools": [ADD_SCHEMA], "tool_choice": "auto", "max_tokens": 1024}
        bodies.append(json.dumps(body).encode())
        call = {"id": f"call_{step}", "type": "function", "function": {"name": "add", "arguments": "{}"}}
        messages = [
            *messages,
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{step}", "content": str(step + 1)},
        ]
    return bodies


async def _server_alone_episode(client: Any, url: str, bodies: list[bytes]) -> int:
    for body in bodies:
        reply = await client.post(url, content=body, headers={"Content-Type": "application/json"})
        reply.raise_for_status()
    return len(bodies)


async def _server_alone(base_url: str, agents: int, steps: int, latency: float) -> ConcurrencyRow:
    from agentlab.models.wire import response_class

    httpx = importlib.import_module(response_class().__module__.split(".")[0])  # the client openai uses
    bodies, url = _prebuilt_bodies(steps), f"{base_url}/chat/completions"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        await _server_alone_episode(client, url, bodies)
        wall = await _wall([_server_alone_episode(client, url, bodies) for _ in range(agents)])
    return ConcurrencyRow(SERVER_ALONE, agents, wall, steps * latency, None)


async def _one_size(
    base_url: str, agents: int, steps: int, latency: float, raw: bool, memory: bool, raw_memory: bool
) -> list[ConcurrencyRow]:
    server_alone = await _server_alone(base_url, agents, steps, latency)
    model = agentlab_model(base_url)  # one model (one connection pool) shared by all agents
    await agentlab_episode(agentlab_agent(base_url, steps, model), steps)  # warm-up, outside the timing
    wall = await _wall([agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)])
    traced = None
    if memory:
        traced = await _traced_peak_per_agent(
            [agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)]
        )
    rows = [server_alone, ConcurrencyRow("agentlab", agents, wall, steps * latency, traced)]
    await close_model(model)
    if raw:
        client = raw_client(base_url)
        await raw_episode(client, steps)
        wall = await _wall([raw_episode(client, steps) for _ in range(agents)])
        traced = None
        if raw_memory:
            traced = await _traced_peak_per_agent([raw_episode(client, steps) for _ in range(agents)])
        rows.append(ConcurrencyRow("raw openai", agents, wall, steps * latency, traced))
        await client.close()
    return rows


def measure(
    sizes: tuple[int, ...] = (10, 100, 500),
    steps: int = 10,
    latency: float = 0.05,
    raw_up_to: int = 500,
    memory_up_to: int = 500,
    raw_memory_up_to: int = 100,
) -> list[ConcurrencyRow]:
    """Rows for the server alone and agentlab at each size, for the raw client up to `raw_up_to` agents;
    memory is measured up to `memory_up_to` agents (the raw client's up to `raw_memory_up_to`: under
    tracemalloc it is slow enough at 500 agents for its connects to time out)."""
    rows: list[ConcurrencyRow] = []
    with served(steps, latency) as base_url:
        for agents in sizes:
            raw, memory, raw_memory = agents <= raw_up_to, agents <= memory_up_to, agents <= raw_memory_up_to
            rows += asyncio.run(_one_size(base_url, agents, steps, latency, raw, memory, raw_memory))
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
    raw = {r.agents: r.wall for r in rows if r.contender == "raw openai"}
    parts = []
    for row in rows:
        if row.contender == "agentlab":
            versus = f" ({row.wall / raw[row.agents]:.2f}x raw)" if row.agents in raw else ""
            parts.append(f"{row.agents} agents {row.wall / row.ideal:.2f}x ideal{versus}")
    return "concurrency: agentlab " + ", ".join(parts)
