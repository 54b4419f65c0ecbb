"""BabyAGI with a persistent task queue: stop it at any moment (Ctrl-C, even kill -9) and resume it.

Runs on the embedded model by default (or the endpoint in AGENTLAB_BASE_URL / AGENTLAB_MODEL), with a
calculator and search (the web when reachable, else this repository's docs). The queue, the results and
the run's state live in a SQLite file; the RUN_ID is printed first so the run can be resumed:

    python examples/babyagi_tasks.py "Find out how agentlab sandboxes code and summarise it in two lines"
    python examples/babyagi_tasks.py --resume RUN_ID
"""

from __future__ import annotations

import argparse
import sys
import uuid

from rich.console import Console

from agentlab import Agent
from agentlab.render.console import render_events
from agentlab.store import StoreError, TaskStore
from agentlab.strategies.babyagi import DEFAULT_STORE
from agentlab.tools import calculator, default_corpus, search_tools, web_search
from agentlab.tools.builtin.web import network_available

DEFAULT_OBJECTIVE = "Find out what agentlab uses to isolate model-written code, and say it in one sentence."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("objective", nargs="?", default=DEFAULT_OBJECTIVE)
    parser.add_argument("--resume", metavar="RUN_ID", help="carry on with a stopped or killed run")
    parser.add_argument("--store", default=str(DEFAULT_STORE), help="the SQLite file of runs (default: %(default)s)")
    parser.add_argument("--first-task", help="the task to start with (default: make a plan)")
    parser.add_argument("--max-tasks", type=int, help="stop after this many finished tasks (default: 10)")
    parser.add_argument("--max-steps", type=int, default=30, help="model calls for this session")
    parser.add_argument("--offline", action="store_true", help="search the local docs even when the web is reachable")
    parser.add_argument("--trace", help="append the run's events to this JSONL file")
    args = parser.parse_args(argv)
    console = Console()

    run_id = args.resume or uuid.uuid4().hex
    objective = args.objective
    if args.resume:
        try:
            run = TaskStore(args.store).run(args.resume)
        except StoreError as error:
            console.print(f"[red]{error}[/]")
            return 2
        objective = run.objective
        console.print(f"Resuming run [bold]{run_id}[/] ({run.status}, {run.tasks_done} tasks done) from {args.store}")
    else:
        console.print(f"Run [bold]{run_id}[/] in {args.store}; resume it with: --resume {run_id}")

    tools = (
        [calculator, web_search]
        if not args.offline and network_available()
        else [calculator, *search_tools(default_corpus())]
    )
    agent = Agent(
        tools=tools,
        strategy="babyagi",
        max_steps=args.max_steps,
        trace=args.trace,
        store=args.store,
        first_task=args.first_task,
        max_tasks=args.max_tasks,
        **({"resume": run_id} if args.resume else {"run_id": run_id}),
    )
    finished = render_events(agent.stream(objective), console)
    status = finished.status if finished else "error"
    if status != "done":
        console.print(f"Stopped ({status}); carry on with: --resume {run_id}")
    return 0 if status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
