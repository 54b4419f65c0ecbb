"""Long-term memory for agents: a SQLite memory stream with recency/importance/relevance retrieval,
reflection into higher-level insights, planning, and `remember`/`recall`/`plan` tools for any strategy.

Names load on first use, so importing this package costs nothing until a store is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports

if TYPE_CHECKING:
    from agentlab.memory.store import DEFAULT_IMPORTANCE, Memory, MemoryStore, RetrievalWeights, ScoredMemory
    from agentlab.memory.tools import memory_tools

__all__ = ["DEFAULT_IMPORTANCE", "Memory", "MemoryStore", "RetrievalWeights", "ScoredMemory", "memory_tools"]

_LAZY = {name: "agentlab.memory.store" for name in __all__} | {"memory_tools": "agentlab.memory.tools"}

__getattr__ = lazy_exports(__name__, _LAZY)
