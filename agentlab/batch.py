"""Batch runs: one agent per line of a JSONL file, results appended to another JSONL file as they finish.

A task line is a JSON string (the task) or an object `{"task": ..., "id": ..., "options": {...}}`; a line
without an id is known by its line number ("line-7"). Per-task options override the batch's own:
`strategy`, `strategy_options`, `max_steps`, `max_tokens`, `max_seconds`, `instructions`. Each result
line holds the task's id, line, status, answer, error, steps, usage, seconds and the run's trace id
(`run_id`). The results file is the batch's memory: a rerun skips every id it already holds, so an
interrupted batch goes on where it stopped and loses nothing that finished.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agentlab._jsonl import jsonl_lines
from agentlab._redact import redact_data
from agentlab.executors import close_model_client, run_jobs

TASK_OPTIONS: frozenset[str] = frozenset(
    {"strategy", "strategy_options", "max_steps", "max_tokens", "max_seconds", "instructions"}
)


class BatchInputError(ValueError):
    """The tasks file cannot be run as it is; the message names the file and lines at fault."""


@dataclass(frozen=True)
class BatchTask:
    """One line of the tasks file."""

    id: str
    line: int
    task: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchConfig:
    """What every task runs with unless its own options say otherwise. Plain data, so it pickles to Ray
    workers; API keys come from the environment (AGENTLAB_API_KEY, else OPENAI_API_KEY) where the model is
    built, never from this object."""

    strategy: str = "react"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    tools: str = "calculator"
    base_url: str | None = None
    model: str | None = None
    max_steps: int | None = 10
    max_tokens: int | None = None
    max_seconds: float | None = None
    instructions: str | None = None
    trace_dir: str | None = None

    def for_task(self, task: BatchTask) -> BatchConfig:
        return replace(self, **task.options)

    def build_model(self) -> Any:
        if self.base_url or self.model:
            if not (self.base_url and self.model):
                raise ValueError("--base-url and --model go together")
            from agentlab.models import OpenAIModel

            key = os.environ.get("AGENTLAB_API_KEY") or os.environ.get("OPENAI_API_KEY")
            return OpenAIModel(model=self.model, base_url=self.base_url, api_key=key)
        from agentlab.models import default_model

        return default_model()


def read_tasks(path: Path) -> list[BatchTask]:
    """Every task in `path`; BatchInputError listing the bad lines (not JSON, no task, an unknown option, a
    duplicate id) before anything runs."""
    tasks: list[BatchTask] = []
    problems: list[str] = []
    seen: set[str] = set()
    for number, row in jsonl_lines(path):
        if isinstance(row, str):  # not an object: maybe a bare JSON string
            task = _bare_task(path, number)
            if task is None:
                problems.append(f"line {number}: {row}")
                continue
        else:
            try:
                task = _task(row, number)
            except ValueError as error:
                problems.append(f"line {number}: {error}")
                continue
        if task.id in seen:
            problems.append(f"line {number}: id {task.id!r} is used by an earlier line")
            continue
        seen.add(task.id)
        tasks.append(task)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise BatchInputError(f"{path}: {shown}")
    return tasks


def _bare_task(path: Path, number: int) -> BatchTask | None:
    with path.open(encoding="utf-8", errors="replace") as lines:
        for current, line in enumerate(lines, 1):
            if current == number:
                try:
                    text = json.loads(line)
                except json.JSONDecodeError:
                    return None
                return BatchTask(f"line-{number}", number, text) if isinstance(text, str) and text.strip() else None
    return None


def _task(row: dict[str, Any], number: int) -> BatchTask:
    text = row.get("task")
    if not isinstance(text, str) or not text.strip():
        raise ValueError('expected "task" as a non-empty string')
    task_id = row.get("id", f"line-{number}")
    if not isinstance(task_id, str | int) or isinstance(task_id, bool):
        raise ValueError('"id" must be a string or an integer')
    options = row.get("options", {})
    if not isinstance(options, dict):
        raise ValueError('"options" must be an object')
    unknown = sorted(set(options) - TASK_OPTIONS)
    if unknown:
        raise ValueError(f"unknown options {unknown}; a task may set {', '.join(sorted(TASK_OPTIONS))}")
    for name, value in options.items():
        problem = _option_problem(name, value)
        if problem:
            raise ValueError(f"option {name!r} {problem}, got {json.dumps(value)}")
    return BatchTask(str(task_id), number, text, options)


def _option_problem(name: str, value: Any) -> str | None:
    """Why a per-task option's value cannot be used (None when it can): checked with the file, not per run."""
    if name == "strategy":
        return None if isinstance(value, str) and value.strip() else "must be a strategy name"
    if name == "strategy_options":
        return None if isinstance(value, dict) else "must be an object"
    if name == "instructions":
        return None if value is None or isinstance(value, str) else "must be a string"
    # max_steps, max_tokens (whole numbers) and max_seconds: null for no limit, else a number not below 0.
    if value is None:
        return None
    kinds = (int,) if name in ("max_steps", "max_tokens") else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or value < 0:
        return "must be a " + ("whole number" if kinds == (int,) else "number") + " not below 0, or null"
    return None


