"""Sessions: SQLiteSession (many sessions per file, several processes appending) and InMemorySession."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentlab import InMemorySession, Session, SQLiteSession

ROOT = Path(__file__).resolve().parent.parent

TURN = [
    {"role": "user", "content": "Hi, I'm Ada"},
    {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "x", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    {"role": "assistant", "content": "Hello Ada!"},
]


@pytest.fixture(params=["sqlite", "memory"])
def session(request: pytest.FixtureRequest, tmp_path: Path) -> Session:
    if request.param == "sqlite":
        return SQLiteSession(tmp_path / "chats.db", session_id="user-42")
    return InMemorySession()


def test_both_kinds_are_sessions(session: Session) -> None:
    assert isinstance(session, Session)


def test_append_load_and_clear(session: Session) -> None:
    assert session.load() == []
    session.append(TURN[:2])
    session.append(TURN[2:])
    session.append([])
    assert session.load() == TURN
    session.clear()
    assert session.load() == []
    session.append([{"role": "user", "content": "again"}])
    assert session.load() == [{"role": "user", "content": "again"}]


def test_loaded_messages_are_copies(session: Session) -> None:
    session.append(TURN)
    loaded = session.load()
    loaded[0]["content"] = "changed"
    loaded.append({"role": "user", "content": "extra"})
    assert session.load() == TURN


def test_text_round_trips_exactly(session: Session) -> None:
    odd = [{"role": "user", "content": 'naïve ☃ "quotes" \n new line \ud800 lone surrogate', "name": None}]
    session.append(odd)
    assert session.load() == odd


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"role": "user", "content": "a single message"}, TypeError),
        ([{"role": "user", "content": object()}], ValueError),
        ([{"role": "user", "content": float("nan")}], ValueError),
        (["not a dict"], TypeError),
    ],
)
def test_bad_input_is_a_clear_error_and_stores_nothing(session: Session, bad: Any, error: type[Exception]) -> None:
    session.append(TURN[:1])
    with pytest.raises(error):
        session.append([{"role": "user", "content": "fine"}, *bad] if isinstance(bad, list) else bad)
    assert session.load() == TURN[:1]


def test_sessions_in_one_file_stay_separate(tmp_path: Path) -> None:
    path = tmp_path / "chats.db"
    ada, bob = SQLiteSession(path, "ada"), SQLiteSession(path, "bob")
    ada.append([{"role": "user", "content": "I'm Ada"}])
    bob.append([{"role": "user", "content": "I'm Bob"}])
    ada.append([{"role": "assistant", "content": "Hi Ada"}])
    assert ada.load() == [{"role": "user", "content": "I'm Ada"}, {"role": "assistant", "content": "Hi Ada"}]
    assert bob.load() == [{"role": "user", "content": "I'm Bob"}]
    bob.clear()
    assert bob.load() == [] and len(ada.load()) == 2
    assert ada.session_ids() == ["ada"]
    # a new object on the same file and id sees the same conversation (what a restarted app does)
    assert SQLiteSession(str(path), "ada").load() == ada.load()


def test_the_file_is_wal_with_an_index_on_session_and_seq(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "chats.db"
    SQLiteSession(path, "s").append(TURN)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        plan = connection.execute(
            "EXPLAIN QUERY PLAN SELECT message FROM session_messages WHERE session_id = 's' ORDER BY seq"
        ).fetchall()
    assert any("USING INDEX" in row[-1] and "session_id=?" in row[-1] for row in plan), plan
    assert not any("TEMP B-TREE" in row[-1] for row in plan), plan  # ordered by the index, no sort


def test_session_id_must_be_given(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="session_id"):
        SQLiteSession(tmp_path / "chats.db", "")


APPENDER = textwrap.dedent(
    """
    import sys
    from agentlab import SQLiteSession

    path, session_id, writer, batches = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    session = SQLiteSession(path, session_id)
    for n in range(batches):
        session.append([
            {"role": "user", "content": f"{writer} question {n}"},
            {"role": "assistant", "content": f"{writer} answer {n}"},
        ])
    """
)


def test_two_processes_appending_to_one_session(tmp_path: Path) -> None:
    path, batches = tmp_path / "chats.db", 40
    script = tmp_path / "appender.py"
    script.write_text(APPENDER)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's agentlab, not an installed one
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), "shared", name, str(batches)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    messages = SQLiteSession(path, "shared").load()
    assert len(messages) == 2 * 2 * batches
    for writer_name in ("A", "B"):
        mine = [m["content"] for m in messages if m["content"].startswith(writer_name)]
        expected = [f"{writer_name} {kind} {n}" for n in range(batches) for kind in ("question", "answer")]
        assert mine == expected  # every message, once, in the order its process appended it
    # each append is one transaction: a question is always followed by its own answer
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert (question["role"], answer["role"]) == ("user", "assistant")
        assert answer["content"] == question["content"].replace("question", "answer")
