"""`MemoryStore`: a memory stream in SQLite, retrieved by recency, importance and relevance.

The design follows generative agents (Park et al., 2023): every observation is a timestamped record
with an importance from 1 to 10; retrieval scores each record by exponential recency decay since it
was last retrieved, its importance and its BM25 relevance to the query, each min-max normalised over
the candidates and mixed with configurable weights; once the importance of new observations adds up
past a threshold, a model call distils the recent records into a few higher-level insights, stored
as `kind="reflection"` records linked to the records they came from. Planning turns a goal and the
memories most relevant to it into a few ordered steps, stored as `kind="plan"` records linked the same way.

Without a model the store still works: importances are taken as given (or a default) and reflection
is only run when asked for with a model.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Literal, Self

from agentlab._sync import run_sync
from agentlab._text import scrub
from agentlab.bm25 import bm25_scores
from agentlab.store.sqlite import use_wal

if TYPE_CHECKING:
    from agentlab.models.base import Model

ImportanceSource = Literal["given", "model", "default"]

# Used when no importance is given and no model can rate it: low, so unrated chatter never crowds
# out what someone marked as important.
DEFAULT_IMPORTANCE = 3
# A plan step is guidance for the near future, worth recalling but superseded by the next plan.
PLAN_IMPORTANCE = 5

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id                INTEGER PRIMARY KEY,
    text              TEXT NOT NULL,
    kind              TEXT NOT NULL,
    importance        REAL NOT NULL,
    importance_source TEXT NOT NULL,
    created_at        REAL NOT NULL,
    last_accessed     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_by_kind ON memories (kind, created_at);
CREATE TABLE IF NOT EXISTS memory_links (
    memory_id INTEGER NOT NULL REFERENCES memories (id),
    source_id INTEGER NOT NULL REFERENCES memories (id),
    PRIMARY KEY (memory_id, source_id)
);
CREATE TABLE IF NOT EXISTS memory_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
"""
_PENDING = "importance_since_reflection"


@dataclass(frozen=True)
class Memory:
    """One stored memory: an observation, or a reflection drawn from others.

    Attributes:
        id: Its row id in the store.
        text: What is remembered.
        kind: `"observation"`, `"reflection"`, `"plan"` or a caller's own kind.
        importance: 1 (mundane) to 10 (poignant).
        importance_source: Whether the importance was `given`, rated by the `model`, or the `default`.
        created_at: When it was stored (Unix time).
        last_accessed: When it was last retrieved (Unix time); recency decays from here.
        sources: For a reflection, the ids of the memories it was drawn from.
    """

    id: int
    text: str
    kind: str
    importance: float
    importance_source: ImportanceSource
    created_at: float
    last_accessed: float
    sources: tuple[int, ...] = ()  # for a reflection: the memories it was drawn from


@dataclass(frozen=True)
class ScoredMemory:
    """A retrieved memory with its normalised components (each in [0, 1]) and their weighted sum."""

    memory: Memory
    score: float
    recency: float
    importance: float
    relevance: float


@dataclass(frozen=True)
class RetrievalWeights:
    """How much recency, importance and relevance each weigh in a retrieval score."""

    recency: float = 1.0
    importance: float = 1.0
    relevance: float = 1.0