def check_tasks(config: BatchConfig, tasks: Sequence[BatchTask]) -> None:
    """BatchInputError for a task whose strategy or strategy options cannot be built (checked before any run)."""
    from agentlab.strategies import strategy_factory

    problems = []
    for task in tasks:
        effective = config.for_task(task)
        try:
            strategy_factory(effective.strategy, effective.strategy_options)
        except (ValueError, TypeError) as error:
            problems.append(f"task {task.id!r} (line {task.line}): {error}")
    if problems:
        raise BatchInputError(
            "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        )


class ResultLog:
    """The results file: one JSON object per finished task, appended as each finishes. A line cut short by an
    interruption is not a result (its task runs again); the last result for an id wins."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: dict[str, dict[str, Any]] = {}
        text = path.read_text(encoding="utf-8", errors="replace") if path.is_file() else ""
        self._cut_short = bool(text) and not text.endswith("\n")  # the next record must start on a new line
        if text:
            for _, row in jsonl_lines(path, ("id", "status")):
                if isinstance(row, dict):
                    self.results[str(row["id"])] = row

    def pending(self, tasks: Sequence[BatchTask], *, retry_errors: bool = False) -> list[BatchTask]:
        """The tasks without a result (with `retry_errors`, also those whose run ended in `error`)."""
        return [
            task
            for task in tasks
            if task.id not in self.results or (retry_errors and self.results[task.id]["status"] == "error")
        ]

    def append(self, result: dict[str, Any]) -> None:
        # The model's answer or an error may echo a credential, like every other thing a run leaves behind.
        # The id is the user's own (from the tasks file) and must stay as it is for a rerun to recognise it.
        result = {**redact_data(result), "id": result["id"]}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as out:
            out.write(("\n" if self._cut_short else "") + json.dumps(result, ensure_ascii=False) + "\n")
        self._cut_short = False
        self.results[result["id"]] = result  # after the write: a result counts once it is in the file


async def run_task(config: BatchConfig, task: BatchTask, model: Any) -> dict[str, Any]:
    """One agent run on one task; the result line. A failure to build the agent is the task's `error`."""
    from agentlab.agent import Agent

    effective = config.for_task(task)
    started = time.monotonic()
    try:
        agent = Agent(
            model=model,
            tools=_tools(effective.tools),
            strategy=effective.strategy,
            max_steps=effective.max_steps,
            max_tokens=effective.max_tokens,
            max_seconds=effective.max_seconds,
            instructions=effective.instructions,
            trace=_trace_path(effective.trace_dir, task.id),
            **effective.strategy_options,
        )
    except Exception as error:  # a tool module that no longer imports, an option the strategy refuses
        return failed_result(task, error, time.monotonic() - started)
    result = await agent.arun(task.task)
    return {
        "id": task.id,
        "line": task.line,
        "status": result.status,
        "answer": result.answer,
        "error": result.error,
        "steps": result.steps,
        "usage": {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens},
        "seconds": round(result.duration, 3),
        "run_id": result.run_id,
    }


def failed_result(task: BatchTask, error: BaseException, seconds: float = 0.0) -> dict[str, Any]:
    """The result line of a task that could not run at all (status `error`, no run id)."""
    return {
        "id": task.id,
        "line": task.line,
        "status": "error",
        "answer": None,
        "error": f"{type(error).__name__}: {error}",
        "steps": 0,
        "usage": {"prompt_tokens": 0, "completion_tokens": 0},
        "seconds": round(seconds, 3),
        "run_id": None,
    }


def run_task_blocking(config: BatchConfig, task: BatchTask) -> dict[str, Any]:
    """`run_task` in a fresh event loop with a model built here: the body of a Ray task."""

    async def main() -> dict[str, Any]:
        try:
            model = config.build_model()
        except Exception as error:
            return failed_result(task, error)
        try:
            return await run_task(config, task, model)
        finally:
            await close_model_client(model)

    return asyncio.run(main())


def run_batch(
    config: BatchConfig,
    tasks: Sequence[BatchTask],
    log: ResultLog,
    *,
    executor: str = "local",
    concurrency: int = 8,
    ray_address: str | None = None,
    on_result: Callable[[BatchTask, dict[str, Any]], None] | None = None,
) -> None:
    """Run `tasks`, appending each result to `log` as it finishes (then calling `on_result`). The local executor
    shares one model (and its connections) between the runs; each Ray worker builds its own."""

    def finished(task: BatchTask, result: dict[str, Any]) -> None:
        log.append(result)
        if on_result is not None:
            on_result(task, result)

    def failed(task: BatchTask, error: BaseException) -> None:
        finished(task, failed_result(task, error))

    model = config.build_model() if executor == "local" and tasks else None
    run_jobs(
        tasks,
        finished,
        arun=lambda task: run_task(config, task, model),
        run=functools.partial(run_task_blocking, config),
        executor=executor,
        concurrency=concurrency,
        aclose=lambda: close_model_client(model),
        failed=failed,
        ray_address=ray_address,
        pythonpath=_pythonpath(),
    )


def summarize(log: ResultLog, tasks: Sequence[BatchTask]) -> dict[str, int]:
    """Tasks per status (from the results file, so tasks finished by earlier runs count), "pending" for none."""
    counts: dict[str, int] = {}
    for task in tasks:
        status = log.results.get(task.id, {}).get("status", "pending")
        counts[status] = counts.get(status, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


@functools.lru_cache(maxsize=8)
def _tools(spec: str) -> tuple[Any, ...]:
    """The tools `spec` names, loaded once per process (a tool file is executed once, not once per task)."""
    from agentlab.commands.sources import load_tools

    return tuple(load_tools(spec))


def _trace_path(trace_dir: str | None, task_id: str) -> Path | None:
    if trace_dir is None:
        return None
    Path(trace_dir).mkdir(parents=True, exist_ok=True)
    return Path(trace_dir) / trace_file_name(task_id)


# Room for the hash and ".jsonl" within the 255 bytes most file systems allow a name (4 bytes a character).
_MAX_NAME_CHARS = 50


def trace_file_name(task_id: str) -> str:
    """The task's trace file name under --trace-dir: the id itself when it is a plain name, else the id with
    unsafe characters replaced plus a hash of the raw id, so that ids never share a file ("a/b", "a_b", "a b")
    and never leave the folder or hide in it ("../x", ".x")."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)[:_MAX_NAME_CHARS]
    if safe.startswith("."):
        safe = "_" + safe[1:]
    if safe == task_id and safe:
        return f"{safe}.jsonl"
    digest = hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe}-{digest}.jsonl"


def _pythonpath() -> list[str]:
    """Where this process finds agentlab and the user's tool modules (the working directory), for the workers
    of a local Ray instance."""
    import agentlab

    return [str(Path(agentlab.__file__).resolve().parents[1]), os.getcwd()]
