"""`agentlab export TRACES...`: turn JSONL run traces into fine-tuning data (OpenAI chat format with tool calls)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, get_args

from agentlab.events import Status

STATUSES: tuple[str, ...] = get_args(Status)


def add_parser(subparsers: Any) -> None:
    from agentlab.export import FORMATS

    parser = subparsers.add_parser(
        "export",
        help="export run traces as fine-tuning JSONL",
        description="Write successful tool-use trajectories from traces (agentlab run --trace) as fine-tuning JSONL.",
    )
    parser.add_argument("traces", nargs="+", help="JSONL trace files; a file may hold several runs")
    parser.add_argument("--format", choices=FORMATS, default=FORMATS[0])
    parser.add_argument("-o", "--output", help="write here instead of stdout")
    parser.add_argument(
        "--status",
        action="append",
        choices=(*STATUSES, "any"),
        help="keep runs that ended with this status (repeatable; default done; 'any' keeps all)",
    )
    parser.add_argument(
        "--scorer",
        metavar="MODULE_OR_FILE:FUNCTION",
        help="keep runs for which FUNCTION(trace_events) is true or at least --threshold",
    )
    parser.add_argument("--threshold", type=float, default=0.5, help="minimum numeric score (default 0.5)")
    parser.add_argument("--system", help="a system message to put first in every example")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agentlab.commands.sources import load_function
    from agentlab.export import export_openai_chat, replacing

    statuses = None if "any" in (args.status or []) else tuple(args.status or ("done",))
    if args.output and any(_same_file(args.output, trace) for trace in args.traces):
        print(f"agentlab export: the output {args.output} is also an input; write to another file", file=sys.stderr)
        return 2
    try:
        scorer = _checked(load_function(args.scorer, "--scorer"), args.scorer) if args.scorer else None
        missing = next((trace for trace in args.traces if not os.path.isfile(trace)), None)
        if missing is not None:
            raise OSError(f"no trace file at {missing}")
        options: dict[str, Any] = {
            "statuses": statuses,
            "scorer": scorer,
            "threshold": args.threshold,
            "system": args.system,
        }
        if args.output:  # written aside and renamed at the end: a failure leaves the old output as it was
            with replacing(args.output) as out:
                stats = export_openai_chat(args.traces, out, **options)
        else:
            stats = export_openai_chat(args.traces, sys.stdout, **options)
    except (OSError, ValueError, ImportError) as error:  # a missing file, a line that is not JSON, a bad --scorer
        print(f"agentlab export: {error}", file=sys.stderr)
        return 2
    for note in stats.notes:
        print(f"agentlab export: {note}", file=sys.stderr)
    print(f"agentlab export: {stats.summary()}", file=sys.stderr)
    return 0


def _same_file(output: str, trace: str) -> bool:
    """Whether writing `output` would overwrite `trace` (the same path, or a link to the same file)."""
    try:
        return os.path.samefile(output, trace)
    except OSError:  # one of them does not exist (yet): compare where they would be
        return Path(output).resolve() == Path(trace).resolve()


def _checked(scorer: Any, name: str) -> Any:
    """The scorer, with its failures (an exception, a result that is not a number) as a ValueError naming it."""

    def score(events: list[dict[str, Any]]) -> bool | float:
        try:
            result = scorer(events)
        except Exception as error:
            raise ValueError(f"--scorer {name} failed: {type(error).__name__}: {error}") from error
        if not isinstance(result, bool | int | float):
            raise ValueError(f"--scorer {name} returned {type(result).__name__}, expected a bool or a number")
        return result

    return score
