"""The SQLite file handling the stores share: a connection per operation, explicit transactions, WAL.

A connection per operation (not one per store) lets threads and processes share a file without
sharing a connection; SQLite's own locking orders the writers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# What sqlite3 turns each row into: sqlite3.Row, or None for plain tuples.
RowFactory = Callable[[sqlite3.Cursor, Any], Any] | None


def create(path: Path, schema: str) -> None:
    """Create (if needed) the file at `path` with its directory, in WAL mode, with `schema` applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(path) as connection:
        use_wal(connection)
        connection.executescript(schema)


def use_wal(connection: sqlite3.Connection, wait: float = 30.0) -> None:
    """Put the file in WAL mode. WAL is a property of the file: set once, it holds for every later
    connection. Switching needs a moment with no other connection in a transaction, and SQLite answers
    "database is locked" at once instead of waiting (seen with two processes opening a new file together),
    so the switch is retried for up to `wait` seconds; a file already in WAL mode is left alone."""
    deadline = time.monotonic() + wait
    while True:
        try:
            (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
            if str(mode).lower() != "wal":
                connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def connect(path: Path, row_factory: RowFactory = None) -> Iterator[sqlite3.Connection]:
    """A connection in autocommit mode: transactions are explicit (`transaction`); a read needs none."""
    connection = sqlite3.connect(path, timeout=30.0, isolation_level=None)
    try:
        connection.row_factory = row_factory
        # FULL: a committed write survives even a power cut, not only a killed process.
        connection.execute("PRAGMA synchronous=FULL")
        yield connection
    finally:
        connection.close()


@contextmanager
def transaction(path: Path, row_factory: RowFactory = None) -> Iterator[sqlite3.Connection]:
    """A connection inside one transaction: committed when the block ends, rolled back when it raises."""
    with connect(path, row_factory) as connection:
        # IMMEDIATE takes the write lock up front: two writers wait instead of failing mid-way, and what a
        # writer reads before it writes stays true.
        connection.execute("BEGIN IMMEDIATE")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")
