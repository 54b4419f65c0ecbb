"""ReAct over search, on the embedded model with no key and no network.

Online, the agent searches the web; offline (or with --offline) it says so and searches a local corpus
instead: this repository's docs by default, or any JSONL of {"title", "text"} rows or folder of .md/.txt.

    python examples/react_search.py
    python examples/react_search.py "Who wrote Hamlet?" --corpus ../shared/data/hotpotqa/corpus.jsonl
"""

from __future__ import annotations

import argparse
import sys

from rich.console import Console

from agentlab import Agent
from agentlab.render.console import render_events
from agentlab.tools import LocalCorpus, default_corpus, search_tools, web_search
from agentlab.tools.builtin.web import network_available

DEFAULT_QUESTION = "What is agentlab?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", nargs="?", default=DEFAULT_QUESTION)
    parser.add_argument("--corpus", help="JSONL of {title, text} or a folder of .md/.txt (default: the repo docs)")
    parser.add_argument("--offline", action="store_true", help="skip the web even when it is reachable")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--trace", help="append the run's events to this JSONL file")
    args = parser.parse_args(argv)
    console = Console()

    if not args.offline and network_available():
        tools = [web_search]
    else:
        corpus = LocalCorpus(args.corpus) if args.corpus else default_corpus()
        console.print(f"[yellow]Offline: web search is unavailable; searching the local corpus {corpus!r}.[/]")
        tools = search_tools(corpus)

    # A search demo should search: no final answer before the first tool call.
    # Grounded: the answer is a sentence copied from what the search returned, not a small model's paraphrase.
    # compaction=False: a few search steps fit the window, and a 135M model picks the `recall` tool that
    # compaction offers over the search tools.
    agent = Agent(
        tools=tools,
        max_steps=args.max_steps,
        trace=args.trace,
        min_tool_calls=1,
        answer_from_observations=True,
        compaction=False,
    )
    # deltas=True: the model's text appears as it is generated, not when each step is over.
    finished = render_events(agent.stream(args.question, deltas=True), console)
    return 0 if finished is not None and finished.status == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