class MemoryStore:
    """A memory stream in one SQLite file (`":memory:"` for a throwaway one); safe to share between threads.

    `model` (optional) rates importance when none is given and writes reflections. `decay_per_hour`
    is the recency factor per hour since a memory was last retrieved. Reflection runs when the
    importance of new non-reflection memories reaches `reflection_threshold`, over the
    `reflect_over` most recent memories, producing at most `max_insights` insights.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        model: Model | None = None,
        weights: RetrievalWeights | None = None,
        decay_per_hour: float = 0.99,
        reflection_threshold: float = 60.0,
        reflect_over: int = 30,
        max_insights: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0 < decay_per_hour <= 1:
            raise ValueError(f"decay_per_hour must be in (0, 1], got {decay_per_hour}")
        self.path = str(path)
        self.model = model
        self.weights = weights or RetrievalWeights()
        self.decay_per_hour = decay_per_hour
        self.reflection_threshold = reflection_threshold
        self.reflect_over = reflect_over
        self.max_insights = max_insights
        self.clock = clock
        self.last_reflection_error: str | None = None  # why the last automatic reflection failed, if it did
        self.last_plan_error: str | None = None  # why the last plan() stored nothing, if it did
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection guarded by a lock: tools run on worker threads, and ":memory:" lives in one connection.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA busy_timeout=5000")
            if self.path != ":memory:":
                use_wal(self._db)
            self._db.executescript(_SCHEMA)

    # --- writing -----------------------------------------------------------------------------

    async def aadd(
        self, text: str, importance: float | None = None, kind: str = "observation", *, sources: Iterable[int] = ()
    ) -> Memory:
        """Store a memory; rate its importance with the model when none is given; maybe reflect."""
        text = scrub(text).strip()  # a lone surrogate (half an emoji) could not be written to SQLite
        if not text:
            raise ValueError("a memory needs some text")
        source: ImportanceSource = "given"
        if importance is None:
            importance, source = await self._rate(text)
        memory = self._insert(text, kind, _check_importance(importance), source, tuple(sources))
        if kind != "reflection" and self.model is not None and self._bump_pending(memory.importance):
            from agentlab.decisions import DecisionError
            from agentlab.models.base import ModelError

            try:
                await self.areflect()
            except (ModelError, DecisionError) as failure:  # the memory is stored; reflection is retried later
                self.last_reflection_error = str(failure)
        return memory

    def add(
        self, text: str, importance: float | None = None, kind: str = "observation", *, sources: Iterable[int] = ()
    ) -> Memory:
        """Blocking `aadd` (also usable from code that already runs an event loop)."""
        return run_sync(self.aadd(text, importance, kind, sources=sources))

    def _insert(
        self, text: str, kind: str, importance: float, source: ImportanceSource, sources: tuple[int, ...]
    ) -> Memory:
        now = self.clock()
        with self._lock, self._db:
            self._db.execute("BEGIN")
            row = self._db.execute(
                "INSERT INTO memories (text, kind, importance, importance_source, created_at, last_accessed)"
                " VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                (text, kind, importance, source, now, now),
            ).fetchone()
            known = (
                {
                    r[0]
                    for r in self._db.execute(
                        f"SELECT id FROM memories WHERE id IN ({','.join('?' * len(sources))})", sources
                    )
                }
                if sources
                else set()
            )
            missing = set(sources) - known
            if missing:
                raise ValueError(f"unknown source memories {sorted(missing)}")
            self._db.executemany("INSERT OR IGNORE INTO memory_links VALUES (?, ?)", [(row[0], s) for s in sources])
        return Memory(row[0], text, kind, importance, source, now, now, tuple(sorted(set(sources))))

    def _bump_pending(self, importance: float) -> bool:
        """Add to the importance since the last reflection; True once it reaches the threshold."""
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO memory_meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                (_PENDING, importance),
            )
            pending = self._db.execute("SELECT value FROM memory_meta WHERE key = ?", (_PENDING,)).fetchone()[0]
        return float(pending) >= self.reflection_threshold

    async def _rate(self, text: str) -> tuple[float, ImportanceSource]:
        if self.model is None:
            return DEFAULT_IMPORTANCE, "default"
        from agentlab.decisions import DecisionError
        from agentlab.memory.prompts import rate_importance
        from agentlab.models.base import ModelError

        try:
            return await rate_importance(self.model, text), "model"
        except (ModelError, DecisionError):  # the memory matters more than its rating: keep it, marked as unrated
            return DEFAULT_IMPORTANCE, "default"

    # --- reflection --------------------------------------------------------------------------

    async def areflect(self) -> list[Memory]:
        """Distil the recent memories into insights (one model call) and store them as reflections."""
        if self.model is None:
            raise ValueError("reflection needs a model: MemoryStore(model=...)")
        from agentlab.memory.prompts import reflect

        recent = self.recent(self.reflect_over)
        if not recent:
            return []
        insights = await reflect(self.model, recent, self.max_insights)
        stored = [
            await self.aadd(insight.text, insight.importance, "reflection", sources=ids) for insight, ids in insights
        ]
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO memory_meta VALUES (?, 0)", (_PENDING,))
        self.last_reflection_error = None
        return stored

    def reflect(self) -> list[Memory]:
        """Blocking `areflect`."""
        return run_sync(self.areflect())

    # --- planning ----------------------------------------------------------------------------

    async def aplan(self, goal: str, k: int = 5, *, max_steps: int = 5, reflections: int = 3) -> list[Memory]:
        """Turn `goal` into a short ordered plan (one model call) and store its steps as `kind="plan"` memories.

        The model sees the `k` memories most relevant to the goal plus the `reflections` newest
        reflections; earlier plans are left out so a stale plan is not copied forward. Each step is
        linked to all the memories shown, and the steps come back in order (ids ascending). When the
        model call fails nothing is stored, `last_plan_error` says why and the result is empty.
        """
        if self.model is None:
            raise ValueError("planning needs a model: MemoryStore(model=...)")
        goal = " ".join(goal.split())
        if not goal:
            raise ValueError("a plan needs a goal")
        from agentlab.decisions import DecisionError
        from agentlab.memory.prompts import plan
        from agentlab.models.base import ModelError

        kinds = [kind for kind in self._kinds() if kind != "plan"]
        relevant = [s.memory for s in self.retrieve(goal, k, kinds=kinds)] if kinds else []
        shown = {m.id for m in relevant}
        context = relevant + [m for m in self.recent(max(0, reflections), kinds=["reflection"]) if m.id not in shown]
        try:
            steps = await plan(self.model, goal, context, max_steps)
        except (ModelError, DecisionError) as failure:
            self.last_plan_error = str(failure)
            return []
        self.last_plan_error = None
        sources = tuple(m.id for m in context)
        # Self-contained texts: a step recalled later still says which goal it serves and where it stands.
        return [
            self._insert(f'Plan for "{goal}", step {n}/{len(steps)}: {step}', "plan", PLAN_IMPORTANCE, "given", sources)
            for n, step in enumerate(steps, 1)
        ]

    def plan(self, goal: str, k: int = 5, *, max_steps: int = 5, reflections: int = 3) -> list[Memory]:
        """Blocking `aplan`."""
        return run_sync(self.aplan(goal, k, max_steps=max_steps, reflections=reflections))

    # --- reading -----------------------------------------------------------------------------

    def retrieve(
        self,
        query: str,
        k: int = 5,
        *,
        kinds: Sequence[str] | None = None,
        weights: RetrievalWeights | None = None,
        touch: bool = True,
        matching_only: bool = False,
    ) -> list[ScoredMemory]:
        """The `k` best memories for `query`; retrieved memories count as freshly accessed (`touch`).
        `matching_only` leaves out memories that share no term with the query."""
        weights = weights or self.weights
        if kinds is not None and not kinds:  # no kind asked for: nothing (None means every kind)
            return []
        candidates = self._select(kinds)
        k = int(k)
        if not candidates or k <= 0:
            return []
        raw_relevance = bm25_scores(query, [m.text for m in candidates])
        if matching_only:
            candidates, raw_relevance = _matching(candidates, raw_relevance)
            if not candidates:
                return []
        now = self.clock()
        recency = _normalise([self.decay_per_hour ** (max(0.0, now - m.last_accessed) / 3600) for m in candidates])
        importance = _normalise([m.importance for m in candidates])
        relevance = _normalise(raw_relevance)
        scored = [
            ScoredMemory(m, weights.recency * r + weights.importance * i + weights.relevance * v, r, i, v)
            for m, r, i, v in zip(candidates, recency, importance, relevance, strict=True)
        ]
        # Ties go to the newer memory.
        best = sorted(scored, key=lambda s: (s.score, s.memory.id), reverse=True)[:k]
        if touch:
            with self._lock, self._db:
                self._db.executemany(
                    "UPDATE memories SET last_accessed = ? WHERE id = ?", [(now, s.memory.id) for s in best]
                )
        return best

    def recent(self, n: int = 10, *, kinds: Sequence[str] | None = None) -> list[Memory]:
        """The `n` newest memories, oldest first."""
        return self._select(kinds, limit=n)

    def get(self, memory_id: int) -> Memory | None:
        """The memory with this id, or None."""
        found = self._select(None, ids=[memory_id])
        return found[0] if found else None

    def _kinds(self) -> list[str]:
        with self._lock:
            return [row[0] for row in self._db.execute("SELECT DISTINCT kind FROM memories")]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM memories").fetchone()[0])

    def _select(
        self, kinds: Sequence[str] | None, *, limit: int | None = None, ids: Sequence[int] | None = None
    ) -> list[Memory]:
        where: list[str] = []
        params: list[str | int] = []
        if kinds:
            where.append(f"kind IN ({','.join('?' * len(kinds))})")
            params += list(kinds)
        if ids is not None:
            where.append(f"id IN ({','.join('?' * len(ids))})")
            params += list(ids)
        selection = " WHERE " + " AND ".join(where) if where else ""
        selection += " ORDER BY id DESC" + (f" LIMIT {int(limit)}" if limit is not None else "")
        columns = "id, text, kind, importance, importance_source, created_at, last_accessed"
        with self._lock:
            rows = self._db.execute(f"SELECT {columns} FROM memories{selection}", params).fetchall()
            links: dict[int, list[int]] = {}
            # Only the selected memories' links: a `get` must not read the whole link table.
            for memory_id, source_id in self._db.execute(
                f"SELECT memory_id, source_id FROM memory_links WHERE memory_id IN (SELECT id FROM memories{selection})"
                " ORDER BY source_id",
                params,
            ):
                links.setdefault(memory_id, []).append(source_id)
        return [replace(Memory(*row), sources=tuple(links.get(row[0], ()))) for row in reversed(rows)]

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the SQLite connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _check_importance(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 1 <= value <= 10:
        raise ValueError(f"importance must be a number from 1 to 10, got {value!r}")
    return float(value)


def _matching(candidates: list[Memory], scores: list[float]) -> tuple[list[Memory], list[float]]:
    kept = [(memory, score) for memory, score in zip(candidates, scores, strict=True) if score > 0]
    return [memory for memory, _ in kept], [score for _, score in kept]


def _normalise(values: list[float]) -> list[float]:
    """Min-max to [0, 1]; all-equal values carry no signal and become 0."""
    low, high = min(values), max(values)
    if high - low < 1e-12:
        return [0.0] * len(values)
    return [(v - low) / (high - low) for v in values]
