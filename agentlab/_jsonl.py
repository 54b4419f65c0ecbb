"""Reading JSONL data files with errors that name the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def jsonl_rows(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each non-blank line; ValueError when a line is not an object with `required`."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                missing = [key for key in required if key not in row]
            except (json.JSONDecodeError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a JSON object ({error})") from None
            if not isinstance(row, dict) or missing:
                raise ValueError(f"{path}:{number}: expected a JSON object with {', '.join(required)}")
            yield number, row
