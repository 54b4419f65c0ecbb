"""Public value types of the sandbox: results, the isolation report and the strict-mode error."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class SandboxUnavailable(RuntimeError):
    """Raised instead of running code when the host cannot confine it as required: always when
    neither bubblewrap nor Landlock confines the file system (unless ``allow_weak=True``), and with
    ``strict=True`` when any layer is missing."""


def done_value(done: Mapping[str, Any]) -> Any:
    """The value a worker's `done` frame carries (JSON text from the worker), or None when it has none or the
    text is not valid JSON: the host never runs anything the worker sent, it only parses data."""
    encoded = done.get("value")
    if not isinstance(encoded, str):
        return None
    try:
        return json.loads(encoded)
    except (ValueError, RecursionError):
        return None


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """Outcome of one run.  ``error`` is a one-line ``"Type: message"`` summary for the model; ``value`` the
    returned value as JSON data, or (``value_is_repr``) only its repr, capped, when it was no JSON value (an
    object, a 5000-digit int) or too large."""

    ok: bool
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    timed_out: bool = False
    duration: float = 0.0
    value: Any = None
    value_is_repr: bool = False


@dataclass(frozen=True, slots=True)
class SnippetResult(SandboxResult):
    """Outcome of one snippet in a :class:`~agentlab.sandbox.SandboxSession`: a run's outcome, and

    ``final``: the snippet called ``final_answer(value)`` (``value`` holds it, as JSON data or its repr);
    ``calls``: how many function calls it made; ``restarted``: it ran on a fresh worker because the
    previous one was stopped, so variables from earlier snippets are gone.
    """

    final: bool = False
    calls: int = 0
    restarted: bool = False


@dataclass(frozen=True, slots=True)
class Isolation:
    """Which protection layers are really active (verified from inside a probe worker).

    ``layers`` maps a layer name to whether it is active; ``missing`` lists the inactive ones;
    ``notes`` explains why, in words; ``landlock_abi`` is the Landlock ABI the worker enforces
    (0: none; >= 4 also refuses TCP bind/connect).  ``str(isolation)`` is a one-paragraph summary.
    """

    layers: dict[str, bool]
    mode: str
    notes: tuple[str, ...] = field(default=())
    landlock_abi: int = 0

    @property
    def filesystem_confined(self) -> bool:
        """Whether bubblewrap or Landlock keeps the code away from the host's files."""
        return bool(self.layers.get("bubblewrap") or self.layers.get("landlock"))

    @property
    def missing(self) -> list[str]:
        return [name for name, active in self.layers.items() if not active]

    @property
    def complete(self) -> bool:
        return not self.missing

    def __str__(self) -> str:
        active = ", ".join(name for name, on in self.layers.items() if on) or "none"
        text = f"sandbox isolation ({self.mode}): active: {active}"
        if self.landlock_abi:
            text += f" (Landlock ABI {self.landlock_abi})"
        if self.missing:
            text += f"; MISSING: {', '.join(self.missing)}"
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text
