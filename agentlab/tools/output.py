"""What a tool call hands back to the agent loop, and how raw results become text for the model."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Literal

import pydantic_core
from pydantic import BaseModel

# "repeated": the loop refused to run an exact repeat of an earlier call (see Agent's stall check).
ToolErrorKind = Literal["invalid_arguments", "exception", "timeout", "denied", "unknown_tool", "repeated"]
"""Why a tool call failed, as recorded in `ToolOutput.error`."""

DEFAULT_MAX_OUTPUT_CHARS = 4000
"""The output cap for tools and registries that set none (longer output is cut with a visible marker)."""
# Exception messages go to the model verbatim, so keep them short: a traceback-sized message
# wastes context and rarely helps the model choose its next action.
MAX_ERROR_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class ToolOutput:
    """The observation produced by one tool call.

    `content` is always model-ready text; `error` says what kind of failure it was (None when ok).
    """

    ok: bool
    content: str
    error: ToolErrorKind | None = None
    duration: float = 0.0

    def __str__(self) -> str:
        return self.content


def render_result(value: Any) -> str:
    """Turn a tool's return value into text: strings as-is, structured data as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "(no output)"
    if isinstance(value, BaseModel | dict | list | tuple | set | frozenset) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        try:
            return pydantic_core.to_json(value, fallback=str).decode()
        except (ValueError, TypeError):  # e.g. circular references
            return str(value)
    return str(value)


def truncate(text: str, max_chars: int) -> str:
    """Cap `text` at `max_chars`, leaving a visible marker so the model knows something was cut."""
    if max_chars <= 0 or len(text) <= max_chars:
        return text
    dropped = len(text) - max_chars
    return f"{text[:max_chars]}\n…[truncated {dropped} chars]"


# Secrets tend to surface in exception messages through URLs and request headers; the model
# (and the traces that record its context) must never see them.
_SECRET_PATTERNS = [
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 ***"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), "sk-***"),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|access[_-]?token|token|secret|password|passwd|authorization)"
            r"(\s*[=:]\s*)(['\"]?)[^\s'\"&,;]+"
        ),
        r"\1\2\3***",
    ),
]


def redact_secrets(text: str) -> str:
    """`text` with credential-like values (keys, tokens, passwords) replaced by `***`."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def describe_exception(exc: BaseException) -> str:
    """One line for the model: `Error: ValueError: message`, without traceback or secrets."""
    message = redact_secrets(str(exc)).strip()
    if len(message) > MAX_ERROR_MESSAGE_CHARS:
        message = message[:MAX_ERROR_MESSAGE_CHARS] + "…"
    name = type(exc).__name__
    return f"Error: {name}: {message}" if message else f"Error: {name}"
