"""Guards: callables that look at a value (a task, an answer, a tool call's arguments) before it is used,
and pass it, rewrite it, or trip.

A guard takes the value and returns None to let it through, or a replacement value to rewrite it; it raises
`GuardrailTripped("why")` to stop the run. Sync or async. This module sits with the tools because a tool's
own guard (`@tool(guard=...)`) runs inside `BaseTool.invoke`; the agent's input and output guardrails
(agentlab/run/guardrails.py) use the same contract.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Guard: TypeAlias = Callable[[Any], Any | Awaitable[Any]]
"""`guard(value) -> None | replacement` (may be async); raises `GuardrailTripped` to stop the run."""


class GuardrailTripped(Exception):
    """Raised by a guard to stop the run: the run ends with status `blocked` and this reason."""

    def __init__(self, reason: str = "") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Verdict:
    """What a guard decided about a value.

    Attributes:
        guard: The guard's name (its function name).
        action: `passed`, `rewrote` or `tripped`.
        value: The value to use from now on (the replacement, when rewritten).
        reason: Why it tripped (the `GuardrailTripped` message, or what went wrong inside the guard).
    """

    guard: str
    action: Literal["passed", "rewrote", "tripped"]
    value: Any = None
    reason: str = ""


def guard_name(guard: Guard) -> str:
    """The name a guard is reported by: its function's name, or its class's."""
    return getattr(guard, "__name__", None) or type(guard).__name__


async def judge(guard: Guard, value: Any) -> Verdict:
    """Run `guard` on `value`. A guard that fails with another exception trips too (it fails closed: a check
    that could not be made never lets the value through), with the failure as its reason."""
    name = guard_name(guard)
    try:
        replacement = guard(value)
        if inspect.isawaitable(replacement):
            replacement = await replacement
    except GuardrailTripped as trip:
        return Verdict(name, "tripped", value, trip.reason or "no reason given")
    except Exception as bug:
        return Verdict(name, "tripped", value, f"the guard failed: {type(bug).__name__}: {bug}")
    if replacement is None:
        return Verdict(name, "passed", value)
    return Verdict(name, "rewrote", replacement)


def check_guard(guard: object, what: str) -> None:
    """TypeError unless `guard` is callable (said when the guard is attached, not when it first runs)."""
    if not callable(guard):
        raise TypeError(f"{what} must be callable, not {type(guard).__name__}")
