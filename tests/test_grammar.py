"""Budgeted grammars: free strings become clean single-line text, typed parameters keep their shape, and the
largest object a schema allows fits in the reply's token limit."""

from __future__ import annotations

import asyncio
import enum
import json
import re
from typing import Annotated, Literal

import pytest
from pydantic import Field

from agentlab import tool
from agentlab.decisions import decision_schema
from agentlab.models.grammar import FREE_TEXT_CHAR, RESERVED_TOKENS, budget_schema, max_size
from agentlab.tools import ToolRegistry, calculator
from agentlab.tools.builtin.python import python_tool


class Unit(enum.Enum):
    CELSIUS = "celsius"
    KELVIN = "kelvin"


@tool
def convert(
    value: float,
    unit: Unit,
    mode: Literal["exact", "rounded"],
    code: Annotated[str, Field(pattern=r"^[A-Z]{2,3}$")],
    note: str,
) -> str:
    """Convert a temperature.

    Args:
        value: The temperature.
        unit: The unit to convert to.
        mode: How to round.
        code: A country code.
        note: Anything else.
    """
    return ""


def _arguments(schema: dict, tool_name: str) -> dict:
    for variant in schema["properties"]["action"]["anyOf"]:
        if variant["properties"]["name"]["const"] == tool_name:
            return variant["properties"]["arguments"]["properties"]
    raise AssertionError(tool_name)


def test_parameters_carry_their_shape_and_free_strings_become_clean_text():
    schema, _ = budget_schema(decision_schema(ToolRegistry([convert])), 384)
    params = _arguments(schema, "convert")
    assert params["value"]["type"] == "number"
    assert params["unit"]["enum"] == ["celsius", "kelvin"]  # the Enum's $ref was inlined for the grammar
    assert params["mode"]["enum"] == ["exact", "rounded"]
    assert params["code"]["pattern"] == "^[A-Z]{2,3}$"  # the user's own pattern is kept as it is
    free = re.compile(params["note"]["pattern"])
    assert params["note"]["pattern"].startswith("^" + FREE_TEXT_CHAR)
    assert free.match("a plain sentence, with commas.")
    for debris in ('"} }}', "two\nlines", "{", "back\\slash", "tab\there"):
        assert not free.match(debris), debris
    thought = re.compile(schema["properties"]["thought"]["pattern"])
    assert not thought.match("x" * 121)  # the thought keeps its own bound


def test_the_calculator_expression_is_an_arithmetic_pattern_for_the_grammar_only():
    pattern = re.compile(calculator.parameters["properties"]["expression"]["pattern"])
    assert pattern.match("(37 - 112) * 6 + 15") and pattern.match("sqrt(2) * pi")
    assert pattern.match("round(10.5, 2) - max(1, -2) ** 2") and pattern.match("-(3 + 4) // 2")
    assert not pattern.match('37"}') and not pattern.match("1 +\n2") and not pattern.match("What is 2+2?")
    # What SmolLM2 wrote when the pattern was a character class: a list, a number cut in front.
    assert not pattern.match(", 119, 5, 11") and not pattern.match("119, 5, 11") and not pattern.match(".57 + 35")
    # Not a validation rule: an endpoint without a grammar still gets the evaluator's reasons.
    refused = asyncio.run(calculator.invoke({"expression": "2 ^ 3"}))
    assert not refused.ok and "write powers as a ** b" in refused.content


@pytest.mark.parametrize("max_tokens", [512, 384, 300])
def test_the_largest_decision_fits_in_max_tokens(max_tokens: int):
    tools = ToolRegistry([calculator, convert])
    schema, needed = budget_schema(decision_schema(tools), max_tokens)
    largest = max_size(schema)
    assert largest is not None and largest + RESERVED_TOKENS <= max_tokens == needed
    answer = schema["properties"]["action"]["anyOf"][-1]["properties"]["arguments"]["properties"]["answer"]
    assert re.compile(answer["pattern"]).match("x")  # every string still has room for a value


def test_too_small_a_limit_is_raised_to_what_the_structure_needs():
    schema, needed = budget_schema(decision_schema(ToolRegistry([calculator])), 8)
    largest = max_size(schema)
    assert largest is not None and needed == largest + RESERVED_TOKENS > 8


