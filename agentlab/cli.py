"""`agentlab` command line: run an agent on a task, chat with one, list tools."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from agentlab._redact import redact_data
from agentlab.commands.model_options import add_model_options, model_from_args
from agentlab.commands.sources import load_tools

__all__ = ["build_parser", "load_tools", "main", "parse_options"]


def parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    """Strategy options from KEY=VALUE pairs; a VALUE that is JSON (3, true, ["a"]) is decoded."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SystemExit(f"--option takes KEY=VALUE, got {pair!r}")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def non_negative(kind: type[int] | type[float]) -> Any:
    """An argparse `type` for a budget: a number of `kind` that is not negative (argparse exits 2 otherwise)."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


INTERRUPTED = 130  # what shells report for a command stopped by Ctrl-C (128 + SIGINT)


@contextlib.contextmanager
def exit_on_interrupt(prog: str, detail: Callable[[], str] | None = None) -> Iterator[None]:
    """Within the block, Ctrl-C ends the process at once with one line on stderr and exit code 130.

    A KeyboardInterrupt raised into a run tears its async machinery down mid-await, which prints tracebacks
    and "Task was destroyed" warnings; nothing needs that cleanup, since what a run keeps is on disk as it
    goes (trace and results lines are flushed one by one, stores commit each event, a line cut short is
    skipped by every reader). `detail()` adds to the line (e.g. how far a batch got)."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread gets signals
        yield
        return

    def stop(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):  # stdout may be mid-write (a reentrant flush fails): best effort
            sys.stdout.flush()
        start = "\n" if sys.stderr.isatty() else ""  # after the terminal's echoed ^C or a progress bar
        more = detail() if detail is not None else ""
        os.write(2, f"{start}{prog}: interrupted{more}\n".encode(errors="replace"))
        os._exit(INTERRUPTED)

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_run(args: argparse.Namespace) -> int:
    from agentlab.agent import Agent
    from agentlab.models import ModelUnavailable
    from agentlab.run.limits import load_prices
    from agentlab.store import RunStoreError
    from agentlab.strategies import create
    from agentlab.strategies.registry import takes_option

    options = {key: value for key, value in (("resume", args.resume), ("store", args.store)) if value is not None}
    if "store" in options and not takes_option(args.strategy, "store"):  # the run store is the agent's (BabyAGI's too)
        del options["store"]
    options.update(parse_options(args.option))
    try:
        # Built here, not by the run: a bad name or option is a usage error, and the strategy's run_id is reported.
        strategy = create(args.strategy, **options)
    except (ValueError, TypeError) as error:  # an unknown strategy, an option it does not take or accept
        print(f"agentlab: strategy {args.strategy!r}: {error}", file=sys.stderr)
        return 2
    try:
        if args.store:
            _check_store(args.store)
        prices = load_prices(args.prices) if args.prices else None
        agent = Agent(
            model=model_from_args(args),
            tools=load_tools(args.tools),
            strategy=lambda: strategy,
            max_steps=args.max_steps,
            max_tokens=args.max_tokens,
            max_seconds=args.max_seconds,
            max_tool_calls=args.max_tool_calls,
            max_cost=args.max_cost,
            prices=prices,
            trace=args.trace,
            **_typed_output(args.output_schema),
            store=args.store,
        )
    except (ModelUnavailable, ValueError, RunStoreError, OSError) as error:
        print(f"agentlab: {error}", file=sys.stderr)
        return 2
    with exit_on_interrupt("agentlab"):
        return _show_run(args, agent, strategy)


