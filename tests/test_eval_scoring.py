"""Scorers, suites and baselines of the evaluation harness (tools/eval): pure functions, no model."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from agentlab.models.base import ModelResponse
from agentlab.strategies import DecisionError, StrategyContext
from agentlab.tools import ToolRegistry
from tools.eval.baselines import ChainOfThought, DirectAnswer
from tools.eval.runner import StrategySpec, UnknownStrategy
from tools.eval.scoring import exact_match, extract_number, f1_score, normalize_answer, numbers_match, wilson_interval
from tools.eval.suites import DataError, arith_item, load_items


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$1,234.50", Fraction("1234.5")),
        ("It costs $1,234.50 in total.", Fraction("1234.5")),
        ("1/2", Fraction(1, 2)),
        ("about 3 / 4 of them", Fraction(3, 4)),
        ("-7", -7),
        ("The temperature fell to -12.5 degrees", Fraction("-12.5")),
        ("−3", -3),  # a typographic minus
        ("pages 2-3", 3),  # a hyphenated range is not a negative number
        ("48/2 = 24 clips, so 48 + 24 = 72.", 72),
        ("The answer is 18.", 18),
        ("1,000,000", 1_000_000),
        ("0.5", Fraction(1, 2)),
    ],
)
def test_extract_number(text, expected):
    assert extract_number(text) == expected


@pytest.mark.parametrize("text", [None, "", "no digits here", "gsm8k", "x/0 is 1/0"])
def test_extract_number_none(text):
    assert extract_number(text) is None


def test_numbers_match():
    assert numbers_match("The total is $2,317.", "2,317")
    assert numbers_match("0.50", "1/2")
    assert numbers_match("-4", "-4")
    assert not numbers_match("4", "-4")
    assert not numbers_match("seventy-two", "72")
    assert not numbers_match(None, "72")


def test_squad_normalisation_and_exact_match():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("An apple, a pear") == "apple pear"
    assert exact_match("the eiffel tower.", "Eiffel Tower")
    assert not exact_match("Eiffel", "Eiffel Tower")
    assert not exact_match(None, "Paris")


def test_f1():
    assert f1_score("Eiffel Tower", "the Eiffel Tower") == 1.0
    assert f1_score("Eiffel", "Eiffel Tower") == pytest.approx(2 / 3)
    assert f1_score("Louvre", "Eiffel Tower") == 0.0
    assert f1_score("yes it is", "yes") == 0.0  # yes/no must match exactly
    assert f1_score("no", "no") == 1.0
    assert f1_score(None, "x") == 0.0


def test_wilson_interval():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.490, abs=1e-3) and high == pytest.approx(0.943, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.278, abs=1e-3)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_gsm8k_file_loading(tmp_path):
    data = tmp_path / "g.jsonl"
    rows = [{"question": f"q{i}", "answer": f"work\n#### {i},000"} for i in range(5)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    items = load_items("gsm8k", n=5, data=data, seed=3)
    assert sorted(i.question for i in items) == [f"q{i}" for i in range(5)]
    by_id = {i.id: i for i in items}
    assert by_id["line3"].gold == "2,000" and by_id["line3"].question == "q2"  # 1-based line numbers
    # Another seed orders differently but keeps ids tied to the lines; offset slices that order.
    reordered = load_items("gsm8k", n=2, data=data, seed=3, offset=3)
    assert [i.id for i in reordered] == [i.id for i in items[3:5]]


def test_bad_data_names_file_and_line(tmp_path):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"question": "q", "answer": "#### 1"}) + "\n" + json.dumps({"answer": "2"}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2"):
        load_items("gsm8k", n=2, data=data)
    with pytest.raises(DataError, match="not found"):
        load_items("hotpotqa", n=1, data=tmp_path / "missing.jsonl")
    no_marker = tmp_path / "nomarker.jsonl"
    no_marker.write_text(json.dumps({"question": "q", "answer": "42"}) + "\n")
    with pytest.raises(DataError, match="####"):
        load_items("gsm8k", n=1, data=no_marker)


def test_arith_items_are_seeded_and_correct():
    from agentlab.tools.builtin.arithmetic import evaluate

    first = load_items("arith", n=5, seed=7)
    assert first == load_items("arith", n=5, seed=7)
    assert first != load_items("arith", n=5, seed=8)
    assert load_items("arith", n=2, seed=7, offset=3) == first[3:]
    for item in first:
        expression = item.question.removeprefix("What is ").removesuffix("?")
        assert int(item.gold) == evaluate(expression)
    assert arith_item(7, 0).id == "s7-0"


def _context() -> StrategyContext:
    return StrategyContext("What is 2+2?", ToolRegistry([]), "tools", "Answer with a number.")


def test_baselines_ask_plain_text_and_read_the_answer():
    direct = DirectAnswer()
    direct.start(_context())
    request = direct.next_step()
    assert request.tools is None and request.response_schema is None
    assert "Answer with a number." in request.messages[0]["content"]
    assert direct.interpret(ModelResponse(content=" 4 ")).final_answer == "4"
    with pytest.raises(DecisionError):
        direct.interpret(ModelResponse(content=""))

    cot = ChainOfThought()
    cot.start(_context())
    reply = "2 plus 2 makes 4.\nAnswer: 4"
    assert cot.interpret(ModelResponse(content=reply)).final_answer == "4"
    assert cot.interpret(ModelResponse(content="it is 4")).final_answer == "it is 4"


def test_strategy_spec():
    spec = StrategySpec.parse("critic:inner=react,max_rounds=1")
    assert spec.name == "critic" and spec.options == {"inner": "react", "max_rounds": 1}
    assert spec.label == "critic:inner=react,max_rounds=1"
    assert StrategySpec.parse("react").label == "react"
    with pytest.raises(UnknownStrategy, match="available: direct, cot"):
        StrategySpec.parse("no-such-strategy").factory()
    with pytest.raises(ValueError, match="key=value"):
        StrategySpec.parse("critic:inner")


def test_debris_is_markup_or_json_left_in_an_answer():
    from tools.eval.scoring import has_debris

    for messy in ['"} }}\nThe answer is 2.50', "');[{\"", "&#34;", 'Paris"}', "<b>Paris</b>", "```json"]:
        assert has_debris(messy), messy
    for clean in ["Paris", "2.50", "-75", "yes", "Steven Spielberg (born 1946)", "AT&T", "a < b", None, ""]:
        assert not has_debris(clean), clean
