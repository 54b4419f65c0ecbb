"""Scorers: numeric answers (GSM8K, arithmetic), SQuAD-style exact match and F1 (HotpotQA), Wilson intervals."""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from fractions import Fraction

# A number as people write it: optional sign, optional currency sign, thousands separators, decimals, or a
# fraction. The sign only counts when it is not a hyphen between words or numbers ("2-3", "co-op").
_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-−])?\s?[$€£]?(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<dec>\.\d+)?"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"
)
# What a clean answer never contains: JSON structure ("{", "}", a quote before a closing bracket), HTML
# entities and tags, code fences. Small models spill these into free strings; the report counts them.
_DEBRIS = re.compile(r'[{}]|"\s*[\]}]|&#?\w+;|</?[A-Za-z][^>]*>|```')
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def extract_number(text: str | None) -> Fraction | None:
    """The last number in `text` ("$1,234.50" → 1234.5, "1/2" → 0.5, "-7" → -7), exactly; None when none."""
    if not text:
        return None
    matches = list(_NUMBER.finditer(text))
    if not matches:
        return None
    found = matches[-1]
    value = Fraction(found["int"].replace(",", "") + (found["dec"] or ""))
    if found["den"]:
        denominator = int(found["den"])
        if denominator == 0:
            return None
        value /= denominator
    return -value if found["sign"] else value


def numbers_match(prediction: str | None, gold: str) -> bool:
    """True when the last number of the prediction equals the gold number (exact, after parsing both)."""
    expected = extract_number(gold)
    got = extract_number(prediction)
    return expected is not None and got is not None and got == expected


def has_debris(text: str | None) -> bool:
    """Whether an answer carries markup or JSON debris (`{`, `}`, `&#34;`, `"}`, tags, code fences)."""
    return bool(text) and _DEBRIS.search(text or "") is not None


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str | None, gold: str) -> bool:
    return normalize_answer(prediction or "") == normalize_answer(gold)


def f1_score(prediction: str | None, gold: str) -> float:
    """Token-level F1 after normalisation; yes/no/noanswer must match exactly (as in the HotpotQA scorer)."""
    pred, ref = normalize_answer(prediction or ""), normalize_answer(gold)
    if (pred in ("yes", "no", "noanswer") or ref in ("yes", "no", "noanswer")) and pred != ref:
        return 0.0
    pred_tokens, ref_tokens = pred.split(), ref.split()
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval for a proportion; (0, 1) when there are no trials."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)
