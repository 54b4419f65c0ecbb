"""Sessions: a conversation kept between runs, so an app's chat goes on across turns and restarts.

A session is an ordered list of chat messages (OpenAI format, JSON objects). `SQLiteSession` keeps many
sessions in one SQLite file, one row per message, and is safe for several processes appending at once;
`InMemorySession` is for tests and short-lived apps. Sessions store what they are given: keeping the
conversation provider-valid is the caller's job (agentlab.run.conversation.repair_history).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentlab.store.sqlite import connect, create, transaction

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session_messages (
    session_id TEXT    NOT NULL,
    seq        INTEGER NOT NULL,
    message    TEXT    NOT NULL,
    created_at REAL    NOT NULL,
    PRIMARY KEY (session_id, seq)
);
"""
# The primary key is the (session_id, seq) index: a load is one range scan, an append one seek.


@runtime_checkable
class Session(Protocol):
    """Where a conversation lives between runs: load it, append the new turns, or start over."""

    def load(self) -> list[dict[str, Any]]:
        """Every message so far, oldest first."""
        ...

    def append(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add messages at the end, all or none."""
        ...

    def clear(self) -> None:
        """Forget every message of this session."""
        ...


def _encoded(messages: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each message as JSON text, checked before anything is stored. Raises TypeError or ValueError."""
    if isinstance(messages, Mapping | str):
        raise TypeError("append takes a list of messages, not a single message")
    encoded = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise TypeError(f"message {index} must be a dict, got {type(message).__name__}")
        try:
            # ensure_ascii (the default) also keeps lone surrogates storable, as \u escapes.
            encoded.append(json.dumps(dict(message), allow_nan=False))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"message {index} is not JSON-serialisable: {exc}") from exc
    return encoded


class InMemorySession:
    """A session held in this process only (tests, demos, a single request's lifetime)."""

    def __init__(self, messages: Sequence[Mapping[str, Any]] = ()) -> None:
        """Start with `messages` (copied), or empty."""
        self._messages: list[str] = _encoded(messages)

    def __repr__(self) -> str:
        return f"InMemorySession({len(self._messages)} messages)"

    def load(self) -> list[dict[str, Any]]:
        """Every message so far, oldest first (fresh copies: changing them changes nothing here)."""
        return [json.loads(text) for text in self._messages]

    def append(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add messages at the end, all or none (a message that is not JSON-serialisable rejects the lot)."""
        self._messages += _encoded(messages)

    def clear(self) -> None:
        """Forget every message."""
        self._messages = []


class SQLiteSession:
    """One conversation in a SQLite file that may hold many (`session_id` tells them apart).

    Every call is one short transaction on its own connection: WAL mode lets readers run while another
    process writes, and appends take the write lock up front (`BEGIN IMMEDIATE`), so two processes appending
    to the same session interleave whole batches and never lose or duplicate a message.
    """

    def __init__(self, path: str | Path, session_id: str) -> None:
        """Open (creating if needed) the file at `path` and address the session `session_id` in it."""
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("session_id must be a non-empty string")
        self.path = Path(path)
        self.session_id = session_id
        create(self.path, _SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteSession({str(self.path)!r}, session_id={self.session_id!r})"

    def load(self) -> list[dict[str, Any]]:
        """Every message of this session, oldest first."""
        with connect(self.path) as connection:
            rows = connection.execute(
                "SELECT message FROM session_messages WHERE session_id = ? ORDER BY seq", (self.session_id,)
            ).fetchall()
        return [json.loads(text) for (text,) in rows]

    def append(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """Add messages at the end in one transaction: all are stored, or none (bad input stores nothing)."""
        encoded = _encoded(messages)
        if not encoded:
            return
        now = time.time()
        with transaction(self.path) as connection:
            (last,) = connection.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM session_messages WHERE session_id = ?", (self.session_id,)
            ).fetchone()
            connection.executemany(
                "INSERT INTO session_messages (session_id, seq, message, created_at) VALUES (?, ?, ?, ?)",
                [(self.session_id, last + 1 + offset, text, now) for offset, text in enumerate(encoded)],
            )

    def clear(self) -> None:
        """Delete every message of this session (other sessions in the file are untouched)."""
        with transaction(self.path) as connection:
            connection.execute("DELETE FROM session_messages WHERE session_id = ?", (self.session_id,))

    def session_ids(self) -> list[str]:
        """Every session with at least one message in this file, sorted."""
        with connect(self.path) as connection:
            rows = connection.execute("SELECT DISTINCT session_id FROM session_messages ORDER BY 1").fetchall()
        return [session_id for (session_id,) in rows]
