"""The widths the grammar budget reads from patterns, and the shortening of a pattern's final repetition."""

from __future__ import annotations

import re

import pytest

from agentlab.decisions import decision_schema
from agentlab.models.grammar import budget_schema, max_size
from agentlab.models.regex_width import max_width, shrink_tail_repeat
from agentlab.tools import ToolRegistry, calculator


@pytest.mark.parametrize(
    ("pattern", "width"),
    [
        ("^abc$", 3),
        (r"^[0-9]{1,9}(\.[0-9]{1,6})?$", 16),
        ("^(pi|e|tau)$", 3),
        (r"^\(x\)[]a]?$", 4),
        ("^(?:ab|c){2,3}$", 6),
        ("^a{4}b??$", 5),
        ("^a*$", None),
        ("^a+b$", None),
        ("^a{2,}$", None),
        ("^(ab$", None),  # unreadable: counted as unbounded
        ("^[ab$", None),
        ("^(?=a)b$", None),  # lookahead: outside the subset
    ],
)
def test_max_width(pattern: str, width: int | None):
    assert max_width(pattern) == width


def test_a_final_repetition_is_lowered_to_fit_and_still_matches_what_fits():
    pattern = r"^[0-9]{1,3}( ?[-+*/] ?[0-9]{1,3}){0,40}$"
    assert max_width(pattern) == 3 + 40 * 6
    shorter = shrink_tail_repeat(pattern, 30)
    assert shorter is not None and shorter.endswith("{0,4}$") and max_width(shorter) == 27
    assert re.match(shorter, "12 + 3 * 4 - 5 / 6") and not re.match(shorter, "1+2+3+4+5+6")
    assert shrink_tail_repeat(pattern, 1) == pattern.replace("{0,40}", "{0,0}")  # never below its minimum
    assert shrink_tail_repeat("^[0-9]{1,3}$", 2) is None  # not a group repetition: left to the caller


def test_the_calculator_expression_shrinks_to_the_decision_budget_and_the_object_still_fits():
    schema, needed = budget_schema(decision_schema(ToolRegistry([calculator]), thought=False), 384)
    largest = max_size(schema)
    assert largest is not None and largest <= needed == 384
    expression = schema["properties"]["action"]["anyOf"][0]["properties"]["arguments"]["properties"]["expression"]
    assert expression["pattern"] != calculator.parameters["properties"]["expression"]["pattern"]
    assert re.match(expression["pattern"], "(37 - 112) * 6 + 15 / 3")  # four operations still fit
