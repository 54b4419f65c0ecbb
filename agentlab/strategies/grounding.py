"""Grounded answers: the final answer as a span copied from what the tools returned.

For question answering over documents a small model paraphrases badly and invents freely; asked to pick
one of the observed sentences instead (an `enum` in the final answer's schema, which a grammar enforces),
it can only answer with text that is really in the documents. A numeric answer (`output_type=float` or
`int`) is grounded the same way: one of the numbers the tools returned, so a model that called the
calculator cannot answer with a number it made up.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from agentlab.tools.schema import GROUNDED_KEY

MAX_SPANS = 40  # an enum of this many sentences keeps the grammar small
MAX_SPAN_CHARS = 200
MIN_PHRASE_CHARS = 2
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
                # A one-character span is kept: a tool's whole result may be one (`add(2, 3)` returns "5").
                if 0 < len(span) <= MAX_SPAN_CHARS and span not in spans:
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
    asked = _echo_text(question)
    phrases: list[str] = []
    echoes: list[str] = []  # phrases the question names: offered only when nothing else was found
    for sentence in candidate_spans(observations, limit=10 * limit, written=written):
        if len(phrases) >= limit:
            break
        for phrase in _span_phrases(sentence):
            if phrase in phrases or phrase in echoes:
                continue
            (echoes if _echoes(phrase, asked) else phrases).append(phrase)
            if len(phrases) >= limit:
                break
    phrases = phrases or echoes[:limit]
    if phrases and _is_yes_no(question):  # only once something was found: the answer is still grounded
        phrases = ["yes", "no", *phrases][:limit]
    return phrases


def _span_phrases(span: str) -> list[str]:
    """The short answers in one span: a title line whole, else its names, dates and numbers."""
    found = [span] if _is_title(span) else [m.strip(" ,.") for m in _PHRASE.findall(span)]
    phrases = []
    for phrase in found:
        first, _, rest = phrase.partition(" ")
        phrase = rest if first in _STOP_PHRASES and rest else phrase
        if len(phrase) >= MIN_PHRASE_CHARS and phrase not in _STOP_PHRASES:
            phrases.append(phrase)
    return phrases


def _echo_text(question: str) -> str:
    """The question, casefolded, for `_echoes`; empty when it offers a choice, whose options are its answers."""
    return question.casefold() if question and not _offers_choice(question) else ""


def _echoes(phrase: str, asked: str) -> bool:
    """Whether the question (`asked`, from `_echo_text`) names `phrase` already."""
    return bool(asked) and phrase.casefold() in asked


def answer_phrases(
    observations: Iterable[str], question: str, limit: int = MAX_SPANS, written: Iterable[str] = ()
) -> list[str]:
    """`candidate_phrases` from where the answer most likely is: the observed sentences that share the most
    with the `question` (its words, each weighted by how few sentences have it; a passage's title counts as
    its best sentence), as the sliding-window baselines of extractive QA do. A question for a year ("What
    year ...", "When ...") keeps the phrases with a year in them, one for a count ("How many ...") those with
    a number, when there are any. A small model picking among twenty phrases of three passages picks at
    random; among the few of the sentence that matches the question, it has a chance."""
    asked = _content_words(question)
    spans = candidate_spans(observations, limit=10 * limit, written=written)
    words = [_content_words(span) & asked for span in spans]
    # A word of the question that many sentences share (the topic's name) says less about where the answer
    # is than one only a sentence has ("screened", "festival"): words count by their rarity among the spans.
    spread = Counter(word for found in words for word in found)
    weight = {word: math.log(1 + len(spans) / count) for word, count in spread.items()}
    scored: list[tuple[float, str]] = []  # (weighted overlap with the question, sentence or title), in order
    title_at: int | None = None  # where the current passage's title sits in `scored`
    for span, shared in zip(spans, words, strict=True):
        overlap = round(sum(weight[word] for word in shared), 6)
        if _is_title(span) and len(span.split()) <= MAX_TITLE_WORDS:
            title_at = len(scored)
            scored.append((0.0, span))
            continue
        scored.append((overlap, span))
        if title_at is not None and overlap > scored[title_at][0]:
            scored[title_at] = (overlap, scored[title_at][1])
    asks_year, asks_count = bool(_ASKS_YEAR.search(question)), bool(_ASKS_COUNT.search(question))
    echo_of = _echo_text(question)
    found: list[tuple[float, str]] = []
    for overlap, span in scored:
        for phrase in _span_phrases(span):
            if _echoes(phrase, echo_of) or (asks_year and not _YEAR.search(phrase)):
                continue
            if not asks_count or any(c.isdigit() for c in phrase):
                found.append((overlap, phrase))
    if not found:  # nothing of the asked kind that the question does not name already: any phrase
        return candidate_phrases(observations, limit=limit, written=written, question=question)
    best = max(overlap for overlap, _ in found)
    phrases = _of_the_asked_kind(list(dict.fromkeys(phrase for overlap, phrase in found if overlap == best)), question)
    if _is_yes_no(question):
        phrases = ["yes", "no", *phrases]
    return phrases[:limit]


# "... killed at what Fayette County, Kentucky airport?": the words after "what"/"which" up to a function word
# name the kind of answer asked for, the last of them its head ("airport").
_ASKED_KIND = re.compile(r"\b(?:what|which)\s+(?!of\b)(.*)", re.IGNORECASE)
_KIND_WORD = re.compile(r"[A-Za-z0-9'-]+|[?.;:!]")
MAX_KIND_WORDS = 4


def _asked_kind(question: str) -> str | None:
    """The head word of the kind of answer a "what X"/"which X" question asks for ("airport"), lower case
    and singular; None when it asks for none or offers a choice."""
    found = _ASKED_KIND.search(question)
    if found is None or _offers_choice(question):
        return None
    words: list[str] = []
    for word in _KIND_WORD.findall(found.group(1)):
        if not word[0].isalnum() or word.casefold() in _FUNCTION_WORDS or len(words) == MAX_KIND_WORDS:
            break
        words.append(word.casefold())
    return words[-1].removesuffix("s") if words and len(words[-1]) > 2 else None


def _of_the_asked_kind(phrases: list[str], question: str) -> list[str]:
    """The `phrases` that name the kind of answer the question asks for ("Blue Grass Airport" for "what
    ... airport?"), as the answer-type step of extractive QA does; all of them when none does. A small model
    choosing among a sentence's places and names picks the place the question already gave as often as the
    airport in it."""
    kind = _asked_kind(question)
    if kind is None:
        return phrases
    named = [p for p in phrases if any(w.casefold().removesuffix("s") == kind for w in _KIND_WORD.findall(p))]
    return named or phrases


MAX_TITLE_WORDS = 8
# Words that say nothing about where an answer is: a question's function words.
_QUESTION_WORDS = (
    "a an the of in on at to for from by with and or is are was were be been being who what which "
    "when where how did does do that this these those as its it his her their whose whom than more most both same first"
)
_FUNCTION_WORDS = frozenset(_QUESTION_WORDS.split())
_ASKS_YEAR = re.compile(r"\b(?:what|which) year\b|\bwhen\b", re.IGNORECASE)
_ASKS_COUNT = re.compile(r"\bhow (?:many|much|old|long)\b", re.IGNORECASE)
_YEAR = re.compile(r"\b\d{3,4}\b")


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.casefold()) if len(w) > 1 and w not in _FUNCTION_WORDS}


# A question that begins with an auxiliary verb and offers no alternatives is answered yes or no.
_YES_NO = re.compile(
    r"^\s*(is|are|was|were|do|does|did|can|could|has|have|had|will|would|should|shall|may|might)\b", re.IGNORECASE
)
_CHOICE = re.compile(r"\bor\b|^\s*which of\b(?! the\b)", re.IGNORECASE)


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


# Grounded tool arguments: a small model searches for the tool's own name ("loca_search") or for words it made
# up; an argument marked `GROUNDED_KEY` is one of the queries the run holds: the task, the names it mentions,
# and the names, titles, dates and numbers the tools returned.
_WORDS = re.compile(r"[^\W_](?:[^\W_]|['’])*")


def grounded_queries(task: str, observations: Iterable[str], limit: int = MAX_SPANS) -> list[str]:
    """What a grounded argument may be: the task's words (the whole task as one query, `task_query`), the
    names and dates in the task, then the phrases the tools returned (latest first), and the names a failed
    call suggested ("No page titled 'x'. Similar titles: A, B."); unique, at most `limit`. A number alone
    is not a query."""
    observations = list(observations)
    queries: list[str] = []
    names = [*_PHRASE.findall(task), *candidate_phrases(observations, limit=limit), *_suggested(observations)]
    for phrase in [task, *(part for name in names for part in _names_in(name))]:
        words = " ".join(_WORDS.findall(phrase))
        if not _is_query(words) or words in queries:
            continue
        queries.append(words)
        if len(queries) >= limit:
            break
    return queries


_JOINED = re.compile(r",? and |, ")


def _names_in(phrase: str) -> list[str]:
    """A phrase without its leading question words ("Which of Jonny Craig and Pete Doherty" -> "Jonny Craig and
    Pete Doherty"), then, when it joins several names of two words or more ("X Y and Z W"), each of them (a
    title such as "Wolf and Sheep" stays whole)."""
    words = phrase.split()
    while words and words[0].casefold() in _FUNCTION_WORDS:
        words.pop(0)
    whole = " ".join(words)
    parts = _JOINED.split(whole)
    return [whole, *parts] if len(parts) > 1 and all(len(part.split()) > 1 for part in parts) else [whole]


def task_query(task: str) -> str:
    """The whole task as one grounded query (its words)."""
    return " ".join(_WORDS.findall(task))


def _suggested(observations: list[str]) -> list[str]:
    """The items listed after a colon in the tools' failure messages (latest first): what a tool that found
    nothing suggests trying instead."""
    suggested: list[str] = []
    for text in reversed(observations):
        if text.lstrip().startswith(_FAILURES):
            for sentence in _SENTENCE_END.split(text)[1:]:
                _, colon, listed = sentence.partition(": ")
                suggested += [item.strip(" .") for item in listed.split(", ")] if colon else []
    return suggested


def _is_query(words: str) -> bool:
    """Whether `words` can find something: not empty, not a function word ("Where") and not only a number
    ("1964", "12" match any page with that number in it)."""
    return (
        bool(words)
        and words not in _STOP_PHRASES
        and words.casefold() not in _FUNCTION_WORDS
        and not (words.replace(" ", "").isdigit())
    )


# Arithmetic written in a task: words of digits, operators and parentheses. A small model retypes "(110 + 161) *
# 4 - 2" as "110 + 161 * 4 - 2" (arith: 6 of 50 wrong, all of them miscopies); a copy cannot drop a term.
_EXPRESSION_WORD = re.compile(r"[-+*/%().\d]+")
_WORD_END = ".,;:!?\"'”’"
_WORD_START = "\"'“‘"


def task_expressions(task: str, pattern: str | None = None, limit: int = MAX_SPANS) -> list[str]:
    """The calculations written in `task`, in order: the runs of its words that parse as arithmetic on numbers
    ("(37 - 112) * 6 + 15" in "What is (37 - 112) * 6 + 15?") and that the parameter's `pattern`, if any,
    accepts; none unless one of them has two operators or more. With one operator a run is as often no
    calculation at all ("1/2 of" is a fraction, "5 - 10 apples" a range), and a model copies it right anyway."""
    runs: list[list[str]] = [[]]
    for word in task.split():
        bare = word.lstrip(_WORD_START).rstrip(_WORD_END)
        if not _EXPRESSION_WORD.fullmatch(bare):
            runs.append([])
            continue
        runs[-1].append(bare)
        if bare != word.lstrip(_WORD_START):  # "15?" ends the sentence, and the run
            runs.append([])
    # A run is taken whole or not at all: a part of it would be another calculation than the one written.
    operators = {text: _operators(text, pattern) for text in dict.fromkeys(" ".join(run) for run in runs if run)}
    found = [text for text, count in operators.items() if count]
    return found[:limit] if max(operators.values(), default=0) >= 2 else []


def _operators(text: str, pattern: str | None) -> int:
    """How many binary operators `text` has if it is arithmetic on numbers that fits `pattern`, else 0."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        return 0
    nodes = list(ast.walk(tree.body))
    arithmetic = all(isinstance(n, ast.BinOp | ast.UnaryOp | ast.Constant | ast.operator | ast.unaryop) for n in nodes)
    numbers = all(isinstance(n.value, int | float) for n in nodes if isinstance(n, ast.Constant))
    fits = pattern is None or re.fullmatch(pattern, text) is not None
    return sum(isinstance(n, ast.BinOp) for n in nodes) if arithmetic and numbers and fits else 0


def grounded_markers(parameters: dict[str, Any]) -> dict[str, Any]:
    """The properties of a tool's `parameters` marked `GROUNDED_KEY`, with their marks (`True`, `"phrase"`,
    `"expression"`)."""
    properties = parameters.get("properties", {})
    return {
        name: node[GROUNDED_KEY]
        for name, node in properties.items()
        if isinstance(node, dict) and node.get(GROUNDED_KEY)
    }


def grounded_tool_parameters(
    parameters: dict[str, Any], queries: list[str], *, task: str = "", first: bool = False
) -> dict[str, Any]:
    """A tool's `parameters` with each property marked `GROUNDED_KEY` restricted to one of `queries` (for a
    property marked `"phrase"`, a title or a name, not the whole `task`). A property left with no value keeps
    its schema. The `first` call, with nothing observed yet, may only search for the whole `task` (a
    property marked `True`): retrieval with the question, as RAG does; SmolLM2's own first queries found the
    page with the answer on 22 of 50 HotpotQA questions, the question itself on 34. A property marked
    `"expression"` is one of the `task_expressions` on the `first` call and free after it.

    A value already sent stays on offer: a small model that repeats its search is refused by the loop's
    stall guard and then answers from what it found; without the repeat it searched on for pages it
    did not need until the budget ran out."""
    properties = parameters.get("properties", {})
    whole_task = task_query(task)
    grounded = {}
    for name, marker in grounded_markers(parameters).items():
        if marker == "expression":  # copied from the task on the first call; later ones combine results
            values = task_expressions(task, properties[name].get("pattern")) if first else []
        elif marker is True and first and task:
            values = [whole_task]
        else:
            values = [q for q in queries if not (marker == "phrase" and q == whole_task)]
        if values:
            # The values are the whole shape: a pattern or length bound beside them only burdens the grammar.
            shape = {k: v for k, v in properties[name].items() if k not in ("pattern", "maxLength", "minLength")}
            grounded[name] = {**shape, "enum": values}
    return {**parameters, "properties": {**properties, **grounded}} if grounded else parameters
