"""Many agents at once: N concurrent `arun` episodes against a server with fixed latency per reply.

The ideal wall time is steps × latency (every agent waits on the server in parallel); what exceeds it is
client-side CPU (the openai client, the loop, the tools) queued on one event loop. Memory per agent is
measured in a separate pass (tracemalloc slows the run): the peak of Python allocations while N episodes
run, above the baseline, divided by N. The server runs in another process, so neither figure includes it.

The first row at each size is the server alone: a bare HTTP/1.1 client on asyncio streams posting the
episode's requests, encoded in advance, so the client costs next to nothing and the wall shows what the
server can do. CPU milliseconds per request, of this process and of the server's, are measured too: on
a loaded machine they move less than wall times.
"""

from __future__ import annotations

import asyncio
import json
import time
import tracemalloc
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

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
from tools.bench.serve import cpu_seconds, served_process


@dataclass
class ConcurrencyRow:
    contender: str
    agents: int
    wall: float
    ideal: float
    memory_per_agent: float | None  # bytes of traced Python allocations at the peak
    client_cpu: float  # seconds of this process's CPU per request
    server_cpu: float | None  # seconds of the server process's CPU per request


@dataclass
class Timed:
    wall: float
    client_cpu: float
    server_cpu: float | None


async def _timed(episodes: list[Any], server_pid: int, requests: int) -> Timed:
    server_before, began, cpu_began = cpu_seconds(server_pid), time.perf_counter(), time.process_time()
    await asyncio.gather(*episodes)
    wall, cpu, server_after = time.perf_counter() - began, time.process_time() - cpu_began, cpu_seconds(server_pid)
    server = None if server_before is None or server_after is None else (server_after - server_before) / requests
    return Timed(wall, cpu / requests, server)


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


SERVER_ALONE = "server alone (bare client)"


def _prebuilt_requests(base_url: str, steps: int) -> list[bytes]:
    """The episode's `steps` HTTP requests, each with one more tool round than the last."""
    path = urlsplit(base_url).path.rstrip("/") + "/chat/completions"
    host = urlsplit(base_url).netloc
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Use the tools to solve the task."},
        {"role": "user", "content": TASK},
    ]
    requests = []
    for step in range(steps):
        body = {"model": MODEL, "messages": messages, "tools": [ADD_SCHEMA], "tool_choice": "auto", "max_tokens": 1024}
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        requests.append(f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data)
        call = {"id": f"call_{step}", "type": "function", "function": {"name": "add", "arguments": "{}"}}
        messages = [
            *messages,
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": f"call_{step}", "content": str(step + 1)},
        ]
    return requests


async def _server_alone_episode(base_url: str, requests: list[bytes]) -> int:
    """The requests on one kept-alive connection; each reply's head is read up to Content-Length."""
    where = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(where.hostname, where.port)
    try:
        for request in requests:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the server answered {head[:40]!r}")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
    finally:
        writer.close()
    return len(requests)


async def _one_size(
    base_url: str, pid: int, agents: int, steps: int, latency: float, raw: bool, memory: bool, raw_memory: bool
) -> list[ConcurrencyRow]:
    requests, ideal, count = _prebuilt_requests(base_url, steps), steps * latency, agents * steps
    await _server_alone_episode(base_url, requests)
    timed = await _timed([_server_alone_episode(base_url, requests) for _ in range(agents)], pid, count)
    rows = [ConcurrencyRow(SERVER_ALONE, agents, timed.wall, ideal, None, timed.client_cpu, timed.server_cpu)]

    model = agentlab_model(base_url)  # one model shared by all agents
    await agentlab_episode(agentlab_agent(base_url, steps, model), steps)  # warm-up, outside the timing
    episodes = [agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)]
    timed = await _timed(episodes, pid, count)
    traced = None
    if memory:
        traced = await _traced_peak_per_agent(
            [agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)]
        )
    rows.append(ConcurrencyRow("agentlab", agents, timed.wall, ideal, traced, timed.client_cpu, timed.server_cpu))
    await close_model(model)
    if raw:
        client = raw_client(base_url)
        await raw_episode(client, steps)
        timed = await _timed([raw_episode(client, steps) for _ in range(agents)], pid, count)
        traced = None
        if raw_memory:
            traced = await _traced_peak_per_agent([raw_episode(client, steps) for _ in range(agents)])
        rows.append(ConcurrencyRow("raw openai", agents, timed.wall, ideal, traced, timed.client_cpu, timed.server_cpu))
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
    with served_process(steps, latency) as (base_url, pid):
        for agents in sizes:
            raw, memory, raw_memory = agents <= raw_up_to, agents <= memory_up_to, agents <= raw_memory_up_to
            rows += asyncio.run(_one_size(base_url, pid, agents, steps, latency, raw, memory, raw_memory))
    return rows


def table(rows: list[ConcurrencyRow], steps: int, latency: float) -> list[str]:
    lines = [
        f"{steps}-step episodes, {latency * 1e3:.0f} ms server latency per reply; ideal wall = steps × latency",
        "",
        "| contender | agents | wall s | ideal s | wall / ideal | client CPU ms / request | server CPU ms / request "
        "| peak Python memory per agent |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        server = "–" if row.server_cpu is None else f"{row.server_cpu * 1e3:.2f}"
        memory = "–" if row.memory_per_agent is None else f"{row.memory_per_agent / 1024:.0f} KiB"
        lines.append(
            f"| {row.contender} | {row.agents} | {row.wall:.2f} | {row.ideal:.2f} | {row.wall / row.ideal:.2f} | "
            f"{row.client_cpu * 1e3:.2f} | {server} | {memory} |"
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


def profile(agents: int = 200, steps: int = 10, latency: float = 0.05, top: int = 15) -> str:
    """cProfile of `agents` concurrent episodes (after a warm-up): own time by package (the loop's wait in
    epoll left out), then agentlab's heaviest functions. The profiler slows everything about twofold; read
    the shares, not the seconds."""
    import cProfile
    import io
    import pstats

    async def episodes_under(profiler: cProfile.Profile, base_url: str) -> None:
        model = agentlab_model(base_url)
        await agentlab_episode(agentlab_agent(base_url, steps, model), steps)
        profiler.enable()
        await asyncio.gather(*[agentlab_episode(agentlab_agent(base_url, steps, model), steps) for _ in range(agents)])
        profiler.disable()
        await close_model(model)

    profiler = cProfile.Profile()
    with served_process(steps, latency) as (base_url, _):
        asyncio.run(episodes_under(profiler, base_url))
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    by_package: dict[str, float] = {}
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "select.epoll" in function:
            continue  # the event loop waiting for the server: idle, not work
        by_package[_package(filename)] = by_package.get(_package(filename), 0.0) + own
    total = sum(by_package.values())
    out.write(f"own time by package, {agents} agents × {steps} steps:\n")
    for name, own in sorted(by_package.items(), key=lambda item: -item[1])[:top]:
        out.write(f"  {name:<28} {100 * own / total:5.1f}%\n")
    stats.sort_stats("tottime").print_stats("agentlab", top)
    return out.getvalue()


def _package(filename: str) -> str:
    """What a profiled function belongs to: agentlab, a site-packages distribution, or a stdlib module."""
    if "/agentlab/" in filename:
        return "agentlab"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename == "~":
        return "builtins (C)"
    parts = filename.split("/")
    if len(parts) > 1 and parts[-2] in ("asyncio", "json", "concurrent"):
        return parts[-2]
    return parts[-1].removesuffix(".py")
