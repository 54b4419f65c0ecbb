"""JSONL traces: one event per line, flushed as it happens so a crash loses nothing already done.

Writing (`JsonlTrace`) and reading (`read_trace`, `load_trace`, `split_runs`, `run_status`) live here, so
the viewer and the exporter both read traces through this module and never through each other.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agentlab._jsonl import jsonl_lines, jsonl_rows
from agentlab._redact import REDACTED, redact, redact_data, secret_values
from agentlab._text import scrub
from agentlab.events import Event

__all__ = [
    "REDACTED",
    "JsonlTrace",
    "LoadedTrace",
    "load_trace",
    "read_trace",
    "redact",
    "run_status",
    "secret_values",
    "split_runs",
]


class JsonlTrace:
    """Appends events to a JSONL file, credentials redacted and text made encodable.

    A trace that cannot be written (a full disk, `/dev/full`, a directory that cannot be made) must not
    end the run it records: `write` then returns a one-line description of the failure, once, and the
    trace stops writing.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = None
        self._failed = False
        self._secrets = secret_values()

    def write(self, event: Event) -> str | None:
        """Append `event`; None when written (or when the trace already failed), else why it could not be."""
        if self._failed:
            return None
        line = json.dumps(redact_data(event.to_dict(), self._secrets), ensure_ascii=False, default=str)
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            self._file.write(scrub(line) + "\n")
            self._file.flush()
        except OSError as error:
            self._failed = True
            self._close_quietly()
            return f"the trace {self.path} could not be written ({error.strerror or error}); the run goes on without it"
        return None

    def close(self) -> None:
        self._close_quietly()

    def _close_quietly(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            # A failure was already reported by `write`; closing would only flush the same unwritable data.
            with contextlib.suppress(OSError):
                file.close()


def read_trace(path: str | Path, notes: list[str] | None = None) -> list[dict[str, Any]]:
    """The trace's events as dicts; ValueError naming the file and line for a line that is not a JSON object.
    With `notes`, a last line that is not JSON (a write cut short by a crash) is skipped and described there."""
    if notes is None:
        return [row for _, row in jsonl_rows(Path(path), ())]
    rows = list(jsonl_lines(Path(path)))
    events: list[dict[str, Any]] = []
    for index, (number, row) in enumerate(rows):
        if isinstance(row, dict):
            events.append(row)
        elif index == len(rows) - 1 and row.startswith("not JSON"):
            notes.append(f"{path}:{number}: skipped a last line cut short (an interrupted write?)")
        else:
            raise ValueError(f"{path}:{number}: {row}")
    return events


@dataclass
class LoadedTrace:
    events: list[dict[str, Any]]
    problems: list[str] = field(default_factory=list)  # lines that could not be read, said plainly


def load_trace(path: str | Path) -> LoadedTrace:
    """Read a JSONL trace leniently, keeping every readable event and naming the lines that are not."""
    events: list[dict[str, Any]] = []
    problems: list[str] = []
    for number, row in jsonl_lines(Path(path), ("kind",)):
        if isinstance(row, str):
            problems.append(f"line {number}: {row}" + ("; a truncated write?" if row.startswith("not JSON") else ""))
        elif not isinstance(row["kind"], str):
            problems.append(f"line {number}: not an event object (its kind is not a name)")
        else:
            events.append(row)
    return LoadedTrace(events, problems)


def split_runs(events: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Events grouped by run: each `run_started` opens a new group (a trace file may hold many).

    Events before the first `run_started` form a group of their own, so a reader can still show them.
    """
    runs: list[list[dict[str, Any]]] = []
    for event in events:
        if event.get("kind") == "run_started" or not runs:
            runs.append([])
        runs[-1].append(event)
    return runs


def run_status(run: list[dict[str, Any]]) -> str | None:
    """The run's final status; None when the trace stops before `run_finished` (a crash or a live run)."""
    end = run[-1] if run else {}
    finished = end.get("kind") == "run_finished" and end.get("status") is not None
    return str(end["status"]) if finished else None
