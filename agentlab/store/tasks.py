"""`TaskStore`: runs, each a prioritised queue of text tasks with their results, in one SQLite file.

Every method is one short transaction on its own connection, so a process killed at any moment (even
with SIGKILL) leaves the file consistent: a task is either still queued, in progress, or done together
with its result. WAL mode lets another process (a monitor, a test) read while a run writes.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from agentlab.store.sqlite import connect, create, transaction

TaskStatus = Literal["pending", "running", "done"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id        TEXT PRIMARY KEY,
    objective     TEXT NOT NULL,
    status        TEXT NOT NULL,
    answer        TEXT,
    tasks_done    INTEGER NOT NULL DEFAULT 0,
    tasks_created INTEGER NOT NULL DEFAULT 0,
    options       TEXT NOT NULL DEFAULT '{}',
    state         TEXT NOT NULL DEFAULT '{}',
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    run_id      TEXT NOT NULL REFERENCES runs (run_id),
    task_id     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    norm        TEXT NOT NULL,
    status      TEXT NOT NULL,
    position    INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    result      TEXT,
    created_at  REAL NOT NULL,
    started_at  REAL,
    finished_at REAL,
    PRIMARY KEY (run_id, task_id),
    UNIQUE (run_id, norm)
);
"""

_LIST_MARKER = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")
_NOT_WORD = re.compile(r"[\W_]+")


def normalise_task(text: str) -> str:
    """The comparison key of a task: case, punctuation, spacing and a leading list marker don't count."""
    return " ".join(_NOT_WORD.sub(" ", _LIST_MARKER.sub("", text).casefold()).split())


