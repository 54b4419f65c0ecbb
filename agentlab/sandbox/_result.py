"""Public value types of the sandbox: results, the isolation report and the strict-mode error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class SandboxUnavailable(RuntimeError):
    """Raised by a ``strict=True`` sandbox when a protection layer is missing on this host."""


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """Outcome of one run.  ``error`` is a one-line ``"Type: message"`` summary for the model."""

    ok: bool
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    timed_out: bool = False
    duration: float = 0.0
    value: Any = None


@dataclass(frozen=True, slots=True)
class Isolation:
    """Which protection layers are really active (verified from inside a probe worker).

    ``layers`` maps a layer name to whether it is active; ``missing`` lists the inactive ones;
    ``notes`` explains why, in words.  ``str(isolation)`` is a one-paragraph summary.
    """

    layers: dict[str, bool]
    mode: str
    notes: tuple[str, ...] = field(default=())

    @property
    def missing(self) -> list[str]:
        return [name for name, active in self.layers.items() if not active]

    @property
    def complete(self) -> bool:
        return not self.missing

    def __str__(self) -> str:
        active = ", ".join(name for name, on in self.layers.items() if on) or "none"
        text = f"sandbox isolation ({self.mode}): active: {active}"
        if self.missing:
            text += f"; MISSING: {', '.join(self.missing)}"
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text
