"""Grounded answers: the final answer as a span copied from what the tools returned.

For question answering over documents a small model paraphrases badly and invents freely; asked to pick
one of the observed sentences instead (an `enum` in the final answer's schema, which a grammar enforces),
it can only answer with text that is really in the documents. A numeric answer (`output_type=float` or
`int`) is grounded the same way: one of the numbers the tools returned, so a model that called the
calculator cannot answer with a number it made up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

MAX_SPANS = 40  # an enum of this many sentences keeps the grammar small
MAX_SPAN_CHARS = 200
MIN_SPAN_CHARS = 2
MIN_SENTENCE_WORDS = 4
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")
# Decoration the search tools put around passages: "[1] ", "# ", list bullets, an ellipsis at a cut.
# Characters a clean answer does not need and a grammar literal handles badly (quotes, backslashes, braces).
# How the built-in tools say they found nothing: such an observation holds no answer.
_FAILURES = ("Error:", "No passages", "No page")
_UNSAFE = re.compile(r'["\\{}\x00-\x1f\x7f]')
_DECORATION = re.compile(r"^(?:\[\d+\]\s*|#+\s*|[-*•]\s+|\(.*?\)\s*$)")
# A number as tools print it: an optional sign, digits with optional thousands commas, a fraction, an exponent.
_NUMBER = re.compile(
    r"(?<![\w.])-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w.])|(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])"
)


def candidate_spans(observations: Iterable[str], limit: int = MAX_SPANS, written: Iterable[str] = ()) -> list[str]:
    """Sentences (and title lines) of the observations, cleaned (no quotes, backslashes or braces), unique,
    latest observation first. Text the model `written` itself (its tool arguments, which a tool may echo back
    as in "No page titled ...") is not an observation and is left out."""
    own = [_UNSAFE.sub("", text) for text in written]
    spans: list[str] = []
    for text in reversed(list(observations)):
        if text.lstrip().startswith(_FAILURES):  # "No page titled ... Try local_search first." answers nothing
            continue
        for line in text.splitlines():
            line = _DECORATION.sub("", line.strip()).strip()
            for sentence in _SENTENCE_END.split(line):
                span = " ".join(_UNSAFE.sub("", sentence).split()).rstrip(" …")
                if span.startswith(_FAILURES) or any(span.rstrip(".") in t for t in own):
                    continue
                if MIN_SPAN_CHARS <= len(span) <= MAX_SPAN_CHARS and span not in spans:
                    spans.append(span)
                if len(spans) >= limit:
                    return spans
    return spans


# Short answers inside a sentence: runs of capitalised words (with the small words names contain, "Bath, Maine"),
# dates ("10 January 1920") and numbers; title lines are taken whole.
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_PHRASE = re.compile(
    rf"(?:\d{{1,2}} )?(?:{_MONTHS})(?: \d{{1,2}}(?!\d),?)?(?: \d{{3,4}})?"  # a date
    r"|[A-Z][\w'’.!-]*(?:(?:,? | of | the | de | and | mit | von | van | du | la | le )[A-Z0-9][\w'’.!-]*)*"
    r"|\b\d[\d,.]*\d\b|\b\d\b"
)
_STOP_PHRASES = {"The", "A", "An", "It", "He", "She", "They", "This", "In", "On", "At", "His", "Her", "Its", "As"}


def candidate_phrases(
    observations: Iterable[str], limit: int = MAX_SPANS, written: Iterable[str] = (), question: str = ""
) -> list[str]:
    """Short answers found in the observations: title lines, names (runs of capitalised words), dates and
    numbers, cleaned and unique, latest observation first (for QA whose answers are names and dates, where a
    whole sentence scores badly). Sentence-initial words on their own ("The", "It") are not answers.

    With the `question`: a phrase the question already names is left out (a small model picks the question's
    own names first, and they are rarely its answer) unless the question offers a choice ("X or Y") or nothing
    else was found; a yes/no question ("Are both ...?") gets "yes" and "no" first."""
    asked = question.casefold() if question and not _offers_choice(question) else ""
    phrases: list[str] = []
    echoes: list[str] = []  # phrases the question names: offered only when nothing else was found
    for sentence in candidate_spans(observations, limit=10 * limit, written=written):
        if len(phrases) >= limit:
            break
        found = [sentence] if _is_title(sentence) else [m.strip(" ,.") for m in _PHRASE.findall(sentence)]
        for phrase in found:
            first, _, rest = phrase.partition(" ")
            phrase = rest if first in _STOP_PHRASES and rest else phrase
            if len(phrase) < MIN_SPAN_CHARS or phrase in _STOP_PHRASES or phrase in phrases or phrase in echoes:
                continue
            (echoes if asked and phrase.casefold() in asked else phrases).append(phrase)
            if len(phrases) >= limit:
                break
    phrases = phrases or echoes[:limit]
    if phrases and _is_yes_no(question):  # only once something was found: the answer is still grounded
        phrases = ["yes", "no", *phrases][:limit]
    return phrases


# A question that begins with an auxiliary verb and offers no alternatives is answered yes or no.
_YES_NO = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may|might)\b", re.IGNORECASE
)
_CHOICE = re.compile(r"\bor\b", re.IGNORECASE)


def _offers_choice(question: str) -> bool:
    return bool(_CHOICE.search(question))


def _is_yes_no(question: str) -> bool:
    return bool(_YES_NO.match(question)) and not _offers_choice(question)


def candidate_sentences(observations: Iterable[str], limit: int = MAX_SPANS, written: Iterable[str] = ()) -> list[str]:
    """`candidate_spans` that are whole sentences (a few words and a full stop, not a title line or a
    fragment), so a sentence answer reads as one; all the spans when the observations hold no sentence."""
    spans = candidate_spans(observations, limit=4 * limit, written=written)
    sentences = [s for s in spans if not _is_title(s) and len(s.split()) >= MIN_SENTENCE_WORDS]
    return (sentences or spans)[:limit]


def _is_title(line: str) -> bool:
    """A title line of a search result: short and not ending like a sentence."""
    return len(line) <= 80 and not line.endswith((".", "!", "?", "…"))


def candidate_numbers(observations: Iterable[str], *, integers: bool = False, limit: int = MAX_SPANS) -> list[float]:
    """The numbers in the observations, unique, latest observation first (and, within one, last first: a
    tool's result usually ends its output). With `integers`, whole numbers only. Error outputs are left out."""
    numbers: list[float] = []
    for text in reversed(list(observations)):
        if text.startswith("Error:"):
            continue
        for match in reversed(_NUMBER.findall(text)):
            value = float(match.replace(",", ""))
            if not math.isfinite(value) or (integers and not value.is_integer()):
                continue
            number = int(value) if value.is_integer() and abs(value) < 2**53 else value
            if number not in numbers:
                numbers.append(number)
            if len(numbers) >= limit:
                return numbers
    return numbers


def grounded_parameters(spans: list[str]) -> dict[str, Any]:
    """The final answer's parameters constrained to one of `spans`."""
    return {
        "type": "object",
        "properties": {"answer": {"enum": spans, "description": "The answer, copied from the observations."}},
        "required": ["answer"],
    }


def grounded_number_parameters(parameters: dict[str, Any], numbers: list[float]) -> dict[str, Any]:
    """A numeric final answer's `parameters` with its `answer` constrained to one of `numbers`."""
    answer = {**parameters["properties"]["answer"], "enum": numbers}
    answer["description"] = "The answer: one of the numbers the tools returned."
    return {**parameters, "properties": {**parameters["properties"], "answer": answer}}


def numeric_answer_type(parameters: dict[str, Any] | None) -> str | None:
    """ "number" or "integer" when the final answer is one numeric `answer`, else None."""
    properties = (parameters or {}).get("properties", {})
    if set(properties) != {"answer"}:
        return None
    kind = properties["answer"].get("type")
    return kind if kind in ("number", "integer") else None
