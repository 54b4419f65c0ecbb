"""JSONL traces: one event per line, flushed as it happens so a crash loses nothing already done."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import IO, Any

from agentlab._jsonl import jsonl_rows
from agentlab.events import Event

# Values that look like credentials never reach a trace, whichever field they hide in.
_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]{16,}|(?:api[_-]?key|token|secret|password)"
    r"[\"']?\s*[:=]\s*[\"']?[^\s\"',}]{8,})",
    re.IGNORECASE,
)
_SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD", re.IGNORECASE)
REDACTED = "[redacted]"


def secret_values(environ: dict[str, str] | None = None) -> list[str]:
    """Values of the environment's credential-like variables, longest first."""
    env = dict(os.environ) if environ is None else environ
    values = {v for k, v in env.items() if _SECRET_ENV.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with the given secret values and credential-like patterns replaced by `[redacted]`."""
    for value in secrets:
        text = text.replace(value, REDACTED)
    return _SECRET_PATTERNS.sub(REDACTED, text)


class JsonlTrace:
    """Appends each event to a JSONL file as one redacted line, flushed at once.

    Args:
        path: The trace file; created with its folders, appended to if it exists.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = self.path.open("a", encoding="utf-8")
        self._secrets = secret_values()

    def write(self, event: Event) -> None:
        """Append one event as a JSON line, secrets redacted."""
        line = json.dumps(event.to_dict(), ensure_ascii=False, default=str)
        self._file.write(redact(line, self._secrets) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The trace's events as dicts; ValueError naming the file and line for a line that is not a JSON object."""
    return [row for _, row in jsonl_rows(Path(path), ())]
