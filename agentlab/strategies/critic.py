"""CRITIC: answer, verify the answer with tools, critique it, revise — until the critique finds nothing
to fix or `max_rounds` revisions were made.

The first answer comes from an inner strategy (ReAct by default; a name, a factory or an instance), driven
as a child: its steps pass through until it answers, and that answer becomes the draft instead of ending
the run. A
verifier (a ReAct conversation over the same tools) checks the draft; a critique (one JSON object) judges
it from the checks' results and may propose a revision, which is verified again. Every draft, critique and
revision is reported as a note; the last note says whether the final answer was verified, i.e. judged
correct after at least one successful tool check.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.strategies.base import (
    CompositeStrategy,
    Conclusion,
    ModelDecision,
    Observation,
    StrategyContext,
)
from agentlab.strategies.dialogue import Dialogue, ToolDialogue
from agentlab.strategies.grounding import numeric_answer_type
from agentlab.strategies.registry import StrategySpec, strategy_factory

VERIFY_SYSTEM = (
    "You check answers with tools. Each step: think briefly, then call one tool that tests the answer, "
    "or call final_answer with what the checks showed: is the answer right or wrong, and why."
)
VERIFY_PROMPT = "Verify this answer to the task using the tools.\nTask: {task}\nAnswer: {answer}"
REVERIFY_PROMPT = "Revised answer: {answer}\nVerify it using the tools."
CRITIQUE_SYSTEM = "You judge an answer from the results of checks. Trust tool results over the answer."
CRITIQUE_PROMPT = (
    "Task: {task}\nAnswer: {answer}\nChecks:\n{evidence}\n"
    "Is the answer correct? If not, put the corrected answer in revised_answer."
)
MAX_EVIDENCE_CHARS = 300  # per tool result quoted to the critique

Phase = Literal["draft", "verify", "critique", "done"]


class Critique(BaseModel):
    """Judge the answer."""

    # maxLength bounds generation under a grammar without rejecting longer replies from other models.
    critique: str = Field(description="What the checks show about the answer.", json_schema_extra={"maxLength": 300})
    correct: bool = Field(description="True if the answer needs no change.")
    revised_answer: str = Field(
        description="The corrected answer, or the same answer if correct.", json_schema_extra={"maxLength": 200}
    )


class NumericCritique(Critique):
    """Judge the answer."""

    # A run whose answer is a number (`output_type=float`/`int`) gets its revision as one: a small model
    # filled the free text with "16, 16, 16, ..." and "5.5, Revised Answer: 5.5, ..." (GSM8K).
    revised_answer: float = Field(description="The corrected answer, or the same answer if correct.")  # type: ignore[assignment]


class Verifier(ToolDialogue):
    """The verifier's conversation, keeping the successful tool results of the current round as evidence."""

    name = "verifier"

    def __init__(self) -> None:
        super().__init__(VERIFY_SYSTEM)
        self.evidence: list[str] = []

    def observe(self, observations: list[Observation]) -> None:
        self.evidence += [
            f"{o.call.name}({json.dumps(o.call.arguments, ensure_ascii=False)}) -> "
            f"{o.output.content[:MAX_EVIDENCE_CHARS]}"
            for o in observations
            if o.output.ok
        ]
        super().observe(observations)


