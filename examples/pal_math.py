"""PAL on grade-school maths: the model writes `solution()`, the sandbox runs it.

Problems come from GSM8K (`../shared/data/gsm8k/train.jsonl` beside the checkout, or --data), or a
built-in handful when the file is absent. Runs on the embedded model, or on AGENTLAB_BASE_URL/AGENTLAB_MODEL.

    python examples/pal_math.py --n 3
    python examples/pal_math.py --samples 3 --data path/to/gsm8k.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from rich.console import Console

from agentlab import Agent
from agentlab.render.console import render_events

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "train.jsonl"
BUILT_IN = [
    ("A baker makes 24 muffins and sells 17. How many muffins are left?", "7"),
    ("Tom buys 3 packs of 12 pencils and gives away 10. How many pencils does he have?", "26"),
    ("A train travels 60 miles per hour for 3 hours. How many miles does it travel?", "180"),
]


def load_problems(path: Path, n: int) -> list[tuple[str, str]]:
    if not path.is_file():
        return BUILT_IN[:n]
    problems = []
    with path.open(encoding="utf-8") as file:
        for line in file:
            row = json.loads(line)
            problems.append((row["question"], row["answer"].split("####")[-1].strip().replace(",", "")))
            if len(problems) == n:
                break
    return problems


def same_number(answer: str | None, expected: str) -> bool:
    numbers = re.findall(r"-?\d+(?:\.\d+)?", (answer or "").replace(",", ""))
    return bool(numbers) and float(numbers[-1]) == float(expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=3)
    parser.add_argument("--samples", type=int, default=1, help="programs per problem (self-consistency vote)")
    parser.add_argument("--max-steps", type=int, default=4)
    args = parser.parse_args(argv)
    console = Console()
    source = args.data if args.data.is_file() else "built-in problems"
    console.print(f"[dim]Problems from {source}[/]")

    agent = Agent(strategy="pal", samples=args.samples, max_steps=args.max_steps)
    correct = finished = 0
    for question, expected in load_problems(args.data, args.n):
        result = render_events(agent.stream(question), console)
        finished += result is not None and result.status == "done"
        if result is not None and same_number(result.answer, expected):
            correct += 1
        console.print(f"[dim]expected {expected}[/]\n")
    console.print(f"[bold]{correct}/{args.n} correct, {finished}/{args.n} runs finished[/]")
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
