"""The run store: every event of every run, appended to SQLite as it happens, so a run can be listed, read
back and resumed after a crash, a kill or a pause.

Events are JSON objects (the loop's `Event.to_dict`), one row each, keyed by (run id, sequence number). The
store knows nothing of agents beyond three event fields it summarises into a row per run for listings:
`kind` (`run_started` opens a run, `run_finished` ends it), `status`, `steps` and `usage`. Each append is one
short transaction in WAL mode, so a process killed at any moment loses at most the event being written, and
another process (a monitor, `agentlab runs`) reads while a run writes. BabyAGI's task store (`TaskStore`) may
live in the same file: the tables do not overlap.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlab.store.claims import RunClaim, claim_run
from agentlab.store.sqlite import use_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run_events (
    run_id  TEXT    NOT NULL,
    seq     INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    event   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE TABLE IF NOT EXISTS agent_runs (
    run_id            TEXT PRIMARY KEY,
    parent_run_id     TEXT,
    task              TEXT NOT NULL DEFAULT '',
    strategy          TEXT NOT NULL DEFAULT '',
    model             TEXT NOT NULL DEFAULT '',
    status            TEXT,
    steps             INTEGER NOT NULL DEFAULT 0,
    prompt_tokens     INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    started           REAL NOT NULL,
    updated           REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS agent_runs_started ON agent_runs (started);
"""


class RunStoreError(RuntimeError):
    """The run store cannot do what was asked (an unknown run, a file that is not a run store)."""


@dataclass(frozen=True)
class RunSummary:
    """One run as `agentlab runs` lists it.

    Attributes:
        run_id: The run's id.
        task: The task it was given.
        strategy: The strategy's name.
        model: The model's name.
        status: How it ended (`done`, `paused`, ...), or None while it runs or after a crash.
        steps: Steps taken (as of its last end).
        prompt_tokens: Prompt tokens used.
        completion_tokens: Completion tokens used.
        started: When it started (Unix time).
        updated: When its last event was stored.
        parent_run_id: The run that started it, for an agent used as a tool.
    """

    run_id: str
    task: str
    strategy: str
    model: str
    status: str | None
    steps: int
    prompt_tokens: int
    completion_tokens: int
    started: float
    updated: float
    parent_run_id: str | None = None

    @property
    def total_tokens(self) -> int:
        """Prompt and completion tokens together."""
        return self.prompt_tokens + self.completion_tokens


class RunStore:
    """Events of runs in one SQLite file (created when missing). Safe to share between threads; several
    processes may append to the same file at once (each run's events come from one process)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise RunStoreError("a run store needs a file, so that another process can resume its runs")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._next_seq: dict[str, int] = {}
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            use_wal(self._db)
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise RunStoreError(f"{self.path} cannot be used as a run store: {error}") from error

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    def close(self) -> None:
        """Close the file; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, event: dict[str, Any]) -> None:
        """Store one event (a JSON-ready dict with `kind` and `run_id`) after the run's earlier ones."""
        run_id = str(event.get("run_id") or "")
        if not run_id:
            raise RunStoreError(f"an event without a run id cannot be stored: {event.get('kind')!r}")
        text = json.dumps(event, ensure_ascii=True, default=str)
        now = time.time()
        with self._lock:
            seq = self._sequence(run_id)
            with self._db:  # one transaction: the event and its run's summary together
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO run_events (run_id, seq, kind, event) VALUES (?, ?, ?, ?)",
                    (run_id, seq, str(event.get("kind")), text),
                )
                self._summarise(run_id, event, now)
            self._next_seq[run_id] = seq + 1

    def events(self, run_id: str) -> list[dict[str, Any]]:
        """The run's events, oldest first; RunStoreError when the store has none for `run_id`."""
        with self._lock:
            rows = self._db.execute("SELECT event FROM run_events WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        if not rows:
            raise RunStoreError(f"no run {run_id!r} in {self.path}")
        return [json.loads(text) for (text,) in rows]

    def claim(self, run_id: str) -> RunClaim | None:
        """Claim the run for the one going on with it (this run, or its resume): the claim, to `release` when
        it stops, or None while another holds it, in this process or another. A claim ends with its process,
        however that dies, so a crashed run can be resumed. Without claims, a paused run resumed twice at
        once (a double click, a retried request) would run its approved calls twice."""
        return claim_run(Path(f"{self.path}.claims"), run_id)

    def run(self, run_id: str) -> RunSummary:
        """The run's summary row; RunStoreError for an unknown run."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM agent_runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunStoreError(f"no run {run_id!r} in {self.path}")
        return _summary(row)

    def runs(self, limit: int | None = None, *, include_children: bool = False) -> list[RunSummary]:
        """Runs, newest first; sub-runs (agents used as tools) only when `include_children`."""
        where = "" if include_children else "WHERE parent_run_id IS NULL"
        sql = f"SELECT {_COLUMNS} FROM agent_runs {where} ORDER BY started DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            rows = self._db.execute(sql).fetchall()
        return [_summary(row) for row in rows]

    def _sequence(self, run_id: str) -> int:
        if run_id not in self._next_seq:
            (last,) = self._db.execute("SELECT MAX(seq) FROM run_events WHERE run_id = ?", (run_id,)).fetchone()
            self._next_seq[run_id] = 0 if last is None else last + 1
        return self._next_seq[run_id]

    def _summarise(self, run_id: str, event: dict[str, Any], now: float) -> None:
        kind = event.get("kind")
        if kind == "run_started":
            self._db.execute(
                "INSERT INTO agent_runs (run_id, parent_run_id, task, strategy, model, started, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET updated = excluded.updated",
                (
                    run_id,
                    event.get("parent_run_id"),
                    str(event.get("task", "")),
                    str(event.get("strategy", "")),
                    str(event.get("model", "")),
                    float(event.get("time") or now),
                    now,
                ),
            )
        elif kind == "run_finished":
            usage = event.get("usage") or {}
            self._db.execute(
                "UPDATE agent_runs SET status = ?, steps = ?, prompt_tokens = ?, completion_tokens = ?, updated = ? "
                "WHERE run_id = ?",
                (
                    event.get("status"),
                    int(event.get("steps") or 0),
                    int(usage.get("prompt_tokens") or 0),
                    int(usage.get("completion_tokens") or 0),
                    now,
                    run_id,
                ),
            )
        elif kind == "resumed":
            self._db.execute("UPDATE agent_runs SET status = NULL, updated = ? WHERE run_id = ?", (now, run_id))
        else:
            self._db.execute("UPDATE agent_runs SET updated = ? WHERE run_id = ?", (now, run_id))


_COLUMNS = (
    "run_id, task, strategy, model, status, steps, prompt_tokens, completion_tokens, started, updated, parent_run_id"
)


def _summary(row: tuple[Any, ...]) -> RunSummary:
    return RunSummary(*row)
