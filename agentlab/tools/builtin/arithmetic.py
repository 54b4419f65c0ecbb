"""The calculator tool: safe arithmetic for the model. The expression is parsed with `ast` and only
whitelisted nodes are evaluated. Nothing reaches `eval`, so names, attributes and imports do not exist."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Annotated, Any

from agentlab._arithmetic_shape import NUMBER, chain_of, term_of
from agentlab.tools.function_tool import tool
from agentlab.tools.schema import grounded

Number = int | float

MAX_EXPRESSION_CHARS = 1000
# Integers stay exact, but unbounded: cap their size so `9**9**9` is refused up front instead of
# eating the CPU. 10,000 bits is about 3,000 digits, below Python's int-to-str limit of 4,300.
MAX_INT_BITS = 10_000
MAX_FACTORIAL = 1000
MAX_OPERATIONS = 40


def _expression_pattern() -> str:
    """The shape of an expression, for grammars: terms joined by operators, where a term is a number, a
    constant or a function call, behind at most two opening parentheses or minus signs and before at most
    two closing ones. A grammar built from it keeps a small model's expression free of quotes, braces and
    prose, and makes it start with a term: left to a character class, SmolLM2 wrote ", 119, 5, 11, ..." and
    ".57 + 35 * 6". Commas appear only between a function's arguments, so a list of numbers is not an
    expression. The shape is a hint in the schema, not a check: an expression that gets past it (from a
    model without a grammar) gets the evaluator's own, more helpful, reasons. It ends in a bounded repetition
    so that a grammar budget can lower that bound to fit the reply (`agentlab.models.regex_width`)."""
    value = f"({NUMBER}|{'|'.join(_CONSTANTS)})"
    # Longer names first: an alternation tries its branches in order.
    call = f"({'|'.join(sorted(_FUNCTIONS, key=len, reverse=True))})[(]-?{value}(, ?-?{value})?[)]"
    term = term_of(f"{value}|{call}")
    return f"^{chain_of(term, MAX_OPERATIONS)}$"


class CalculatorError(ValueError):
    """The expression is not something this calculator will evaluate; the message says why."""


def _checked_pow(base: Number, exponent: Number) -> Number:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        estimated_bits = exponent * math.log2(abs(base))
        if estimated_bits > MAX_INT_BITS:
            raise CalculatorError(
                f"result too large: {base}**{exponent} would have about {int(estimated_bits * 0.30103) + 1} "
                "digits. Use smaller numbers or floats (e.g. 9.0**9)."
            )
    result = base**exponent
    if isinstance(result, complex):
        raise CalculatorError("the result is a complex number (e.g. a fractional power of a negative)")
    return result


def _checked_mul(left: Number, right: Number) -> Number:
    if isinstance(left, int) and isinstance(right, int) and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise CalculatorError("result too large: the product has more than ~3,000 digits")
    return left * right


def _round(value: Number, digits: int = 0) -> Number:
    if not isinstance(digits, int) or abs(digits) > 100:
        raise CalculatorError("round(x, n) needs a whole number n between -100 and 100")
    return round(value, digits) if digits else round(value)


def _factorial(value: Number) -> int:
    if not float(value).is_integer() or not 0 <= value <= MAX_FACTORIAL:
        raise CalculatorError(f"factorial needs a whole number between 0 and {MAX_FACTORIAL}")
    return math.factorial(int(value))


def _log(value: Number, base: Number = math.e) -> float:
    return math.log(value, base)


_BINARY_OPERATORS: dict[type[ast.operator], Callable[[Any, Any], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: _checked_mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: _checked_pow,
}
_UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Any], Number]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt,
    "log": _log,
    "ln": math.log,
    "log10": math.log10,
    "log2": math.log2,
    "exp": math.exp,
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "asin": math.asin,
    "acos": math.acos,
    "atan": math.atan,
    "degrees": math.degrees,
    "radians": math.radians,
    "abs": abs,
    "round": _round,
    "floor": math.floor,
    "ceil": math.ceil,
    "factorial": _factorial,
    "min": min,
    "max": max,
}
_CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}
EXPRESSION_PATTERN = _expression_pattern()
# Grounded: when grounding arguments, a first call copies a calculation the task writes out.
Expression = Annotated[str, grounded("expression", pattern=EXPRESSION_PATTERN)]


def _evaluate_node(node: ast.AST) -> Number:
    if isinstance(node, ast.Expression):
        return _evaluate_node(node.body)
    if isinstance(node, ast.Constant):
        # bool is an int subclass; True + 1 is not arithmetic anyone means to ask for.
        if isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return node.value
        raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.BitXor):
            raise CalculatorError("'^' is not a power operator here; write powers as a ** b")
        binary = _BINARY_OPERATORS.get(type(node.op))
        if binary is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not supported; use + - * / // % **")
        return binary(_evaluate_node(node.left), _evaluate_node(node.right))
    if isinstance(node, ast.UnaryOp):
        unary = _UNARY_OPERATORS.get(type(node.op))
        if unary is None:
            raise CalculatorError(f"operator {type(node.op).__name__} is not supported")
        return unary(_evaluate_node(node.operand))
    if isinstance(node, ast.Name):
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        raise CalculatorError(f"unknown name {node.id!r}; known constants: {', '.join(_CONSTANTS)}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            called = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise CalculatorError(f"function {called!r} is not allowed; available: {', '.join(_FUNCTIONS)}")
        if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
            raise CalculatorError("functions take plain positional arguments only")
        arguments = [_evaluate_node(arg) for arg in node.args]
        try:
            return _FUNCTIONS[node.func.id](*arguments)
        except TypeError as exc:
            raise CalculatorError(f"wrong arguments for {node.func.id}(): {exc}") from None
    if isinstance(node, ast.Attribute):
        raise CalculatorError("attribute access is not allowed")
    raise CalculatorError(f"{type(node).__name__} is not allowed; use numbers, operators and math functions")


def evaluate(expression: str) -> Number:
    """Evaluate an arithmetic expression, or raise `CalculatorError` with a reason the model can act on."""
    text = expression.strip().replace("×", "*").replace("÷", "/").replace("−", "-")
    if not text:
        raise CalculatorError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculatorError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise CalculatorError(f"invalid syntax in {text!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # huge literals, absurd nesting
        raise CalculatorError(f"cannot parse the expression: {exc}") from None
    try:
        return _evaluate_node(tree)
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except OverflowError:
        raise CalculatorError("numeric overflow: the result is too large for a float") from None
    except RecursionError:
        raise CalculatorError("the expression is nested too deeply") from None
    except CalculatorError:
        raise
    except ValueError as exc:  # math domain errors such as sqrt(-1)
        raise CalculatorError(f"{exc}") from None


def format_number(value: Number) -> str:
    """Whole results print as integers (10/2 -> 5); other floats with up to 12 significant digits."""
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.12g}"


@tool(timeout=5.0)
def calculator(expression: Expression) -> str:
    """Evaluate an arithmetic expression exactly, e.g. "(3 + 4) * 2 ** 10 / 7" or "sqrt(2) * pi".

    Supports + - * / // % ** and parentheses, the constants pi, e, tau and the functions sqrt, log(x[, base]),
    log10, log2, exp, sin, cos, tan, asin, acos, atan, degrees, radians, abs, round, floor, ceil,
    factorial, min, max.

    Args:
        expression: The arithmetic expression to evaluate, using Python syntax (** for powers).
    """
    return format_number(evaluate(expression))
