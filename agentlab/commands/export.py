"""`agentlab export TRACES...`: turn JSONL run traces into fine-tuning data (OpenAI chat format with tool calls)."""

from __future__ import annotations

import argparse
import contextlib
import sys
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
    from agentlab.export import export_openai_chat

    statuses = None if "any" in (args.status or []) else tuple(args.status or ("done",))
    try:
        scorer = load_function(args.scorer, "--scorer") if args.scorer else None
        with open(args.output, "w", encoding="utf-8") if args.output else contextlib.nullcontext(sys.stdout) as out:
            stats = export_openai_chat(
                args.traces, out, statuses=statuses, scorer=scorer, threshold=args.threshold, system=args.system
            )
    except (OSError, ValueError, ImportError) as error:  # a missing file, a line that is not JSON, a bad --scorer
        print(f"agentlab export: {error}", file=sys.stderr)
        return 2
    print(f"agentlab export: {stats.summary()}", file=sys.stderr)
    return 0