def _show_run(args: argparse.Namespace, agent: Any, strategy: Any) -> int:
    from agentlab.commands.output_schema import load_schema, without_absent
    from agentlab.events import RunFinished, RunWarning

    if args.json:
        result = agent.run(args.task)
        for warning in (e for e in result.events if isinstance(e, RunWarning)):
            print(f"agentlab: warning: {warning.text}", file=sys.stderr)  # stdout holds the JSON only
        summary: dict[str, Any] = {
            "answer": result.answer,
            "status": result.status,
            "steps": result.steps,
            "usage": {"prompt_tokens": result.usage.prompt_tokens, "completion_tokens": result.usage.completion_tokens},
            "duration": round(result.duration, 3),
            "error": result.error,
        }
        if args.output_schema:  # the validated object, JSON form (None when the run did not finish)
            last = result.events[-1]
            output = last.output if isinstance(last, RunFinished) else None
            if output is None and result.status == "done":
                output = result.answer
            summary["output"] = without_absent(output, load_schema(args.output_schema))
        if result.cost is not None:
            summary["cost"] = result.cost
        run_id = getattr(strategy, "run_id", None)
        if run_id is not None:
            summary["run_id"] = run_id
        if args.store:
            summary["agent_run_id"] = result.run_id  # what `agentlab resume` takes
            summary["pending"] = [{"id": p.id, "name": p.name, "arguments": p.arguments} for p in result.pending]
        print(json.dumps(redact_data(summary), ensure_ascii=False))
        return 0 if result.status in ("done", "paused") else 1  # paused: waiting for a person, not failed
    from agentlab.render.console import render_events

    events = agent.stream(args.task, deltas=args.deltas)
    finished = render_events(_announcing_run_id(events) if args.store else events)
    return 0 if finished is not None and finished.status in ("done", "paused") else 1


def _check_store(path: str) -> None:
    """RunStoreError (or OSError) now, as a usage error, for a --store that is no run store (another kind of
    file, a folder that cannot be made); the run itself would only fail once it has started."""
    from agentlab.store import RunStore

    RunStore(path).close()


def _announcing_run_id(events: Any) -> Any:
    """The events, after printing the run's id (what `agentlab resume` takes) as soon as it is known."""
    for event in events:
        if event.kind == "run_started":
            print(f"run {event.run_id}", flush=True)
        yield event


def _typed_output(schema_path: str | None) -> dict[str, Any]:
    """The Agent's output options for `--output-schema` (none without it); SchemaError (a ValueError) for a bad file."""
    if not schema_path:
        return {}
    from agentlab.commands.output_schema import load_schema, schema_validator, type_from_schema

    schema = load_schema(schema_path)
    validator = schema_validator(schema)
    return {"output_type": type_from_schema(schema), "output_validator": validator}


def cmd_tools(args: argparse.Namespace) -> int:
    from agentlab.tools.builtin import builtin_tool_map

    for name, tool in sorted(builtin_tool_map().items()):
        print(f"{name}: {tool.description}")
    return 0


# More subcommands live in their own modules, each with `add_parser(subparsers)` that sets `handler`.
COMMAND_MODULES: tuple[str, ...] = (
    "agentlab.commands.chat",
    "agentlab.commands.mcp_serve",
    "agentlab.commands.export",
    "agentlab.commands.view",
    "agentlab.commands.batch",
    "agentlab.commands.runs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentlab", description="Tool-using LLM agents.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run an agent on a task")
    run.add_argument("task")
    run.add_argument("--strategy", default="react")
    run.add_argument("--tools", default="calculator", help="built-in names or MODULE_OR_FILE:NAME, comma-separated")
    add_model_options(run)
    run.add_argument("--max-steps", type=non_negative(int), default=10)
    run.add_argument("--max-tokens", type=non_negative(int))
    run.add_argument("--max-seconds", type=non_negative(float))
    run.add_argument("--max-tool-calls", type=non_negative(int), help="tool calls the run may make")
    run.add_argument("--max-cost", type=non_negative(float), help="what the run may cost, by --prices")
    run.add_argument(
        "--prices",
        metavar="PRICES_JSON",
        help='model prices: {"<model>": {"input_per_million": 2.5, "output_per_million": 10}}',
    )
    run.add_argument("--trace", help="append the run's events to this JSONL file")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument(
        "--output-schema", metavar="SCHEMA.json", help="a JSON Schema file: the answer is an object of it (validated)"
    )
    run.add_argument(
        "--no-stream",
        dest="deltas",
        action="store_false",
        help="show each step when it is complete, not the model's text as it arrives",
    )
    run.add_argument("--resume", metavar="RUN_ID", help="resume a stored run (strategies with a store: babyagi)")
    run.add_argument(
        "--store", metavar="PATH", help="keep the run's events in this SQLite file (agentlab runs, agentlab resume)"
    )
    run.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy option, e.g. --option inner=pal --option max_rounds=3 (repeatable)",
    )
    run.set_defaults(handler=cmd_run)
    tools = sub.add_parser("tools", help="list built-in tools")
    tools.set_defaults(handler=cmd_tools)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
