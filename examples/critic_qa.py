"""CRITIC: answer a question, verify the answer with tools, critique it and revise it if a check fails.

Runs on the embedded model by default (no key, no network), or on the endpoint named by AGENTLAB_BASE_URL
and AGENTLAB_MODEL. The verifier uses the requested built-in tools that exist here: the calculator, plus the
sandboxed `python` tool when an endpoint is configured (the 135M embedded model does better with one tool).

    python examples/critic_qa.py
    python examples/critic_qa.py "What is 17 * 23 + 4?" --tools calculator,python --max-rounds 1
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator

from rich.console import Console

from agentlab import Agent
from agentlab import events as ev
from agentlab.render.console import render_events
from agentlab.tools.builtin import builtin_tool_map

DEFAULT_QUESTION = "What is 3 * 5?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument(
        "--tools",
        help="built-in verification tools, comma-separated (default: calculator, and "
        "python with an AGENTLAB_BASE_URL endpoint; the embedded model copes with fewer tools)",
    )
    parser.add_argument("--inner", default="react", help="the strategy that drafts the first answer")
    parser.add_argument("--max-rounds", type=int, default=2, help="revisions at most")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--trace", help="append the run's events to this JSONL file")
    args = parser.parse_args(argv)
    console = Console()

    available = builtin_tool_map()
    spec = args.tools or ("calculator,python" if os.environ.get("AGENTLAB_BASE_URL") else "calculator")
    wanted = [name.strip() for name in spec.split(",") if name.strip()]
    missing = [name for name in wanted if name not in available]
    if missing:
        console.print(f"[yellow]Not installed here, verifying without: {', '.join(missing)}[/]")
    tools = [available[name] for name in wanted if name in available]

    agent = Agent(
        tools=tools,
        strategy="critic",
        inner=args.inner,
        max_rounds=args.max_rounds,
        max_steps=args.max_steps,
        trace=args.trace,
    )
    events: list[ev.Event] = []

    def recorded() -> Iterator[ev.Event]:
        for event in agent.stream(args.question):
            events.append(event)
            yield event

    finished = render_events(recorded(), console)
    final = [e.data for e in events if isinstance(e, ev.Note) and e.data.get("phase") == "final"]
    if final:
        console.print(f"[bold]Verified:[/] {'yes' if final[-1]['verified'] else 'no'}")
    return 0 if finished is not None and finished.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
