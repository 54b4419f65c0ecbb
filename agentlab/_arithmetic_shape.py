"""The shape of arithmetic, as regular-expression pieces for grammars: the calculator's `expression` and PAL's
programs on a small model are both built from them. Literal punctuation goes in classes, because
llama.cpp's schema converter writes `\\.` into grammar text its own parser rejects."""

NUMBER = "[0-9]{1,9}([.][0-9]{1,6})?"
OPERATOR = " ?([*][*]|//|[-+*/%]) ?"


def term_of(operand: str) -> str:
    """`operand` (a pattern) behind at most two opening parentheses or minus signs and before at most two
    closing ones: parentheses are not balanced, the shape only keeps debris out."""
    return f"[-(]{{0,2}}({operand})[)]{{0,2}}"
