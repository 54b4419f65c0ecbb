"""CAMEL role-play: a task specifier sharpens an idea, then an AI user instructs and an AI assistant
solves (with tools) until the user says the task is done.

Runs on the embedded model by default (no key, no network), or on the endpoint named by AGENTLAB_BASE_URL
and AGENTLAB_MODEL.

    python examples/camel_roleplay.py
    python examples/camel_roleplay.py "Total 3 books at 12 dollars and 2 pens at 1.5" --user Shopper --assistant Cashier
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from agentlab import Agent
from agentlab.render.console import render_events
from agentlab.tools.builtin import calculator

DEFAULT_IDEA = "Write a short slogan for a bakery."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("idea", nargs="?", default=DEFAULT_IDEA)
    parser.add_argument("--user", default="Baker", help="the instructing role's name")
    parser.add_argument("--assistant", default="Copywriter", help="the solving role's name")
    parser.add_argument("--max-turns", type=int, default=2, help="solutions at most")
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--trace", help="append the run's events to this JSONL file")
    args = parser.parse_args(argv)

    agent = Agent(
        tools=[calculator],
        strategy="camel",
        user_role=args.user,
        assistant_role=args.assistant,
        max_turns=args.max_turns,
        max_steps=args.max_steps,
        trace=args.trace,
    )
    finished = render_events(agent.stream(args.idea), Console())
    return 0 if finished is not None and finished.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
