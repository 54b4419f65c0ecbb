"""The memory stream's model calls: rate a memory's importance, distil recent memories into insights,
turn a goal and what memory knows about it into a plan.

Each asks for one JSON object through `decisions.structured_request`, so they work with native tool
calls, `response_format` schemas or plain JSON, whatever the model supports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field, StringConstraints

from agentlab.decisions import read_structured, structured_request

if TYPE_CHECKING:
    from agentlab.memory.store import Memory
    from agentlab.models.base import Model

RATE_SYSTEM = (
    "You rate how much a memory will matter later, from 1 to 10: 1 is routine and forgettable (small talk, "
    "a step that went as expected), 10 is crucial (a hard requirement, a decisive fact, a serious failure)."
)
REFLECT_SYSTEM = (
    "You read an agent's recent memories and write a few high-level insights: conclusions, patterns or "
    "lessons that follow from several memories and will help later. Each insight names the numbers of "
    "the memories it draws on and rates its own importance from 1 to 10. Do not restate single memories."
)

PLAN_SYSTEM = (
    "You plan how to reach a goal. Using the agent's memories where they help, write a short ordered list "
    "of concrete steps, each one action, the first step first."
)


class ImportanceRating(BaseModel):
    """How much the memory will matter later."""

    importance: int = Field(ge=1, le=10)


class Insight(BaseModel):
    text: str = Field(min_length=1)
    sources: list[int] = Field(description="numbers of the memories this insight draws on")
    importance: int = Field(ge=1, le=10)


class Insights(BaseModel):
    """High-level insights drawn from the numbered memories."""

    insights: list[Insight]


class PlanSteps(BaseModel):
    """The steps that reach the goal, in order."""

    steps: list[Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]] = Field(min_length=1)


async def rate_importance(model: Model, text: str) -> int:
    """One model call; raises ModelError or DecisionError when no usable rating comes back."""
    fmt = (await model.capabilities()).best_format()
    messages = [{"role": "system", "content": RATE_SYSTEM}, {"role": "user", "content": f"Memory: {text}"}]
    response = await model.complete(structured_request(messages, ImportanceRating, fmt, name="rate_importance"))
    return read_structured(response, ImportanceRating).importance


async def reflect(model: Model, memories: Sequence[Memory], max_insights: int) -> list[tuple[Insight, list[int]]]:
    """Insights about `memories`, each with the ids of the memories it cites (unknown numbers dropped)."""
    fmt = (await model.capabilities()).best_format()
    numbered = "\n".join(f"{n}. {m.text}" for n, m in enumerate(memories, 1))
    messages = [
        {"role": "system", "content": REFLECT_SYSTEM},
        {"role": "user", "content": f"Memories:\n{numbered}\n\nWrite at most {max_insights} insights."},
    ]
    response = await model.complete(structured_request(messages, Insights, fmt, name="write_insights"))
    found = read_structured(response, Insights).insights[:max_insights]
    by_number = {n: m.id for n, m in enumerate(memories, 1)}
    return [(i, sorted({by_number[n] for n in i.sources if n in by_number})) for i in found]


async def plan(model: Model, goal: str, memories: Sequence[Memory], max_steps: int) -> list[str]:
    """At most `max_steps` steps towards `goal`, drawing on `memories`; raises ModelError or DecisionError
    when no usable plan comes back."""
    fmt = (await model.capabilities()).best_format()
    known = "\n".join(f"- {m.text}" for m in memories) or "(nothing relevant)"
    messages = [
        {"role": "system", "content": PLAN_SYSTEM},
        {"role": "user", "content": f"Goal: {goal}\n\nWhat memory knows:\n{known}\n\nWrite at most {max_steps} steps."},
    ]
    response = await model.complete(structured_request(messages, PlanSteps, fmt, name="write_plan"))
    return read_structured(response, PlanSteps).steps[:max_steps]