class Critic(CompositeStrategy):
    """Options: `inner` (the drafting strategy: a name in STRATEGIES, a factory or an instance) with
    `inner_options` for a name or a factory; `max_rounds` (revisions, >= 0); `max_verify_steps` (tool
    steps per verification, >= 1)."""

    name = "critic"

    def __init__(
        self,
        inner: StrategySpec = "react",
        *,
        max_rounds: int = 2,
        max_verify_steps: int = 3,
        inner_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if max_rounds < 0 or max_verify_steps < 1:
            raise ValueError("max_rounds must be >= 0 and max_verify_steps >= 1")
        self.inner = strategy_factory(inner, inner_options)()
        self.max_rounds = max_rounds
        self.max_verify_steps = max_verify_steps
        self.phase: Phase = "draft"
        self.answer: str | None = None  # the latest draft or revision
        self.verified = False
        self.revisions = 0
        self._verify_steps = 0
        self._report = ""
        self._critique_posed = False

    def extra_tools(self) -> list[Any]:
        """The inner strategy's own tools (e.g. PAL's program runner) come along."""
        return self.inner.extra_tools()

    def close(self) -> None:
        """Release what the inner strategy held (a CodeAct draft's sandbox session)."""
        self.inner.close()

    def start(self, context: StrategyContext) -> None:
        self.context = context
        self.inner.start(context)
        self.verifier = Verifier()
        self.critic = Dialogue(CRITIQUE_SYSTEM, context.decision_format)
        self._critique = NumericCritique if numeric_answer_type(context.output_schema) else Critique

    def next_step(self) -> ModelRequest | Conclusion:
        if self.phase == "draft":
            step = self.ask(self.inner, then=self._drafted)
            if not isinstance(step, Conclusion):
                return step
            self._take_draft(step.answer or "")
        if self.phase == "verify":
            if self._verify_steps < self.max_verify_steps:
                self._verify_steps += 1
                return self.ask(self.verifier, then=self._checked)
            self.note(
                "verification step limit reached; critiquing with the checks so far",
                phase="verify",
                steps=self._verify_steps,
            )
            self._report = "The checks did not finish."
            self.phase = "critique"
        if self.phase == "critique":
            if not self._critique_posed:
                self.critic.say(self._critique_prompt())
                self._critique_posed = True
            return self.expect(self.critic.request(self._critique, "critique"), self._judge, self.critic.reject)
        return Conclusion(self.answer or "")

    def best_answer(self) -> str | None:
        return self.answer if self.answer is not None else self.inner.best_answer()

    # --- phases ----------------------------------------------------------------------------------------

    def _drafted(self, decision: ModelDecision) -> ModelDecision:
        answer = decision.final_answer or ""
        self._take_draft(answer)
        return ModelDecision(thought=_join(decision.thought, f"Draft answer: {answer}"))

    def _checked(self, decision: ModelDecision) -> ModelDecision:
        report = decision.final_answer or ""
        self.verifier.settle(report)
        self._report = report
        self.phase = "critique"
        return ModelDecision(thought=_join(decision.thought, f"Verification: {report}"))

    def _take_draft(self, answer: str) -> None:
        self.answer = answer
        self.note(f"draft: {answer}", phase="draft", answer=answer, verified=False)
        self._verify(VERIFY_PROMPT.format(task=self.context.task, answer=answer), first=True)

    def _verify(self, prompt: str, *, first: bool = False) -> None:
        self._verify_steps, self.verifier.evidence, self._report = 0, [], ""
        if not len(self.context.tools):
            self.phase = "critique"  # nothing to verify with: the critique alone decides
        elif first:
            self.verifier.start(self.context.for_role(prompt))
            self.phase = "verify"
        else:
            self.verifier.say(prompt)
            self.phase = "verify"
        self._critique_posed = False

    def _critique_prompt(self) -> str:
        evidence_lines = self.verifier.evidence
        checks = [*evidence_lines, f"Verifier: {self._report}"] if self._report else evidence_lines
        evidence = "\n".join(f"- {line}" for line in checks) or "- No checks were run."
        return CRITIQUE_PROMPT.format(task=self.context.task, answer=self.answer, evidence=evidence)

    def _judge(self, response: ModelResponse) -> ModelDecision:
        critique = self.critic.read(response, self._critique)
        answer = self.answer or ""
        checked = bool(self.verifier.evidence)
        revised = _as_text(critique.revised_answer)
        correct = critique.correct or not revised or _same(revised, answer)
        self.critic.record(critique.model_dump_json())
        self.note(
            f"critique: {'correct' if correct else 'incorrect'} — {critique.critique}",
            phase="critique",
            answer=answer,
            critique=critique.critique,
            correct=correct,
            verified=checked and correct,
        )
        thought = f"Critique: {critique.critique}"
        if correct or self.revisions >= self.max_rounds:
            if not correct:
                self.answer = revised  # out of rounds: the latest revision, unverified
                self.note(
                    f"revision (unverified, out of rounds): {revised}", phase="revision", answer=revised, verified=False
                )
            self.verified = correct and checked
            self.phase = "done"
            self.note(
                f"final answer {'verified' if self.verified else 'not verified'}",
                phase="final",
                answer=self.answer,
                verified=self.verified,
                revisions=self.revisions,
            )
            return ModelDecision(thought=thought, final_answer=self.answer)
        self.revisions += 1
        self.answer = revised
        self.note(f"revision {self.revisions}: {revised}", phase="revision", answer=revised, verified=False)
        self._verify(REVERIFY_PROMPT.format(answer=revised))
        return ModelDecision(thought=_join(thought, f"Revised answer: {revised}"))


def _as_text(value: str | float) -> str:
    """A revised answer as text: a number without a needless ".0" (16.0 -> "16"), so that it equals a draft
    of the same value."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value.strip()


def _same(revised: str, answer: str) -> bool:
    """Whether a revision says what the answer said: the same number ("16" and "16.0"), or the same text."""
    try:
        return float(revised) == float(answer)
    except ValueError:
        return revised == answer.strip()


def _join(*parts: str) -> str:
    return "\n".join(part.strip() for part in parts if part.strip())
