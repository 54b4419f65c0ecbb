"""What context compaction costs: a ReAct episode that reads long pages (about 600 tokens each) with a small
context window, with compaction and without, against the scripted server (which charges no model time, so
the figures are agentlab's own work plus one HTTP round trip per summary).

Per compaction: the time spent making the request fit (previews, the summary request, token counting),
timed around `Compactor.compact` in this process; and the extra tokens, those of the summary requests (the
model is asked to summarise the oldest turns). Against them: the prompt tokens the episode sends in all."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from tools.bench.stats import spread

WINDOW = 2048


@dataclass
class Episode:
    seconds: float
    prompt_tokens: int  # of the episode's own requests, as the server counted them
    summary_tokens: int  # prompt + completion tokens of the summary requests
    compactions: int
    summaries: int
    compact_seconds: list[float] = field(default_factory=list)  # the calls that compacted
    check_seconds: list[float] = field(default_factory=list)  # the calls that found the request fits


def _read_page() -> Any:
    from agentlab import tool

    @tool
    def read_page(n: int) -> str:
        """Read one page of the book.

        Args:
            n: The page number.
        """
        lines = [
            f"Line {i} of page {n}: the crate arrived at dock {(n + i) % 9} with {7 * i + n} boxes." for i in range(25)
        ]
        return " ".join(lines)

    return read_page


def _script(pages: int) -> Any:
    from agentlab.run.compaction import SUMMARY_SYSTEM

    asked: list[int] = []

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if body["messages"][0]["content"] == SUMMARY_SYSTEM:
            return {"content": "Pages read so far: crates arrived at docks 0-8; nothing missing."}
        asked.append(index)
        if len(asked) <= pages:
            return {"tool_calls": [{"name": "read_page", "arguments": {"n": len(asked)}}]}
        return {"content": f"read {pages} pages"}

    return reply


def _episode(pages: int, compaction: bool) -> Episode:
    from agentlab import Agent, OpenAIModel
    from agentlab import events as ev
    from agentlab.run import compaction as compaction_module
    from agentlab.run.compaction import SUMMARY_SYSTEM
    from agentlab.testing import ScriptedServer

    timings: list[tuple[float, bool]] = []
    original = compaction_module.Compactor.compact

    async def timed(self: Any, request: Any, summarise: Any, task: str | None = None) -> Any:
        started = time.perf_counter()
        outcome = await original(self, request, summarise, task)
        timings.append((time.perf_counter() - started, outcome is not None))
        return outcome

    compaction_module.Compactor.compact = timed  # type: ignore[method-assign]  # a benchmark's stopwatch
    try:
        with ScriptedServer(_script(pages)) as srv:
            model = OpenAIModel("scripted", srv.base_url, "bench")
            agent = Agent(
                model, tools=[_read_page()], max_steps=pages + 2, context_window=WINDOW, compaction=compaction
            )
            started = time.perf_counter()
            result = agent.run("Read every page and say how many you read.")
            seconds = time.perf_counter() - started
            if result.status != "done":
                raise RuntimeError(f"the episode ended {result.status}: {result.error}")
            summaries = [r for r in srv.requests if r["messages"][0]["content"] == SUMMARY_SYSTEM]
    finally:
        compaction_module.Compactor.compact = original  # type: ignore[method-assign]
    compacted = [e for e in result.events if isinstance(e, ev.Compacted)]
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    summary_tokens = result.usage.total_tokens - sum(c.usage.total_tokens for c in calls)
    return Episode(
        seconds,
        sum(c.usage.prompt_tokens for c in calls),
        summary_tokens,
        len(compacted),
        len(summaries),
        [t for t, did in timings if did],
        [t for t, did in timings if not did],
    )


def measure(pages: int, rounds: int) -> dict[str, list[Episode]]:
    measured: dict[str, list[Episode]] = {"on": [], "off": []}
    _episode(pages, True)  # warm-up: imports, the first HTTP connection
    for _ in range(rounds):
        for mode in ("on", "off"):
            measured[mode].append(_episode(pages, mode == "on"))
    return measured


def table(measured: dict[str, list[Episode]]) -> list[str]:
    lines = [
        f"{len(measured['on'])} episodes each, window {WINDOW} tokens, scripted server (no model time)",
        "",
        "| compaction | median s / episode | prompt tokens sent | compactions | summary requests | summary tokens "
        "| ms per compaction (median, p10–p90) | ms per check that fits |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for mode, episodes in measured.items():
        first = episodes[0]
        lines.append(
            f"| {mode} | {statistics.median(e.seconds for e in episodes):.3f} | {first.prompt_tokens} "
            f"| {first.compactions} | {first.summaries} | {first.summary_tokens} "
            f"| {_ms([t for e in episodes for t in e.compact_seconds])} "
            f"| {_ms([t for e in episodes for t in e.check_seconds], bare=True)} |"
        )
    return lines


def summary(measured: dict[str, list[Episode]]) -> str:
    on, off = measured["on"][0], measured["off"][0]
    per = [t * 1000 for e in measured["on"] for t in e.compact_seconds]
    extra = on.summary_tokens / on.compactions if on.compactions else 0.0
    return (
        f"compaction: {on.compactions} compactions, {extra:.0f} extra tokens each (summaries), "
        f"{statistics.median(per) if per else 0.0:.2f} ms each (median); prompt tokens {on.prompt_tokens} with, "
        f"{off.prompt_tokens} without"
    )


def _ms(seconds: list[float], bare: bool = False) -> str:
    if not seconds:
        return "–"
    median, low, high = spread([s * 1000 for s in seconds])
    return f"{median:.2f}" if bare else f"{median:.2f} ({low:.2f}–{high:.2f})"
