"""`remember`, `recall` and `plan`: a `MemoryStore` offered to any agent as tools."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from agentlab.memory.store import MemoryStore, ScoredMemory
from agentlab.tools.function_tool import Tool, tool


def memory_tools(store: MemoryStore) -> list[Tool[..., Any]]:
    """`[remember, recall]` bound to `store`, plus `plan` when the store has a model to plan with."""

    @tool(
        name="remember",
        description="Store a fact, observation or lesson in long-term memory so it can be recalled later.",
        timeout=60.0,  # rating importance or reflecting may call the model
    )
    async def remember(text: str, importance: Annotated[int, Field(ge=1, le=10)] | None = None) -> str:
        """Remember something.

        Args:
            text: What to remember, self-contained (it will be read without today's context).
            importance: 1 (trivial) to 10 (crucial); leave out to have it rated.
        """
        memory = await store.aadd(text, importance)
        return f"Remembered as #{memory.id} (importance {memory.importance:g})."

    @tool(
        name="recall",
        description="Search long-term memory: the most relevant, important and recent memories for a query.",
        timeout=30.0,
    )
    def recall(query: str, k: Annotated[int, Field(ge=1, le=20)] = 5) -> str:
        """Recall memories.

        Args:
            query: What to look for, in keywords or a question.
            k: How many memories to return (1-20).
        """
        found = store.retrieve(query, k)
        if not found:
            return "Memory is empty."
        return "\n".join(_line(s, store.clock()) for s in found)

    @tool(
        name="plan",
        description="Make a short ordered plan for a goal from what long-term memory knows; the steps are remembered.",
        timeout=60.0,
    )
    async def plan(goal: str) -> str:
        """Plan towards a goal.

        Args:
            goal: What the plan should achieve, self-contained.
        """
        steps = await store.aplan(goal)
        if not steps:
            return f"No plan was made: {store.last_plan_error}"
        return "\n".join(f"#{m.id} {m.text}" for m in steps)

    return [remember, recall, plan] if store.model is not None else [remember, recall]


def _line(scored: ScoredMemory, now: float) -> str:
    memory = scored.memory
    age = _age(now - memory.created_at)
    return f"#{memory.id} [{memory.kind}, importance {memory.importance:g}, {age}] {memory.text}"


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit} ago"
    return "just now"
