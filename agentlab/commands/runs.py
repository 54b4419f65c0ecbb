"""`agentlab runs --store runs.db` lists stored runs; `agentlab resume RUN_ID --store runs.db` goes on with one.

A stored run resumes with the agent that started it: the same strategy, tools and model (`--strategy`,
`--tools`, `--base-url`, `--model` as given to `agentlab run`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from agentlab._redact import redact_data


def add_parser(subparsers: Any) -> None:
    runs = subparsers.add_parser("runs", help="list the runs of a run store, newest first")
    runs.add_argument("--store", required=True, metavar="PATH", help="the run store (agentlab run --store)")
    runs.add_argument("--limit", type=int, default=50, help="at most this many runs (default 50)")
    runs.add_argument("--json", action="store_true", help="one JSON object per line")
    runs.set_defaults(handler=cmd_runs)

    resume = subparsers.add_parser("resume", help="go on with a paused or interrupted run of a run store")
    resume.add_argument("run_id")
    resume.add_argument("--store", required=True, metavar="PATH", help="the run store (agentlab run --store)")
    resume.add_argument("--approve", action="append", default=[], metavar="CALL_ID", help="approve a waiting call")
    resume.add_argument("--deny", action="append", default=[], metavar="CALL_ID", help="deny a waiting call")
    resume.add_argument("--strategy", default="react")
    resume.add_argument("--tools", default="calculator", help="the run's tools, as given to agentlab run")
    resume.add_argument("--base-url")
    resume.add_argument("--model")
    resume.add_argument("--max-steps", type=int, default=10)
    resume.add_argument("--json", action="store_true", help="print the result as one JSON object")
    resume.set_defaults(handler=cmd_resume)


def cmd_runs(args: argparse.Namespace) -> int:
    from agentlab.store.runs import RunStore, RunStoreError

    try:
        with RunStore(args.store) as store:
            runs = store.runs(args.limit)
    except RunStoreError as error:
        print(f"agentlab runs: {error}", file=sys.stderr)
        return 2
    for run in runs:
        row = {
            "run_id": run.run_id,
            "status": run.status or "unfinished",
            "steps": run.steps,
            "tokens": run.total_tokens,
            "started": run.started,
            "task": run.task,
        }
        if args.json:
            print(json.dumps(redact_data(row), ensure_ascii=False))
        else:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.started))
            task = run.task if len(run.task) <= 60 else run.task[:57] + "..."
            print(
                f"{run.run_id}  {row['status']:<10} {run.steps:>4} steps {run.total_tokens:>8} tokens  {when}  {task}"
            )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from agentlab.agent import Agent
    from agentlab.commands.model_options import model_from_args
    from agentlab.commands.sources import load_tools
    from agentlab.models import ModelUnavailable
    from agentlab.run.replay import ResumeError
    from agentlab.store.runs import RunStoreError

    both = set(args.approve) & set(args.deny)
    if both:
        print(f"agentlab resume: approved and denied at once: {', '.join(sorted(both))}", file=sys.stderr)
        return 2
    approvals = {**dict.fromkeys(args.approve, True), **dict.fromkeys(args.deny, False)}
    try:
        agent = Agent(
            model_from_args(args),
            tools=load_tools(args.tools),
            strategy=args.strategy,
            max_steps=args.max_steps,
            store=args.store,
        )
        result = agent.resume(args.run_id, approvals)
    except (ModelUnavailable, ValueError, ResumeError, RunStoreError) as error:
        print(f"agentlab resume: {error}", file=sys.stderr)
        return 2
    pending = [{"id": p.id, "name": p.name, "arguments": p.arguments} for p in result.pending]
    if args.json:
        summary: dict[str, Any] = {
            "run_id": result.run_id,
            "answer": result.answer,
            "status": result.status,
            "steps": result.steps,
        }
        summary |= {"error": result.error, "pending": pending}
        print(json.dumps(redact_data(summary), ensure_ascii=False))
    else:
        print(f"run {result.run_id}: {result.status} after {result.steps} steps")
        for call in pending:
            print(f"waiting: {call['id']} {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)})")
        if result.answer is not None:
            print(result.answer)
        if result.error:
            print(f"error: {result.error}", file=sys.stderr)
    return 0 if result.status in ("done", "paused") else 1
