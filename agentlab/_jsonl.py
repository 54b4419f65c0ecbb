"""Reading JSONL files: every reader in agentlab goes through here, strict or lenient."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def jsonl_lines(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) for each non-blank line that is a JSON object with `required`, else (line number,
    why it is not); for readers that keep what they can (a trace cut short by a crash is still worth reading)."""
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, f"not JSON ({error.msg})"
                continue
            if not isinstance(row, dict) or any(key not in row for key in required):
                yield number, "expected a JSON object" + (f" with {', '.join(required)}" if required else "")
                continue
            yield number, row


def jsonl_rows(path: Path, required: tuple[str, ...] = ()) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-blank line; ValueError naming the file and line for one that is not
    a JSON object with `required`."""
    for number, row in jsonl_lines(path, required):
        if isinstance(row, str):
            raise ValueError(f"{path}:{number}: {row}")
        yield number, row