def test_code_keeps_its_newlines_and_an_unbudgeted_schema_is_left_alone():
    schema, _ = budget_schema(decision_schema(ToolRegistry([python_tool()])), 384)
    assert "pattern" not in _arguments(schema, "python")["code"]
    loose, needed = budget_schema({"type": "object", "properties": {"x": {"type": "string"}}}, 100, free_text=False)
    assert loose == {"type": "object", "properties": {"x": {"type": "string"}}} and needed == 100


def test_llama_cpp_turns_the_budgeted_schema_into_a_grammar_with_bounded_strings():
    grammar_module = pytest.importorskip("llama_cpp.llama_grammar")
    schema, _ = budget_schema(decision_schema(ToolRegistry([calculator, convert])), 384)
    grammar = grammar_module.json_schema_to_gbnf(json.dumps(schema))
    assert '[^"\\\\{}' in grammar  # the free-text class
    rules = re.sub(r'"(?:\\.|[^"\\])*"|\[(?:\\.|[^\]\\])*\]', "", grammar)  # literals and classes out
    assert "*" not in rules and "+" not in rules  # no unbounded rule


def test_a_list_without_max_items_gets_as_many_items_as_fit_so_the_object_still_closes():
    # BabyAGI's priorities (`order: list[int]`): SmolLM2 wrote 1, 2, 3, ... 97 until the token limit cut it off.
    order = {"type": "object", "properties": {"order": {"type": "array", "items": {"type": "integer"}}}}
    schema, needed = budget_schema(order, 384)
    largest = max_size(schema)
    assert largest is not None and largest + RESERVED_TOKENS <= 384 == needed
    assert 10 <= schema["properties"]["order"]["maxItems"] < 384 // 18
    names = {"type": "object", "properties": {"names": {"type": "array", "items": {"type": "string"}, "minItems": 2}}}
    schema, needed = budget_schema(names, 200)
    listed = schema["properties"]["names"]
    assert listed["maxItems"] >= 2 and re.compile(listed["items"]["pattern"]).match("Ada Lovelace")
    assert max_size(schema) is not None and needed == 200
    # Items we cannot bound (loose strings) leave the array as the user wrote it.
    loose, _ = budget_schema(names, 200, free_text=False)
    assert loose == names


@tool
def pick(
    k: Annotated[int, Field(ge=1, le=10)] = 3,
    day: Annotated[int, Field(gt=0, lt=8)] = 1,
    count: Annotated[int, Field(ge=0)] = 0,
) -> str:
    """Pick something.

    Args:
        k: How many (1-10).
        day: A weekday number.
        count: Any count.
    """
    return ""


def test_a_short_integer_range_becomes_its_values_because_llama_cpp_ignores_integer_bounds():
    schema, _ = budget_schema(decision_schema(ToolRegistry([pick])), 384)
    params = _arguments(schema, "pick")
    assert params["k"]["enum"] == list(range(1, 11))
    assert params["day"]["enum"] == list(range(1, 8))
    assert "enum" not in params["count"]  # unbounded above: left to validation


def test_grounded_arguments_compile_into_the_grammar():
    grammar_module = pytest.importorskip("llama_cpp.llama_grammar")
    from agentlab.strategies.grounding import grounded_queries, grounded_tool_parameters
    from agentlab.tools import LocalCorpus, search_tools

    tools = ToolRegistry(search_tools(LocalCorpus(name="empty")))
    queries = grounded_queries("Who directed Wolf and Sheep?", ["[1] Wolf and Sheep\nA drama by Shahrbanoo Sadat."])
    grounded = {t.name: grounded_tool_parameters(t.parameters, queries) for t in tools}
    schema, _ = budget_schema(decision_schema(tools, tool_parameters=grounded), 384)
    grammar = grammar_module.json_schema_to_gbnf(json.dumps(schema))  # raises on what it cannot read
    query_rule = next(line for line in grammar.splitlines() if line.startswith("action-0-arguments-query ::="))
    assert query_rule.count(" | ") == len(queries) - 1 and '\\"Shahrbanoo Sadat\\"' in query_rule
    assert _arguments(schema, "lookup")["title"]["enum"] == queries
