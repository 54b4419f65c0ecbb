"""Running a strategy over suite items: one agent run per item, cached per item, on asyncio or Ray."""

from __future__ import annotations

import asyncio
import functools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agentlab._jsonl import jsonl_lines
from agentlab.executors import close_model_client, run_jobs
from tools.eval.baselines import BASELINES
from tools.eval.scoring import has_debris
from tools.eval.suites import SUITES, Item, suite_tools

REPO_ROOT = Path(__file__).resolve().parents[2]

ResultCallback = Callable[[Item, dict[str, Any]], None]


class UnknownStrategy(ValueError):
    """The strategy name is neither a baseline nor in agentlab.strategies.STRATEGIES at run time."""


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build, in a form that pickles to Ray workers; API keys come from the environment
    (AGENTLAB_API_KEY, else OPENAI_API_KEY) where the model is built, never from this object."""

    base_url: str | None = None
    model: str | None = None
    tight_grammar: bool = True  # the embedded model's budgeted grammar (agentlab.models.grammar)
    n_ctx: int | None = None  # the embedded model's context window (None: its default)
    repeat_penalty: float | None = None  # the embedded model's repeat penalty (None: its default)

    def build(self) -> Any:
        if self.base_url:
            from agentlab.models import OpenAIModel

            if not self.model:
                raise ValueError("--base-url needs --model")
            key = os.environ.get("AGENTLAB_API_KEY") or os.environ.get("OPENAI_API_KEY")
            return OpenAIModel(model=self.model, base_url=self.base_url, api_key=key)
        from agentlab.models import default_model

        model = default_model()
        if hasattr(model, "tight_grammar"):
            model.tight_grammar = self.tight_grammar
        if self.repeat_penalty is not None and hasattr(model, "repeat_penalty"):
            model.repeat_penalty = self.repeat_penalty
        if self.n_ctx and hasattr(model, "n_ctx"):
            model.n_ctx = self.n_ctx  # a small real window, so what compaction prevents can happen
        return model


@dataclass(frozen=True)
class StrategySpec:
    """`name` or `name:key=value,...` (values read as JSON when they parse, else as text)."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> StrategySpec:
        name, _, rest = text.strip().partition(":")
        options: dict[str, Any] = {}
        for pair in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"strategy option {pair!r} is not key=value")
            try:
                options[key.strip()] = json.loads(value)
            except ValueError:
                options[key.strip()] = value.strip()
        return cls(name, options)

    @property
    def label(self) -> str:
        if not self.options:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))

    def factory(self) -> Callable[[], Any]:
        """A zero-argument strategy factory for `Agent`; raises UnknownStrategy naming what exists now."""
        if self.name in BASELINES:
            baseline = BASELINES[self.name]
            return lambda: baseline(**self.options)
        from agentlab.strategies import STRATEGIES

        factory = STRATEGIES.get(self.name)
        if factory is None:
            available = ", ".join([*BASELINES, *sorted(STRATEGIES)])
            raise UnknownStrategy(f"strategy {self.name!r} is not available in this checkout; available: {available}")
        return lambda: factory(**self.options)

    @property
    def uses_tools(self) -> bool:
        return self.name not in BASELINES


@dataclass(frozen=True)
class EvalConfig:
    suite: str
    strategy: StrategySpec
    model: ModelSpec
    corpus: str | None = None
    max_steps: int = 8
    max_seconds: float | None = 300.0
    output_type: str = "auto"  # "auto" (float for numeric suites), "float" or "text"
    demos: str = "auto"  # "auto" (Agent's default: built-in demos on the embedded model), "on" or "off"
    context_window: int | None = None  # the Agent's context_window (None: learned from the model)
    compaction: bool = True

    @property
    def typed_output(self) -> Any:
        """The Agent's output_type for this config."""
        numeric = self.suite in NUMERIC_SUITES
        if self.output_type == "float" or (self.output_type == "auto" and numeric):
            return float
        return str

    @property
    def variant(self) -> str:
        """The options beside the strategy, as they appear in cache keys and tables."""
        parts = [f"out={'float' if self.typed_output is float else 'text'}", f"demos={self.demos}"]
        if not self.model.tight_grammar:
            parts.append("grammar=loose")
        if self.model.repeat_penalty is not None:
            parts.append(f"repeat_penalty={self.model.repeat_penalty}")
        if self.context_window:
            parts.append(f"ctx={self.context_window}")
        if not self.compaction:
            parts.append("compaction=off")
        return ",".join(parts)

    @property
    def label(self) -> str:
        return f"{self.strategy.label} [{self.variant}]"


NUMERIC_SUITES = ("gsm8k", "arith")
DEMOS = {"auto": None, "on": True, "off": False}


