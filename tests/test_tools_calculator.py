"""The calculator built-in: correct arithmetic, and refusal of anything that is not arithmetic."""

from __future__ import annotations

import math
import re
import time

import pytest

from agentlab.tools import calculator
from agentlab.tools.builtin.arithmetic import CalculatorError, evaluate, format_number


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("1 + 2 * 3", "7"),
        ("(1 + 2) * 3", "9"),
        ("10 / 2", "5"),
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("7 % 3", "1"),
        ("-3 ** 2", "-9"),
        ("2 ** 10", "1024"),
        ("2 ** -1", "0.5"),
        ("0.1 + 0.2", "0.3"),
        ("sqrt(16)", "4"),
        ("round(pi, 3)", "3.142"),
        ("round(2.675)", "3"),
        ("abs(-4.5)", "4.5"),
        ("min(3, 1, 2) + max(4, 5)", "6"),
        ("log(e)", "1"),
        ("log(8, 2)", "3"),
        ("log10(1000)", "3"),
        ("cos(0) + sin(0)", "1"),
        ("factorial(5)", "120"),
        ("2 × 3 ÷ 4", "1.5"),
        ("12345678901234567890 * 10", "123456789012345678900"),
    ],
)
def test_arithmetic(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


def test_results_keep_precision() -> None:
    assert evaluate("2 ** 100") == 2**100
    assert math.isclose(evaluate("sqrt(2)"), math.sqrt(2))
    assert format_number(1 / 3) == "0.333333333333"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("__import__('os')", "'__import__' is not allowed"),
        ("__import__('os').system('echo hi')", "is not allowed"),
        ("(1).real", "attribute access is not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("open", "unknown name 'open'"),
        ("'a' * 3", "only numbers"),
        ("True + 1", "only numbers"),
        ("[1, 2]", "List is not allowed"),
        ("lambda: 1", "Lambda is not allowed"),
        ("1 if 1 else 2", "IfExp is not allowed"),
        ("2 ^ 10", "write powers as a ** b"),
        ("1 << 100", "not supported"),
        ("round(2.5, ndigits=1)", "positional arguments only"),
        ("1 / 0", "division by zero"),
        ("sqrt(-1)", "math domain error"),
        ("(-8) ** 0.5", "complex"),
        ("1 +", "invalid syntax"),
        ("", "empty"),
    ],
)
def test_refuses_non_arithmetic(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError, match=re.escape(reason)):
        evaluate(expression)


@pytest.mark.parametrize("expression", ["9**9**9", "10**100000", "(10**3000)**2", "2**5000 * 2**5001"])
def test_refuses_huge_numbers_quickly(expression: str) -> None:
    started = time.perf_counter()
    with pytest.raises(CalculatorError, match="too large"):
        evaluate(expression)
    assert time.perf_counter() - started < 0.5


def test_refuses_float_overflow_and_absurd_input() -> None:
    with pytest.raises(CalculatorError, match="overflow"):
        evaluate("10.0 ** 400")
    with pytest.raises(CalculatorError, match="longer than"):
        evaluate("1+" * 1000 + "1")
    with pytest.raises(CalculatorError, match="factorial"):
        evaluate("factorial(100000)")


async def test_invoke_reports_refusal_to_the_model() -> None:
    out = await calculator.invoke({"expression": "__import__('os').system('id')"})
    assert not out.ok and out.error == "exception"
    assert out.content.startswith("Error: CalculatorError: ")

    ok = await calculator.invoke('{"expression": "6 * 7"}')
    assert ok.ok and ok.content == "42"


def test_schema() -> None:
    function = calculator.schema()["function"]
    assert function["name"] == "calculator"
    assert function["parameters"]["required"] == ["expression"]
    assert "arithmetic" in function["description"].lower()
