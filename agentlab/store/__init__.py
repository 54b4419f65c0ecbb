"""Persistent state on SQLite (stdlib `sqlite3`, WAL mode). Knows nothing of agents: a run here is a named
queue of text tasks with results, which a strategy (BabyAGI) drives; a session is a list of chat messages."""

from agentlab.store.runs import RunStore, RunStoreError, RunSummary
from agentlab.store.sessions import InMemorySession, Session, SQLiteSession
from agentlab.store.tasks import RunRecord, StoreError, TaskRecord, TaskStore, normalise_task

__all__ = [
    "InMemorySession",
    "RunRecord",
    "RunStore",
    "RunStoreError",
    "RunSummary",
    "SQLiteSession",
    "Session",
    "StoreError",
    "TaskRecord",
    "TaskStore",
    "normalise_task",
]
