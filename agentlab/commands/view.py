"""`agentlab view TRACE.jsonl -o OUT.html`: a trace as one self-contained HTML page."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    view = subparsers.add_parser("view", help="write a JSONL trace as one self-contained HTML page")
    view.add_argument("trace", help="a JSONL trace written by `agentlab run --trace` or Agent(trace=...)")
    view.add_argument("-o", "--output", help="the HTML file to write (default: the trace's name with .html)")
    view.add_argument("--title", help="the page title (default: the trace's file name)")
    view.set_defaults(handler=cmd_view)


def cmd_view(args: argparse.Namespace) -> int:
    from agentlab.viewer import write_html

    trace = Path(args.trace)
    if not trace.is_file():
        print(f"agentlab view: no trace file at {trace}", file=sys.stderr)
        return 2
    output = Path(args.output) if args.output else trace.with_suffix(".html")
    try:
        loaded = write_html(trace, output, title=args.title)
    except OSError as error:  # e.g. the output's folder does not exist
        print(f"agentlab view: cannot write {output}: {error.strerror or error}", file=sys.stderr)
        return 2
    for problem in loaded.problems:  # the page lists them too; the rest of the trace is still shown
        print(f"agentlab view: {trace}: {problem}", file=sys.stderr)
    print(output)
    return 0
