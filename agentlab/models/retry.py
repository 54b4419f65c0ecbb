"""Retry policy for model endpoints: transient failures only, bounded, honouring Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from typing import Any

import openai

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class MalformedReply(Exception):
    """A 2xx reply that is not a chat completion (an HTML page from a proxy, a JSON string): a server
    fault like a 502, so it is retried the same way."""


def is_transient(error: BaseException) -> bool:
    """429, 5xx, timeouts, connection errors (before or during a streamed reply) and malformed 2xx bodies
    are worth another attempt; other 4xx never are."""
    from agentlab.models.streaming import StreamBroken

    if isinstance(error, openai.APITimeoutError | openai.APIConnectionError | MalformedReply | StreamBroken):
        return True
    if isinstance(error, openai.APIStatusError):
        return error.status_code in RETRYABLE_STATUS
    return False


def retry_after_seconds(error: BaseException) -> float | None:
    """The server's own wait hint, from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    response: Any = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):  # a malformed hint must not stop the retry: backoff applies instead
        return None
    return max(0.0, parsed.timestamp() - time.time())


class BackoffWait:
    """tenacity wait strategy: Retry-After when the server gives one, else exponential backoff with full
    jitter; never more than `maximum`."""

    def __init__(self, initial: float = 0.5, maximum: float = 20.0) -> None:
        self.initial = initial
        self.maximum = maximum

    def __call__(self, retry_state: Any) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = retry_after_seconds(error) if error else None
        if hinted is not None:
            return min(hinted, self.maximum)
        ceiling = min(self.maximum, self.initial * 2 ** (retry_state.attempt_number - 1))
        return random.uniform(0, ceiling)
