"""Text helpers shared by every layer: nothing here knows about agents."""

from __future__ import annotations

from typing import Any


def scrub(text: str) -> str:
    """`text` without lone UTF-16 surrogates (each becomes U+FFFD), so it can be encoded as UTF-8.

    They arrive from `os.listdir` on non-UTF-8 file names and from servers that send half an emoji as
    `"\\ud83d"`; left in, they make every later `.encode("utf-8")` (a trace line, the next request) raise.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Through UTF-16: a split pair joins up again, a lone half becomes U+FFFD.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


# A marker that says how much was cut, so a model (or a reader) knows the text is incomplete.
COUNTED = "…[truncated {dropped} chars]"


def scrub_data(value: Any) -> Any:
    """Decoded JSON (dicts, lists, strings) with every string and key `scrub`bed: a `"\\ud800"` escape
    decodes to a lone surrogate."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, list):
        return [scrub_data(item) for item in value]
    if isinstance(value, dict):
        return {scrub(str(key)): scrub_data(item) for key, item in value.items()}
    return value


def clip(
    text: str, limit: int, *, marker: str = "…", fold: bool = False, at_word: bool = False, dropped: int = 0
) -> str:
    """`text` cut to its first `limit` characters, followed by `marker` when anything was cut.

    `marker` may name `{dropped}` (see `COUNTED`): the number of characters cut, plus `dropped` ones
    cut before `text` got here (a marker is then added even when `text` itself fits). `fold` first
    turns every run of whitespace into one space (a one-line preview); `at_word` cuts at the last space
    before the limit instead of inside a word. `limit <= 0` means no limit.
    """
    if fold:
        text = " ".join(text.split())
    if limit <= 0 or len(text) <= limit:
        return text + marker.format(dropped=dropped) if dropped else text
    cut = text[:limit]
    if at_word:
        cut = cut.rsplit(" ", 1)[0]
    return cut + marker.format(dropped=dropped + len(text) - limit)