class StoreError(RuntimeError):
    """The store cannot do what was asked (unknown run, task not in progress, ...)."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    objective: str
    status: str  # "running" until the caller records why it stopped
    answer: str | None
    tasks_done: int
    tasks_created: int
    options: dict[str, Any]
    state: dict[str, Any]  # the caller's own bookkeeping (e.g. where its loop stood), kept as JSON
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class TaskRecord:
    run_id: str
    task_id: int  # numbered from 1 within the run
    text: str
    status: TaskStatus
    position: int  # queue order of pending tasks, lowest first
    attempts: int  # how many times the task was started
    result: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None


class TaskStore:
    """A SQLite file of runs and their tasks; the file and its folder are created on first use."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) == ":memory:":
            raise StoreError("TaskStore needs a file: each operation opens its own connection")
        create(self.path, _SCHEMA)

    def __repr__(self) -> str:
        return f"TaskStore({str(self.path)!r})"

    # --- runs ------------------------------------------------------------------------------------

    def create_run(self, run_id: str, objective: str, options: dict[str, Any] | None = None) -> RunRecord:
        now = time.time()
        with transaction(self.path, sqlite3.Row) as db:
            if db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise StoreError(f"run {run_id!r} already exists in {self.path}; resume it instead")
            db.execute(
                "INSERT INTO runs (run_id, objective, status, options, created_at, updated_at) "
                "VALUES (?, ?, 'running', ?, ?, ?)",
                (run_id, objective, json.dumps(options or {}), now, now),
            )
        return self.run(run_id)

    def run(self, run_id: str) -> RunRecord:
        found = self.find_run(run_id)
        if found is None:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return found

    def find_run(self, run_id: str) -> RunRecord | None:
        with connect(self.path, sqlite3.Row) as db:
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return _run(row) if row else None

    def runs(self) -> list[RunRecord]:
        """Every run in the file, newest first."""
        with connect(self.path, sqlite3.Row) as db:
            rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC").fetchall()
        return [_run(row) for row in rows]

    def update_run(
        self, run_id: str, *, status: str | None = None, answer: str | None = None, state: dict[str, Any] | None = None
    ) -> RunRecord:
        """Change what is given; None leaves a field as it is."""
        with transaction(self.path, sqlite3.Row) as db:
            changed = db.execute(
                "UPDATE runs SET status = COALESCE(?, status), answer = COALESCE(?, answer), "
                "state = COALESCE(?, state), updated_at = ? WHERE run_id = ?",
                (status, answer, None if state is None else json.dumps(state), time.time(), run_id),
            ).rowcount
        if not changed:
            raise StoreError(f"no run {run_id!r} in {self.path}")
        return self.run(run_id)

    # --- tasks -----------------------------------------------------------------------------------

    def add_tasks(self, run_id: str, texts: Iterable[str]) -> tuple[list[TaskRecord], list[str]]:
        """Queue `texts` after the pending tasks; returns (added, dropped). A text whose normalised form
        equals any task of the run (pending, running or done) or an earlier text of the batch is dropped."""
        now = time.time()
        added_ids: list[int] = []
        dropped: list[str] = []
        with transaction(self.path, sqlite3.Row) as db:
            self._require_run(db, run_id)
            next_id, next_position = db.execute(
                "SELECT COALESCE(MAX(task_id), 0) + 1, COALESCE(MAX(position), 0) + 1 FROM tasks WHERE run_id = ?",
                (run_id,),
            ).fetchone()
            for text in texts:
                text, norm = text.strip(), normalise_task(text)
                inserted = (
                    norm
                    and db.execute(
                        "INSERT OR IGNORE INTO tasks (run_id, task_id, text, norm, status, position, created_at) "
                        "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                        (run_id, next_id, text, norm, next_position, now),
                    ).rowcount
                )
                if not inserted:
                    dropped.append(text)
                    continue
                added_ids.append(next_id)
                next_id, next_position = next_id + 1, next_position + 1
            db.execute(
                "UPDATE runs SET tasks_created = tasks_created + ?, updated_at = ? WHERE run_id = ?",
                (len(added_ids), now, run_id),
            )
        return self._tasks_by_id(run_id, added_ids), dropped

    def claim_next(self, run_id: str) -> TaskRecord | None:
        """Mark the first pending task as running (counting the attempt) and return it; None if none is left."""
        with transaction(self.path, sqlite3.Row) as db:
            row = db.execute(
                "SELECT task_id FROM tasks WHERE run_id = ? AND status = 'pending' ORDER BY position, task_id LIMIT 1",
                (run_id,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE tasks SET status = 'running', attempts = attempts + 1, started_at = ? "
                "WHERE run_id = ? AND task_id = ?",
                (time.time(), run_id, row["task_id"]),
            )
        return self.task(run_id, row["task_id"])

    def finish_task(
        self, run_id: str, task_id: int, result: str, *, run_state: dict[str, Any] | None = None
    ) -> TaskRecord:
        """Store the result and mark the task done in one transaction, so neither exists without the other;
        `run_state`, when given, replaces the run's state in the same transaction."""
        now = time.time()
        with transaction(self.path, sqlite3.Row) as db:
            changed = db.execute(
                "UPDATE tasks SET status = 'done', result = ?, finished_at = ? "
                "WHERE run_id = ? AND task_id = ? AND status = 'running'",
                (result, now, run_id, task_id),
            ).rowcount
            if not changed:
                raise StoreError(f"task {task_id} of run {run_id!r} is not in progress")
            db.execute(
                "UPDATE runs SET tasks_done = tasks_done + 1, state = COALESCE(?, state), updated_at = ? "
                "WHERE run_id = ?",
                (None if run_state is None else json.dumps(run_state), now, run_id),
            )
        return self.task(run_id, task_id)

    def requeue_running(self, run_id: str) -> list[TaskRecord]:
        """Put tasks left in progress (their process died) back in the queue, keeping their place."""
        with transaction(self.path, sqlite3.Row) as db:
            ids = [
                row["task_id"]
                for row in db.execute(
                    "SELECT task_id FROM tasks WHERE run_id = ? AND status = 'running'", (run_id,)
                ).fetchall()
            ]
            db.execute("UPDATE tasks SET status = 'pending' WHERE run_id = ? AND status = 'running'", (run_id,))
        return self._tasks_by_id(run_id, ids)

    def reorder(self, run_id: str, task_ids: Sequence[int]) -> list[TaskRecord]:
        """Put the pending tasks in the order of `task_ids`; ids that are not pending are ignored and pending
        tasks not named keep their relative order after the named ones. Returns the new queue."""
        with transaction(self.path, sqlite3.Row) as db:
            pending = [
                row["task_id"]
                for row in db.execute(
                    "SELECT task_id FROM tasks WHERE run_id = ? AND status = 'pending' ORDER BY position, task_id",
                    (run_id,),
                ).fetchall()
            ]
            pending_ids = set(pending)
            named = [i for i in dict.fromkeys(task_ids) if i in pending_ids]
            named_ids = set(named)
            order = named + [i for i in pending if i not in named_ids]
            db.executemany(
                "UPDATE tasks SET position = ? WHERE run_id = ? AND task_id = ?",
                [(position, run_id, task_id) for position, task_id in enumerate(order, 1)],
            )
        return self.tasks(run_id, "pending")

    def task(self, run_id: str, task_id: int) -> TaskRecord:
        found = self._tasks_by_id(run_id, [task_id])
        if not found:
            raise StoreError(f"no task {task_id} in run {run_id!r}")
        return found[0]

    def tasks(self, run_id: str, status: TaskStatus | None = None) -> list[TaskRecord]:
        """Tasks of a run: pending ones in queue order, done ones in the order they finished."""
        order = "finished_at, task_id" if status == "done" else "position, task_id"
        query = f"SELECT * FROM tasks WHERE run_id = ?{' AND status = ?' if status else ''} ORDER BY {order}"
        with connect(self.path, sqlite3.Row) as db:
            rows = db.execute(query, (run_id, status) if status else (run_id,)).fetchall()
        return [_task(row) for row in rows]

    # --- plumbing --------------------------------------------------------------------------------

    def _tasks_by_id(self, run_id: str, task_ids: list[int]) -> list[TaskRecord]:
        if not task_ids:
            return []
        marks = ",".join("?" * len(task_ids))
        with connect(self.path, sqlite3.Row) as db:
            rows = db.execute(
                f"SELECT * FROM tasks WHERE run_id = ? AND task_id IN ({marks})", (run_id, *task_ids)
            ).fetchall()
        by_id = {row["task_id"]: _task(row) for row in rows}
        return [by_id[i] for i in task_ids if i in by_id]

    def _require_run(self, db: sqlite3.Connection, run_id: str) -> None:
        if not db.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
            raise StoreError(f"no run {run_id!r} in {self.path}")


def _run(row: sqlite3.Row) -> RunRecord:
    values = dict(row)
    values["options"] = json.loads(values["options"])
    values["state"] = json.loads(values["state"])
    return RunRecord(**values)


def _task(row: sqlite3.Row) -> TaskRecord:
    values = dict(row)
    del values["norm"]
    return TaskRecord(**values)
