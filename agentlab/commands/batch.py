"""`agentlab batch TASKS.jsonl -o RESULTS.jsonl`: one agent per line, resumable, locally or on Ray."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agentlab.executors import EXECUTORS


def add_parser(subparsers: Any) -> None:
    from agentlab.cli import non_negative

    parser = subparsers.add_parser(
        "batch",
        help="run one agent per line of a JSONL file",
        description=(
            'Run one agent per line of TASKS (a JSON string, or {"task": ..., "id": ..., "options": {...}}), '
            "appending each result to --output as it finishes. Rerunning skips the ids --output already holds."
        ),
    )
    parser.add_argument("tasks", help="JSONL file of tasks")
    parser.add_argument("-o", "--output", required=True, help="JSONL results file (appended to; read to resume)")
    parser.add_argument("--strategy", default="react")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a strategy option (repeatable)"
    )
    parser.add_argument("--tools", default="calculator", help="built-in names or MODULE_OR_FILE:NAME, comma-separated")
    parser.add_argument("--base-url")
    parser.add_argument("--model")
    parser.add_argument("--max-steps", type=non_negative(int), default=10)
    parser.add_argument("--max-tokens", type=non_negative(int))
    parser.add_argument("--max-seconds", type=non_negative(float))
    parser.add_argument("--trace-dir", help="write each task's events to DIR/<id>.jsonl")
    parser.add_argument("--executor", choices=EXECUTORS, default="local")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks at once (local executor; default 8)")
    parser.add_argument("--ray-address", help="an existing Ray cluster (default: start a local one)")
    parser.add_argument("--retry-errors", action="store_true", help="also rerun tasks whose result is an error")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from agentlab.batch import BatchConfig, BatchInputError, ResultLog, check_tasks, read_tasks
    from agentlab.cli import exit_on_interrupt, parse_options
    from agentlab.executors import ExecutorUnavailable

    console = Console(stderr=True)  # stdout stays free; the results are in --output
    if args.concurrency < 1:
        print("agentlab batch: --concurrency must be at least 1", file=sys.stderr)
        return 2
    config = BatchConfig(
        strategy=args.strategy,
        strategy_options=parse_options(args.option),
        tools=args.tools,
        base_url=args.base_url,
        model=args.model,
        max_steps=args.max_steps,
        max_tokens=args.max_tokens,
        max_seconds=args.max_seconds,
        trace_dir=args.trace_dir,
    )
    try:
        tasks = read_tasks(Path(args.tasks))
        check_tasks(config, tasks)
        log = ResultLog(Path(args.output))
        pending = log.pending(tasks, retry_errors=args.retry_errors)

        def progress() -> str:
            finished = sum(task.id in log.results for task in tasks)
            return f"; {finished} of {len(tasks)} tasks finished (rerun the same command to go on)"

        with exit_on_interrupt("agentlab batch", progress):
            _run_with_progress(config, tasks, pending, log, args, console)
    except (OSError, BatchInputError, ExecutorUnavailable, ValueError) as error:
        print(f"agentlab batch: {error}", file=sys.stderr)
        return 2
    return _report(log, tasks, len(tasks) - len(pending))


def _run_with_progress(config: Any, tasks: list[Any], pending: list[Any], log: Any, args: Any, console: Any) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agentlab.batch import run_batch

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(f"batch · {config.strategy}", total=len(tasks), completed=len(tasks) - len(pending))
        run_batch(
            config,
            pending,
            log,
            executor=args.executor,
            concurrency=args.concurrency,
            ray_address=args.ray_address,
            on_result=lambda task, result: progress.advance(bar),
        )


def _report(log: Any, tasks: list[Any], skipped: int) -> int:
    from agentlab.batch import summarize

    counts = summarize(log, tasks)
    parts = ", ".join(f"{status} {n}" for status, n in counts.items())
    print(f"agentlab batch: {len(tasks)} tasks ({skipped} already done): {parts}", file=sys.stderr)
    return 0 if set(counts) <= {"done"} else 1
