"""Two baselines as tiny strategies, so they run through the same loop (events, budgets, usage) as the rest:
`direct` asks for the answer alone, `cot` for step-by-step reasoning ending in an "Answer:" line.
Both ask for plain text and ignore the tools.
"""

from __future__ import annotations

import re
from typing import Any

from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.strategies import Conclusion, DecisionError, ModelDecision, Observation, StrategyContext

DIRECT_SYSTEM = "Answer the question. Reply with the final answer only: no explanation."
COT_SYSTEM = (
    "Answer the question. Think step by step, then give the final answer on a last line that starts with 'Answer:'."
)
_ANSWER_LINE = re.compile(r"answer\s*(?:is)?\s*[:=]\s*(.+)", re.IGNORECASE)


class _OneShot:
    """One plain-text request; the reply (or the part of it the subclass picks) is the final answer."""

    name = "one-shot"
    system = DIRECT_SYSTEM

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def start(self, context: StrategyContext) -> None:
        system = self.system + (f"\n{context.instructions}" if context.instructions else "")
        self.messages = [{"role": "system", "content": system}, {"role": "user", "content": context.task}]

    def next_step(self) -> ModelRequest | Conclusion:
        return ModelRequest(messages=list(self.messages))

    def interpret(self, response: ModelResponse) -> ModelDecision:
        text = (response.content or "").strip()
        if not text:
            raise DecisionError("Empty reply. Reply with the answer.")
        return ModelDecision(thought="", final_answer=self.answer_in(text))

    def answer_in(self, text: str) -> str:
        return text

    def observe(self, observations: list[Observation]) -> None:
        pass  # no tools are offered, so there is nothing to observe

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        self.messages += [
            {"role": "assistant", "content": response.content or ""},
            {"role": "user", "content": f"Error: {error}"},
        ]

    def best_answer(self) -> str | None:
        return None

    def notes(self) -> list[tuple[str, dict[str, Any]]]:
        return []


class DirectAnswer(_OneShot):
    name = "direct"
    system = DIRECT_SYSTEM


class ChainOfThought(_OneShot):
    name = "cot"
    system = COT_SYSTEM

    def answer_in(self, text: str) -> str:
        """The last "Answer: ..." line; without one, the whole reply (the scorer takes its last number)."""
        found = _ANSWER_LINE.findall(text)
        return found[-1].strip() if found else text


BASELINES = {"direct": DirectAnswer, "cot": ChainOfThought}