async def run_item(config: EvalConfig, item: Item, model: Any) -> dict[str, Any]:
    """One agent run on one item, scored; the record that is cached and reported."""
    from agentlab import Agent
    from agentlab import events as ev
    from agentlab.run.output import SHORT_ANSWER_INSTRUCTIONS, ShortAnswer

    suite = SUITES[config.suite]
    agent = Agent(
        model=model,
        tools=suite_tools(config.suite, config.corpus) if config.strategy.uses_tools else (),
        strategy=config.strategy.factory(),
        max_steps=config.max_steps,
        max_seconds=config.max_seconds,
        # QA scoring compares short answers: ask for one (an app's answer has no such limit)
        instructions=f"{suite.instructions} {SHORT_ANSWER_INSTRUCTIONS}",
        output_type=ShortAnswer if config.typed_output is str else config.typed_output,
        demos=DEMOS[config.demos],
        context_window=config.context_window,
        compaction=config.compaction,
    )
    result = await agent.arun(item.question)
    score = suite.score(result.answer, item.gold)
    return {
        "id": item.id,
        "question": item.question,
        "gold": item.gold,
        "prediction": result.answer,
        "correct": score.correct,
        "f1": score.f1,
        "status": result.status,
        "error": result.error,
        "steps": result.steps,
        "decisions": sum(isinstance(e, ev.Decision) for e in result.events),
        "parse_errors": sum(isinstance(e, ev.ParseError) for e in result.events),
        "tool_calls": sum(isinstance(e, ev.ToolStarted) for e in result.events),
        "compactions": sum(isinstance(e, ev.Compacted) for e in result.events),
        "debris": has_debris(result.answer),
        "prompt_tokens": result.usage.prompt_tokens,
        "completion_tokens": result.usage.completion_tokens,
        "seconds": round(result.duration, 3),
    }


def run_item_blocking(config: EvalConfig, item: Item) -> dict[str, Any]:
    """`run_item` in a fresh event loop with a model built here: the body of a Ray task."""

    async def main() -> dict[str, Any]:
        model = config.model.build()
        try:
            return await run_item(config, item, model)
        finally:
            await close_model_client(model)

    return asyncio.run(main())


class ItemCache:
    """Finished items as JSONL, one `{"key", "result"}` line each, appended as they finish, so an interrupted
    run continues where it stopped. Keys are suite/strategy/model/item id. Runs that ended in `error` (an
    endpoint failure, a crash) are not cached: the next run tries them again."""

    def __init__(self, path: Path, *, read: bool = True) -> None:
        self.path = path
        self._results: dict[str, dict[str, Any]] = {}
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        self._cut_short = bool(text) and not text.endswith("\n")  # the next record must start on a new line
        if read and text:
            # A line cut short by an interruption is not a record: that item simply runs again.
            for _, record in jsonl_lines(path, ("key", "result")):
                if isinstance(record, dict) and isinstance(record["key"], str):
                    self._results[record["key"]] = record["result"]

    @staticmethod
    def key(config: EvalConfig, model_name: str, item_id: str) -> str:
        return f"{config.suite}/{config.label}/{model_name}/{item_id}"

    def get(self, key: str) -> dict[str, Any] | None:
        return self._results.get(key)

    def put(self, key: str, result: dict[str, Any]) -> None:
        if result.get("status") == "error":
            return
        self._results[key] = result
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(("\n" if self._cut_short else "") + json.dumps({"key": key, "result": result}) + "\n")
        self._cut_short = False


def evaluate(
    config: EvalConfig,
    items: Sequence[Item],
    cache: ItemCache,
    *,
    model: Any,
    executor: str = "local",
    concurrency: int = 4,
    on_result: ResultCallback | None = None,
) -> list[dict[str, Any]]:
    """Results for `items` in their order: cached ones as stored (marked `cached`), the rest run now."""
    results: dict[str, dict[str, Any]] = {}
    pending: list[Item] = []
    for item in items:
        cached = cache.get(ItemCache.key(config, model.name, item.id))
        if cached is not None:
            results[item.id] = {**cached, "cached": True}
            if on_result:
                on_result(item, results[item.id])
        else:
            pending.append(item)

    def finished(item: Item, result: dict[str, Any]) -> None:
        cache.put(ItemCache.key(config, model.name, item.id), result)
        results[item.id] = {**result, "cached": False}
        if on_result:
            on_result(item, results[item.id])

    if pending:
        # An unknown strategy or a missing corpus fails here, before any item runs.
        config.strategy.factory()
        suite_tools(config.suite, config.corpus)
        run_jobs(
            pending,
            finished,
            arun=lambda item: run_item(config, item, model),
            run=functools.partial(run_item_blocking, config),
            executor=executor,
            concurrency=concurrency,
            aclose=lambda: close_model_client(model),  # the HTTP client this loop opened; the model stays usable
            pythonpath=[str(REPO_ROOT)],  # so a local Ray instance's workers can import `tools`
        )
    return [results[item.id] for item in items]


def config_dict(config: EvalConfig) -> dict[str, Any]:
    data = asdict(config)
    data["strategy"] = config.strategy.label
    data["variant"] = config.variant
    return data
