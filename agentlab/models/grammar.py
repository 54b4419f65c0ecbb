"""Budgeted grammars: a JSON Schema made tight enough that a grammar-constrained small model can only
write clean values, and small enough that the whole object always fits in the reply's token limit.

Two rewrites, both on a copy of the schema:
- A *free* string (no `pattern`, `enum`, `const`, `format` or `contentMediaType` (code) of its own) becomes
  single-line text without braces, quotes, backslashes or control characters (`FREE_TEXT_CHAR`): the debris
  small models write into free strings (`"} }}\\n..."`, half an object) cannot be produced any more.
- Every string gets a length bound, and every array a number of items, shared out so that the largest object
  the grammar allows still fits in `max_tokens`: a reply is then never cut off inside the structure (at
  worst a string is short, or a list).

The size of the largest object is counted in characters; a token holds at least one character of ASCII
text, so for ASCII replies the count bounds the tokens too. A pattern of another shape is measured
(`regex_width.max_width`); one that ends in a bounded repetition (`^term(op term){0,40}$`) is shortened to
fit. A pattern that is unbounded, or that we cannot read, is not bounded by us: its bounds are the user's.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentlab._json_schema import DATA_KEYS
from agentlab.models.regex_width import max_width, shrink_tail_repeat

if TYPE_CHECKING:
    from pydantic import JsonValue

FREE_TEXT_CHAR = r'[^"\\{}\x00-\x1f\x7f]'
"""One character of free text: no JSON debris (braces, quotes, backslashes) and no control characters."""

# llama.cpp expands a bounded string into one nested optional rule per character; a few thousand levels
# overflow its grammar parser's stack and kill the process.
MAX_GRAMMAR_STRING_BOUND = 500
# Numbers in llama.cpp's JSON grammar: sign, up to 16 integral and 16 decimal digits, an exponent.
_NUMBER_CHARS = 1 + 16 + 1 + 16 + 2 + 16
_INTEGER_CHARS = 1 + 16
_SPACE = 1  # the grammar's optional space after each value and separator
# Room left for the end-of-sequence token and the leading space some templates add.
RESERVED_TOKENS = 4
# The room an item of an array without `maxItems` is counted at when the array is bounded to fit.
ARRAY_ITEM_CHARS = 40
_SIMPLE_PATTERN = re.compile(r"^\^(\[(?:\\.|[^\]\\])+\])\{(\d+),(\d+)\}\$$")


def budget_schema(schema: dict[str, Any], max_tokens: int, *, free_text: bool = True) -> tuple[dict[str, Any], int]:
    """The schema rewritten for a grammar (see the module docstring) and the token limit the reply needs:
    `max_tokens`, or more when even the smallest object the schema allows does not fit in it.

    Args:
        schema: A JSON Schema object (`$ref`s into `$defs` are followed).
        max_tokens: The reply's token limit.
        free_text: Constrain free strings to single-line text without braces (False: only bound them).
    """
    # A tool's parameters bring their own `$defs` (an Enum, a nested model) into the decision schema, where
    # "#/$defs/..." no longer points at them: gather them from anywhere and inline them.
    definitions: dict[str, Any] = {}
    _collect_defs(schema, definitions)
    root = _resolve_refs(copy.deepcopy(schema), definitions)
    _rewrite_schemas(root, _enumerate_integer_range)
    if free_text:
        _rewrite_schemas(root, _mark_free_string)
    fitted = _fit(root, max(0, max_tokens - RESERVED_TOKENS))
    largest = max_size(fitted)
    needed = max_tokens if largest is None else max(max_tokens, largest + RESERVED_TOKENS)
    return fitted, needed


def _collect_defs(node: Any, found: dict[str, Any]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_defs(item, found)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "$defs" and isinstance(value, dict):
                found.update(value)
            if key not in DATA_KEYS:
                _collect_defs(value, found)


def _resolve_refs(node: Any, defs: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(node, list):
        return [_resolve_refs(item, defs, depth) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/") and depth < 20:
        target = defs.get(ref.removeprefix("#/$defs/"))
        if isinstance(target, dict):
            merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
            return _resolve_refs(merged, defs, depth + 1)
    return {key: _resolve_refs(value, defs, depth) for key, value in node.items() if key != "$defs"}


CODE: dict[str, JsonValue] = {"contentMediaType": "text/x-python"}
"""Mark a string schema as code (`Field(json_schema_extra=CODE)`): it keeps its newlines and braces."""
_NOT_FREE = ("pattern", "enum", "const", "format", "contentMediaType")


def _is_free_string(node: dict[str, Any]) -> bool:
    """Prose the model fills freely; a string with its own shape (a pattern, values, code) is not."""
    return node.get("type") == "string" and not any(k in node for k in _NOT_FREE)


def _rewrite_schemas(node: Any, rewrite: Callable[[dict[str, Any]], bool]) -> None:
    """Call `rewrite` on every sub-schema of `node`, outermost first, in place; below one it rewrote (it
    returned True) and inside data (`enum`, `const`, `default`, `examples`), nothing is visited."""
    if isinstance(node, list):
        for item in node:
            _rewrite_schemas(item, rewrite)
    elif isinstance(node, dict) and not rewrite(node):
        for key, value in node.items():
            if key not in DATA_KEYS:
                _rewrite_schemas(value, rewrite)


def _mark_free_string(node: dict[str, Any]) -> bool:
    if not _is_free_string(node):
        return False
    low = int(node.get("minLength", 0))
    high = node.get("maxLength")
    high = MAX_GRAMMAR_STRING_BOUND if not isinstance(high, int) else min(high, MAX_GRAMMAR_STRING_BOUND)
    node["pattern"] = _pattern(FREE_TEXT_CHAR, low, max(low, high))
    return True


# llama.cpp's converter ignores an integer's bounds: a small model wrote `"k": 43` for `Field(ge=1, le=10)`
# (copying a number from the task), which then failed validation. A short range becomes its values.
MAX_ENUMERATED_INTEGERS = 100


def _enumerate_integer_range(node: dict[str, Any]) -> bool:
    if node.get("type") != "integer":
        return False
    low, high = _integer_bounds(node)
    has_values = "enum" in node or "const" in node
    if not has_values and low is not None and high is not None and 0 <= high - low < MAX_ENUMERATED_INTEGERS:
        node["enum"] = list(range(low, high + 1))
    return True


def _integer_bounds(node: dict[str, Any]) -> tuple[int | None, int | None]:
    """The smallest and largest integer `node` allows (None: unbounded on that side)."""
    low = high = None
    if isinstance(node.get("minimum"), int | float):
        low = math.ceil(node["minimum"])
    if isinstance(node.get("exclusiveMinimum"), int | float):
        low = max(low if low is not None else -math.inf, math.floor(node["exclusiveMinimum"]) + 1)
    if isinstance(node.get("maximum"), int | float):
        high = math.floor(node["maximum"])
    if isinstance(node.get("exclusiveMaximum"), int | float):
        high = min(high if high is not None else math.inf, math.ceil(node["exclusiveMaximum"]) - 1)
    return (None if low is None else int(low)), (None if high is None else int(high))


def _pattern(char_class: str, low: int, high: int) -> str:
    return f"^{char_class}{{{low},{high}}}$"


def _string_bounds(node: dict[str, Any]) -> tuple[int, int | None, str | None]:
    """(min chars, max chars or None, the pattern's character class when the pattern is one we can rebound)."""
    pattern = node.get("pattern")
    if isinstance(pattern, str):
        simple = _SIMPLE_PATTERN.match(pattern)
        if simple:
            return int(simple[2]), int(simple[3]), simple[1]
        return 0, max_width(pattern), None
    escaped = 6  # a free JSON string char may be written as \uXXXX
    high = node.get("maxLength")
    return int(node.get("minLength", 0)), None if high is None else high * escaped, None


def _properties(node: dict[str, Any]) -> list[tuple[str, Any]]:
    return list((node.get("properties") or {}).items())


def _key_overhead(key: str) -> int:
    return len(json.dumps(key)) + _SPACE + 1 + _SPACE + 1 + _SPACE  # "key" : value ,


def _variants(node: dict[str, Any]) -> list[Any] | None:
    for key in ("anyOf", "oneOf"):
        variants = node.get(key)
        if isinstance(variants, list):
            return variants
    return None


def max_size(node: Any) -> int | None:
    """The most characters a grammar for `node` lets through (None: unbounded)."""
    return _size(node, largest=True)


def min_size(node: Any) -> int:
    """The fewest characters a value of `node` takes."""
    return _size(node, largest=False) or 0


def _size(node: Any, *, largest: bool) -> int | None:
    if not isinstance(node, dict):
        return 0
    variants = _variants(node)
    if variants is not None:
        sizes = [_size(v, largest=largest) for v in variants]
        if largest:
            return None if any(s is None for s in sizes) else max((s or 0) for s in sizes)
        return min((s or 0) for s in sizes) if sizes else 0
    if "const" in node:
        return len(json.dumps(node["const"], ensure_ascii=False)) + _SPACE
    if "enum" in node:
        lengths = [len(json.dumps(v, ensure_ascii=False)) + _SPACE for v in node["enum"]] or [0]
        return max(lengths) if largest else min(lengths)
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        required = set(node.get("required", []))
        total = 2 + 2 * _SPACE
        for key, value in _properties(node):
            if not largest and key not in required:
                continue
            child = _size(value, largest=largest)
            if child is None:
                return None
            total += _key_overhead(key) + child
        if largest and node.get("additionalProperties") not in (None, False):
            return None
        return total
    if kind == "array":
        items = node.get("items", {})
        count: int | None = node.get("maxItems") if largest else node.get("minItems", 0)
        child = _size(items, largest=largest)
        if count is None or child is None:
            return None
        return 2 + 2 * _SPACE + count * (child + 1 + _SPACE)
    if kind == "string":
        low, high, _ = _string_bounds(node)
        if largest:
            return None if high is None else high + 2 + _SPACE
        return low + 2 + _SPACE
    if kind == "number":
        return _NUMBER_CHARS + _SPACE if largest else 1 + _SPACE
    if kind == "integer":
        return _INTEGER_CHARS + _SPACE if largest else 1 + _SPACE
    if kind == "boolean":
        return 5 + _SPACE if largest else 4 + _SPACE
    if kind == "null":
        return 4 + _SPACE
    return None if largest else 0


def _fit(node: Any, budget: int) -> Any:
    """`node` with its string bounds lowered so that its largest value takes at most `budget` characters
    where that is possible (never below a string's minimum length)."""
    if not isinstance(node, dict):
        return node
    variants = _variants(node)
    if variants is not None:
        key = "anyOf" if "anyOf" in node else "oneOf"
        return {**node, key: [_fit(v, budget) for v in variants]}
    kind = node.get("type")
    if kind == "string":
        return _fit_string(node, budget)
    if kind == "object" or "properties" in node:
        return _fit_object(node, budget)
    if kind == "array":
        return _fit_array(node, budget)
    return node


def _fit_array(node: dict[str, Any], budget: int) -> dict[str, Any]:
    """An array's items fitted to their share of `budget`. An array with no `maxItems` gets one: as many
    items as fit, each at its largest once fitted to `ARRAY_ITEM_CHARS` (a string at that length, a number
    whole), never fewer than `minItems`. Without it a small model wrote `"order": [1, 2, 3, ..., 97,` until
    the token limit cut the reply off (BabyAGI's priorities)."""
    items = node.get("items", {})
    count = node.get("maxItems")
    if not isinstance(count, int):
        each = max_size(_fit(items, ARRAY_ITEM_CHARS))
        if each is None:  # items of a shape we cannot bound: the user's bounds, as for strings
            return node
        room = (budget - 2 - 2 * _SPACE) // (each + 1 + _SPACE)
        count = max(node.get("minItems", 0), room)
        node = {**node, "maxItems": count}
    if count <= 0:
        return node
    per_item = (budget - 2 - 2 * _SPACE) // count - 1 - _SPACE
    return {**node, "items": _fit(items, per_item)}


def _fit_string(node: dict[str, Any], budget: int) -> dict[str, Any]:
    low, high, char_class = _string_bounds(node)
    if char_class is None:
        pattern = node.get("pattern")
        if not isinstance(pattern, str) or high is None or high + 2 + _SPACE <= budget:
            return node
        shorter = shrink_tail_repeat(pattern, max(0, budget - 2 - _SPACE))
        return node if shorter is None else {**node, "pattern": shorter}
    room = max(low, min(high if high is not None else budget, budget - 2 - _SPACE, MAX_GRAMMAR_STRING_BOUND))
    return {**node, "pattern": _pattern(char_class, low, room)}


def _fit_object(node: dict[str, Any], budget: int) -> dict[str, Any]:
    """Share `budget` between the properties: each gets its floor, then the rest is shared out evenly,
    smallest wants first (water filling), so a short field leaves its unused share to the long ones."""
    properties = _properties(node)
    overhead = 2 + 2 * _SPACE + sum(_key_overhead(key) for key, _ in properties)
    # A property's floor is its largest value once squeezed as far as it goes (a number does not squeeze).
    lows = {key: max_size(_fit(value, 0)) or 0 for key, value in properties}
    highs = {key: max_size(value) for key, value in properties}
    spare = budget - overhead - sum(lows.values())
    shares = dict(lows)
    order = sorted(properties, key=lambda kv: (highs[kv[0]] is None, (highs[kv[0]] or 0) - lows[kv[0]]))
    for position, (key, _) in enumerate(order):
        fair = max(0, spare) // (len(order) - position)
        high = highs[key]
        extra = fair if high is None else min(fair, high - lows[key])
        shares[key] += extra
        spare -= extra
    fitted = {key: _fit(value, shares[key]) for key, value in properties}
    return {**node, "properties": fitted}
