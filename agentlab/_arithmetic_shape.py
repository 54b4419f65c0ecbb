"""The shape of arithmetic, as regular-expression pieces for grammars: the calculator's `expression` and PAL's
programs on a small model are both built from them. Literal punctuation goes in classes, because
llama.cpp's schema converter writes `\\.` into grammar text its own parser rejects."""

from __future__ import annotations

import keyword
import re

NUMBER = "[0-9]{1,9}([.][0-9]{1,6})?"
OPERATOR = " ?([*][*]|//|[-+*/%]) ?"


def term_of(operand: str) -> str:
    """`operand` (a pattern) behind at most two opening parentheses or minus signs and before at most two
    closing ones: parentheses are not balanced, the shape only keeps debris out."""
    return f"[-(]{{0,2}}({operand})[)]{{0,2}}"


def chain_of(term: str, most: int = 3) -> str:
    """`term` (a pattern), then at most `most` more of it, each after an operator: arithmetic over terms."""
    return f"{term}({OPERATOR}{term}){{0,{most}}}"


# A variable of a small model's program (PAL's, CodeAct's): lower case and short. A keyword fits this shape
# (SmolLM2 wrote `for = 18` and `def = 3 * 100`), and a regular grammar has no "but not" short enough to
# leave them out: a pattern that spells out every way around the keywords made CodeAct's grammar too large
# for llama.cpp's parser. So a shaped program's keywords-as-names are renamed before it runs (`runnable`).
NAME = "[a-z_][a-z0-9_]{0,24}"
# Arithmetic over such names and numbers: up to four terms.
EXPRESSION_OVER_NAMES = chain_of(term_of(f"{NAME}|{NUMBER}"))
# A word of a shaped program, or a quoted text it passes to a tool (left as it is).
_WORD_OR_TEXT = re.compile(r"'[^'\n]*'|\b[a-z_][a-z0-9_]*\b")


def runnable(line: str) -> str:
    """A line of a shaped program with each keyword it uses as a name written with a trailing underscore
    (`for = 18` → `for_ = 18`), so that it runs as the model meant it to."""
    return _WORD_OR_TEXT.sub(lambda m: f"{m.group()}_" if keyword.iskeyword(m.group()) else m.group(), line)
