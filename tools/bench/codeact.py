"""The cost of one tool call made from CodeAct code (a round trip over the sandbox session's JSON channel:
frame out, validation and the call in this process, result frame back) next to the same call made the
ReAct way (the loop calling `ToolRegistry.invoke`, which validates and runs it in this process).

The tool is `add(a, b)`, so the numbers are the path's overhead, not the tool's work. Per call, CodeAct =
(a snippet making N calls - an empty snippet) / N, in one warm session; model time is not included in
either (in a real run ReAct pays a model call per tool call, CodeAct can make several per snippet)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from tools.bench.stats import spread


@dataclass
class CallCost:
    react: list[float]  # seconds per call
    codeact: list[float]  # seconds per call
    empty_snippet: list[float]  # seconds per empty snippet round trip
    calls_per_snippet: int


def _registry():
    from agentlab import ToolRegistry, tool

    @tool
    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first number.
            b: The second number.
        """
        return a + b

    return ToolRegistry([add])


async def _measure(rounds: int, calls: int) -> CallCost:
    from agentlab.sandbox import CallRefused, Sandbox

    registry = _registry()
    react = []
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(calls):
            output = await registry.invoke("add", {"a": i, "b": 1})
        react.append((time.perf_counter() - start) / calls)
        if output.content != str(calls):
            raise RuntimeError(f"unexpected tool output {output.content!r}")

    async def handler(name: str, arguments: dict) -> object:
        output = await registry.invoke(name, arguments)
        if not output.ok:
            raise CallRefused(output.content)
        return int(output.content)

    codeact, empty = [], []
    loop_code = f"total = 0\nfor i in range({calls}):\n    total = add(i, 1)\nprint(total)"
    with Sandbox(timeout=30, pool_size=0) as box:
        async with box.session({"add": ["a", "b"]}, max_calls=calls) as session:
            await session.execute("pass", handler)  # start the worker outside the timings
            for _ in range(rounds):
                start = time.perf_counter()
                await session.execute("pass", handler)
                empty.append(time.perf_counter() - start)
                start = time.perf_counter()
                result = await session.execute(loop_code, handler)
                elapsed = time.perf_counter() - start
                if not result.ok or result.stdout.strip() != str(calls):
                    raise RuntimeError(f"sandbox snippet failed: {result.error} {result.stdout!r}")
                codeact.append(max(0.0, elapsed - empty[-1]) / calls)
    return CallCost(react, codeact, empty, calls)


def measure(rounds: int = 10, calls: int = 200) -> CallCost:
    return asyncio.run(_measure(rounds, calls))


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f}"


def table(cost: CallCost) -> list[str]:
    rows = [
        "| path | median µs | p10 µs | p90 µs |",
        "|---|---:|---:|---:|",
    ]
    for label, samples in (
        ("ReAct: `ToolRegistry.invoke` in the loop, per call", cost.react),
        (
            f"CodeAct: call from a snippet over the channel, per call ({cost.calls_per_snippet} per snippet)",
            cost.codeact,
        ),
        ("CodeAct: an empty snippet in a warm session (per step)", cost.empty_snippet),
    ):
        median, p10, p90 = spread(samples)
        rows.append(f"| {label} | {_us(median)} | {_us(p10)} | {_us(p90)} |")
    return rows


def summary(cost: CallCost) -> str:
    react, codeact = spread(cost.react)[0], spread(cost.codeact)[0]
    ratio = codeact / react if react else float("inf")
    return (
        f"codeact: one tool call {_us(codeact)} µs from code vs {_us(react)} µs from ReAct "
        f"({ratio:.1f}x); empty snippet {_us(spread(cost.empty_snippet)[0])} µs"
    )
