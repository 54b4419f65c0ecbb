"""Evaluation suites: where items come from, which tools an agent gets for them and how answers are scored."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agentlab._jsonl import jsonl_rows
from tools.eval.scoring import exact_match, f1_score, numbers_match

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_DATA = {
    "gsm8k": SHARED_DATA / "gsm8k" / "train.jsonl",
    "hotpotqa": SHARED_DATA / "hotpotqa" / "dev.jsonl",
}
DEFAULT_CORPUS = SHARED_DATA / "hotpotqa" / "corpus.jsonl"


@dataclass(frozen=True)
class Item:
    id: str
    question: str
    gold: str


@dataclass(frozen=True)
class Score:
    correct: bool
    f1: float | None = None  # only for free-text suites


@dataclass(frozen=True)
class Suite:
    name: str
    instructions: str  # how the final answer should look; given to every strategy
    score: Callable[[str | None, str], Score]


def _numeric(prediction: str | None, gold: str) -> Score:
    return Score(numbers_match(prediction, gold))


def _text(prediction: str | None, gold: str) -> Score:
    return Score(exact_match(prediction, gold), f1_score(prediction, gold))


SUITES = {
    "gsm8k": Suite("gsm8k", "The final answer is a single number, without units.", _numeric),
    "hotpotqa": Suite(
        "hotpotqa",
        "Search the local corpus for facts. The final answer is a short phrase (a name, a date, yes or no), "
        "not a sentence.",
        _text,
    ),
    "arith": Suite("arith", "The final answer is a single number.", _numeric),
}


class DataError(ValueError):
    """The data file is missing or a line is not a usable item; the message names the file and line."""


def load_items(suite: str, *, n: int, seed: int = 0, offset: int = 0, data: str | Path | None = None) -> list[Item]:
    """`n` items after `offset` in the suite's order for `seed` (a shuffle of the file; for `arith`, generation).

    Item ids come from the data (its `id` field, else the line number), never from the order, so cached
    results stay valid across seeds and offsets.
    """
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; available: {', '.join(SUITES)}")
    if n < 1 or offset < 0:
        raise ValueError("n must be >= 1 and offset >= 0")
    if suite == "arith":
        return [arith_item(seed, index) for index in range(offset, offset + n)]
    path = Path(data) if data else DEFAULT_DATA[suite]
    items = _read_jsonl(path, gsm8k=suite == "gsm8k")
    random.Random(seed).shuffle(items)
    return items[offset : offset + n]


def _read_jsonl(path: Path, *, gsm8k: bool) -> list[Item]:
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    items = []
    try:
        for number, row in jsonl_rows(path, ("question", "answer")):
            question, answer = str(row["question"]), str(row["answer"])
            if gsm8k:
                if "####" not in answer:
                    raise DataError(f"{path}:{number}: the answer has no '#### <number>' line")
                answer = answer.rsplit("####", 1)[1].strip()
            items.append(Item(str(row.get("id", f"line{number}")), question, answer))
    except DataError:
        raise
    except ValueError as error:
        raise DataError(str(error)) from None
    return items


_OPERATORS = ("+", "-", "*")


def arith_item(seed: int, index: int) -> Item:
    """A generated problem like "What is (37 - 112) * 6 + 15?"; its answer is computed exactly."""
    rng = random.Random(f"arith:{seed}:{index}")
    terms = rng.randint(3, 4)
    expression = str(rng.randint(2, 120))
    for position in range(1, terms):
        operator = rng.choice(_OPERATORS)
        operand = rng.randint(2, 12) if operator == "*" else rng.randint(2, 250)
        if position == 1 and rng.random() < 0.5:
            expression = f"({expression} {operator} {operand})"
        else:
            expression = f"{expression} {operator} {operand}"
    from agentlab.tools.builtin.arithmetic import evaluate, format_number

    return Item(f"s{seed}-{index}", f"What is {expression}?", format_number(evaluate(expression)))


def suite_tools(suite: str, corpus: str | Path | None = None) -> list[Any]:
    """The tools a tool-using strategy gets: a calculator for maths, local_search/lookup for HotpotQA."""
    from agentlab.tools import calculator, search_tools

    if suite == "hotpotqa":
        return search_tools(_corpus(str(Path(corpus) if corpus else DEFAULT_CORPUS)))
    return [calculator]


@cache
def _corpus(path: str) -> Any:
    """One corpus (and BM25 index) per file and process: items and Ray tasks in a worker share it."""
    from agentlab.tools import LocalCorpus

    if not Path(path).is_file():
        raise DataError(f"corpus file not found: {path}")
    return LocalCorpus(path)
