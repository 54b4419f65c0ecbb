"""What a tool call hands back to the agent loop, and how raw results become text for the model."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any, Literal

from agentlab._redact import redact
from agentlab._text import COUNTED, clip, scrub
from agentlab.tools.guard import Verdict

# "repeated": the loop refused to run an exact repeat of an earlier call (see Agent's stall check).
# "blocked": the tool's guard tripped (see `@tool(guard=...)`); the agent ends the run as `blocked`.
ToolErrorKind = Literal[
    "invalid_arguments", "exception", "timeout", "denied", "unknown_tool", "repeated", "missing_context", "blocked"
]
"""Why a tool call failed, as recorded in `ToolOutput.error`."""

DEFAULT_MAX_OUTPUT_CHARS = 4000
"""The output cap for tools and registries that set none (longer output is cut with a visible marker)."""
# Exception messages go to the model verbatim, so keep them short: a traceback-sized message
# wastes context and rarely helps the model choose its next action.
MAX_ERROR_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class ToolOutput:
    """The observation produced by one tool call.

    `content` is always model-ready text; `error` says what kind of failure it was (None when ok);
    `verdict` is what the tool's guard decided, when it rewrote the arguments or tripped.
    """

    ok: bool
    content: str
    error: ToolErrorKind | None = None
    duration: float = 0.0
    verdict: Verdict | None = None

    def __post_init__(self) -> None:
        # Tool outputs go into the next request and the trace, both UTF-8: a lone surrogate (a file name
        # from os.listdir that is not UTF-8) would make either fail, so it is replaced here, once. And the
        # model's endpoint is a third party: credentials a tool read (a config dump, an error) stay here.
        object.__setattr__(self, "content", redact(scrub(self.content)))

    def __str__(self) -> str:
        return self.content


def render_result(value: Any) -> str:
    """Turn a tool's return value into text: strings as-is, structured data as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "(no output)"
    if (
        isinstance(value, dict | list | tuple | set | frozenset)
        or (dataclasses.is_dataclass(value) and not isinstance(value, type))
        or _is_pydantic_model(value)
    ):
        import pydantic_core  # loaded on first use: `import agentlab` stays light

        try:
            return pydantic_core.to_json(value, fallback=str).decode()
        except (ValueError, TypeError):  # e.g. circular references
            return str(value)
    return str(value)


def _is_pydantic_model(value: Any) -> bool:
    # A pydantic model instance exists only once pydantic is loaded: no need to load it to ask.
    pydantic = sys.modules.get("pydantic")
    return pydantic is not None and isinstance(value, pydantic.BaseModel)


def truncate(text: str, max_chars: int) -> str:
    """Cap `text` at `max_chars`, leaving a visible marker so the model knows something was cut."""
    return clip(text, max_chars, marker="\n" + COUNTED)


def redact_secrets(text: str) -> str:
    """`text` with credentials redacted (the one redactor every output of agentlab uses)."""
    # Secrets tend to surface in exception messages through URLs and request headers; the model
    # (and the traces that record its context) must never see them.
    return redact(text)


def describe_exception(exc: BaseException) -> str:
    """One line for the model: `Error: ValueError: message`, without traceback or secrets."""
    message = redact_secrets(str(exc)).strip()
    message = clip(message, MAX_ERROR_MESSAGE_CHARS)
    name = type(exc).__name__
    return f"Error: {name}: {message}" if message else f"Error: {name}"
