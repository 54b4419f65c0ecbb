"""How many characters a regular expression can match at most, for the subset JSON Schema patterns use in
grammars (literals, escapes, classes, groups, alternation, `? * + {n} {m,n}`, anchors).

The grammar budget (`agentlab.models.grammar`) needs the largest value a pattern lets through, so that a
reply is never cut off inside the structure, and it shortens patterns that end in a bounded repetition
(`^term(op term){0,40}$`) until they fit. Python's `re` keeps its own width computation private, so the
subset is read here; anything outside it counts as unbounded (None) and is left to the user.
"""

from __future__ import annotations

import re

_UNBOUNDED = None
_TAIL_REPEAT = re.compile(r"^(?P<head>.*)\{(?P<low>\d+),(?P<high>\d+)\}\$$", re.DOTALL)


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at] if self.at < len(self.text) else ""

    def take(self) -> str:
        char = self.peek()
        self.at += 1
        return char


def max_width(pattern: str) -> int | None:
    """The most characters `pattern` can match, or None when unbounded or outside the subset read here."""
    reader = _Reader(pattern)
    try:
        width = _alternation(reader)
    except ValueError:
        return None
    return width if reader.at == len(pattern) else None


def shrink_tail_repeat(pattern: str, width: int) -> str | None:
    """`pattern` with the upper bound of its final `(...){m,n}` lowered so that it matches at most `width`
    characters, but never below m (then it is as short as it goes); None when it has no such tail."""
    tail = _TAIL_REPEAT.match(pattern)
    if tail is None or not tail["head"].endswith(")"):
        return None
    head, low, high = tail["head"], int(tail["low"]), int(tail["high"])
    group_start = _group_start(head)
    if group_start is None:
        return None
    before, group = head[:group_start], head[group_start:]
    fixed, unit = max_width(before + "$"), max_width(group)
    if fixed is None or unit is None:
        return None
    repeats = high if unit == 0 else max(low, min(high, (width - fixed) // unit))
    return f"{before}{group}{{{low},{repeats}}}$"


def _group_start(text: str) -> int | None:
    """Where the group that closes at the end of `text` opens."""
    last, in_class = len(text) - 1, False
    openers: list[int] = []
    position = 0
    while position < len(text):  # scan forwards: escapes and classes are only readable that way
        char = text[position]
        if char == "\\":
            position += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            openers.append(position)
        elif char == ")":
            start = openers.pop() if openers else None
            if position == last:
                return start
        position += 1
    return None


def _alternation(reader: _Reader) -> int | None:
    widest: int | None = 0
    while True:
        branch = _sequence(reader)
        widest = None if branch is None or widest is None else max(widest, branch)
        if reader.peek() != "|":
            return widest
        reader.take()


def _sequence(reader: _Reader) -> int | None:
    total: int | None = 0
    while reader.peek() not in ("", "|", ")"):
        atom = _atom(reader)
        count = _quantifier(reader)
        if atom is None or count is None:
            total = None
        elif total is not None:
            total += atom * count
    return total


def _atom(reader: _Reader) -> int | None:
    char = reader.take()
    if not char:
        raise ValueError("the pattern ended early")
    if char in "^$":
        return 0
    if char == "\\":
        escaped = reader.take()
        if not escaped:
            raise ValueError("dangling escape")
        return 0 if escaped in "bBAZ" else 1
    if char == "[":
        _skip_class(reader)
        return 1
    if char == "(":
        if reader.peek() == "?":
            reader.take()
            if reader.take() != ":":
                raise ValueError("only non-capturing groups are read")
        width = _alternation(reader)
        if reader.take() != ")":
            raise ValueError("unclosed group")
        return width
    if char in "*+?{":
        raise ValueError("a quantifier with nothing to repeat")
    return 1


def _skip_class(reader: _Reader) -> None:
    if reader.peek() == "^":
        reader.take()
    if reader.peek() == "]":
        reader.take()
    while True:
        char = reader.take()
        if not char:
            raise ValueError("unclosed character class")
        if char == "\\":
            reader.take()
        elif char == "]":
            return


def _quantifier(reader: _Reader) -> int | None:
    """How many times the atom before may repeat at most (None: unbounded)."""
    char = reader.peek()
    count: int | None
    if not char:
        return 1
    if char == "?":
        reader.take()
        count = 1
    elif char in "*+":
        reader.take()
        count = _UNBOUNDED
    elif char == "{":
        bounds = re.match(r"\{(\d*)(,?)(\d*)\}", reader.text[reader.at :])
        if bounds is None:
            raise ValueError("unreadable repetition")
        reader.at += bounds.end()
        low, comma, high = bounds.groups()
        count = int(high) if high else _UNBOUNDED  # {m,n} or {m,}
        if not comma:  # {n}
            count = int(low)
    else:
        return 1
    if reader.peek() == "?":  # lazy: the same widths
        reader.take()
    return count
