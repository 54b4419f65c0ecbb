"""CodeAct: the model writes Python snippets that call the agent's tools as functions.

A shop task in two tool calls with a variable carried from one step to the next: look up a price,
keep it in a variable, convert the total to euros, `final_answer(...)`. The snippets run in one
sandbox worker kept for the run; the tools run here, in this process, when the snippet calls them.
Runs on the embedded model with no key and no network (a 135M model may get the answer wrong, but the
run ends with a status), or on AGENTLAB_BASE_URL/AGENTLAB_MODEL.

    python examples/codeact.py
    python examples/codeact.py "What do 4 pears cost in euros?"
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from agentlab import Agent, tool
from agentlab.render.console import render_events

DEFAULT_TASK = "What do 3 apples cost in euros?"
PRICES = {"apple": 1.5, "pear": 2.0, "banana": 0.25}
EUROS_PER_DOLLAR = 0.5


@tool
def price_of(item: str) -> float:
    """The price of one item in dollars.

    Args:
        item: The item, singular (apple, pear, banana).
    """
    return PRICES.get(item.strip().lower().removesuffix("s"), 0.0)


@tool
def to_euros(dollars: float) -> float:
    """Convert an amount in dollars to euros.

    Args:
        dollars: The amount in dollars.
    """
    return dollars * EUROS_PER_DOLLAR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", nargs="?", default=DEFAULT_TASK)
    parser.add_argument("--max-steps", type=int, default=4)
    parser.add_argument("--trace", help="append the run's events to this JSONL file")
    args = parser.parse_args(argv)
    console = Console()
    agent = Agent(tools=[price_of, to_euros], strategy="codeact", max_steps=args.max_steps, trace=args.trace)
    result = render_events(agent.stream(args.task), console)
    if result is None:
        console.print("[red]the run ended without a status[/]")
        return 1
    console.print(f"status: {result.status}\nanswer: {result.answer}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
