"""Streaming cost: the overhead episode (see `overhead`) run with `deltas=True` vs `deltas=False` vs a
hand-written loop on the raw `openai` client streaming the same replies (and not streaming), in
interleaved rounds on the same zero-latency scripted server; then time to first token, against that
server and against the embedded model (where the gain is real: seconds of generation)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tools.bench.episode import (
    ADD_SCHEMA,
    MODEL,
    TASK,
    add_numbers,
    agentlab_agent,
    agentlab_episode,
    agentlab_model,
    close_model,
    raw_client,
    raw_episode,
)
from tools.bench.serve import served
from tools.bench.stats import episode_table, spread

Episode = Callable[[], Awaitable[int]]
RAW_STREAM = "raw openai, stream=True"
DELTAS = "agentlab, deltas=True"


@dataclass
class StreamingResult:
    steps: int
    rounds: int
    episodes: int
    times: dict[str, list[float]]  # seconds per episode, by contender
    first_token: dict[str, list[float]] = field(default_factory=dict)  # seconds to the first text, by contender


async def raw_streaming_episode(client: Any, steps: int) -> int:
    """The raw loop with `stream=True`: the caller folds the chunks into calls itself."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Use the tools to solve the task."},
        {"role": "user", "content": TASK},
    ]
    for request in range(1, steps + 2):
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=messages,
            tools=[ADD_SCHEMA],
            tool_choice="auto",
            temperature=0.0,
            max_tokens=1024,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, calls = "", {}
        async for chunk in stream:
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            text += delta.content or ""
            for piece in delta.tool_calls or ():
                call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = piece.id or call["id"]
                call["name"] += (piece.function.name or "") if piece.function else ""
                call["arguments"] += (piece.function.arguments or "") if piece.function else ""
        if not calls:
            return request
        wire = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls.values()
        ]
        messages.append({"role": "assistant", "content": text, "tool_calls": wire})
        for call in calls.values():
            result = add_numbers(**json.loads(call["arguments"]))
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": str(result)})
    raise RuntimeError(f"the episode did not end after {steps} steps")


async def deltas_episode(agent: Any, steps: int) -> int:
    from agentlab import events as ev

    end = None
    async for event in agent.astream(TASK, deltas=True):
        end = event
    if not isinstance(end, ev.RunFinished) or end.status != "done" or end.steps != steps:
        raise RuntimeError(f"agentlab episode (deltas) did not finish as expected: {end}")
    return end.steps


async def _episodes(base_url: str, steps: int, rounds: int, episodes: int) -> dict[str, list[float]]:
    client, model = raw_client(base_url), agentlab_model(base_url)
    agent = agentlab_agent(base_url, steps, model)
    contenders: dict[str, Episode] = {
        "raw openai": lambda: raw_episode(client, steps),
        RAW_STREAM: lambda: raw_streaming_episode(client, steps),
        "agentlab, deltas=False": lambda: agentlab_episode(agent, steps),
        DELTAS: lambda: deltas_episode(agent, steps),
    }
    for run in contenders.values():  # warm-up: connections, imports, first-call caches
        for _ in range(max(2, episodes // 4)):
            await run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for number in range(rounds):
        order = list(contenders) if number % 2 == 0 else list(reversed(contenders))
        for name in order:
            for _ in range(episodes):
                start = time.perf_counter()
                await contenders[name]()
                times[name].append(time.perf_counter() - start)
    await client.close()
    await close_model(model)
    return times


async def _first_tokens(base_url: str, samples: int) -> dict[str, list[float]]:
    """Seconds to the first text of a one-step episode (a plain-text answer) on a zero-latency server."""
    from agentlab import events as ev

    client, model = raw_client(base_url), agentlab_model(base_url)
    agent = agentlab_agent(base_url, 1, model)
    found: dict[str, list[float]] = {"raw openai, stream=True": [], "agentlab, deltas=True": []}
    for _ in range(samples):
        start = time.perf_counter()
        stream = await client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": TASK}], tools=[ADD_SCHEMA], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                found[RAW_STREAM].append(time.perf_counter() - start)
                break
        await stream.close()
        start = time.perf_counter()
        events = agent.astream(TASK, deltas=True)
        async for event in events:
            if isinstance(event, ev.TextDelta):
                found[DELTAS].append(time.perf_counter() - start)
                break
        await events.aclose()
    await client.close()
    await close_model(model)
    return found


async def _local_first_token(runs: int) -> dict[str, list[float]]:
    """The embedded model: seconds to the first text delta vs to the first whole decision (what a
    caller without deltas waits for), warm (the model loaded by a first run)."""
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.models import LocalModel
    from agentlab.tools.builtin import calculator

    agent = Agent(model=LocalModel(), tools=[calculator], max_steps=1)
    await agent.arun("Warm up.")
    found: dict[str, list[float]] = {"embedded: first text_delta": [], "embedded: first decision": []}
    for _ in range(runs):
        start, first = time.perf_counter(), None
        async for event in agent.astream("What is 17 * 23? Use the calculator.", deltas=True):
            if isinstance(event, ev.TextDelta) and first is None:
                first = time.perf_counter() - start
            if isinstance(event, ev.Decision | ev.ParseError):
                found["embedded: first decision"].append(time.perf_counter() - start)
                break
        if first is not None:
            found["embedded: first text_delta"].append(first)
    return found


def measure(steps: int, rounds: int, episodes: int, samples: int, local_runs: int) -> StreamingResult:
    with served(steps, 0.0) as base_url:
        times = asyncio.run(_episodes(base_url, steps, rounds, episodes))
    with served(1, 0.0) as base_url:
        first = asyncio.run(_first_tokens(base_url, samples))
    if local_runs:
        from agentlab.models.local import local_model_available

        if local_model_available():
            first.update(asyncio.run(_local_first_token(local_runs)))
    return StreamingResult(steps, rounds, episodes, times, first)


def table(result: StreamingResult) -> list[str]:
    lines = episode_table(result.steps, result.rounds, result.episodes, result.times, RAW_STREAM, "raw streaming")
    lines += ["", "| time to first token | median ms | p10–p90 ms | samples |", "|---|---:|---|---:|"]
    for name, samples in result.first_token.items():
        if samples:
            median, p10, p90 = spread(samples)
            lines.append(f"| {name} | {median * 1e3:.1f} | {p10 * 1e3:.1f}–{p90 * 1e3:.1f} | {len(samples)} |")
    return lines


def summary(result: StreamingResult) -> str:
    deltas, raw = spread(result.times[DELTAS])[0], spread(result.times[RAW_STREAM])[0]
    plain = spread(result.times["agentlab, deltas=False"])[0]
    extra_ms = (deltas - raw) * 1e3 / result.steps
    return (
        f"streaming: agentlab deltas=True / raw openai streaming = {deltas / raw:.2f}x ({extra_ms:+.2f} ms per step); "
        f"deltas=True / deltas=False = {deltas / plain:.2f}x"
    )
