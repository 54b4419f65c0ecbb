"""Self-consistency: run a strategy several times at a sampling temperature and answer with the most common
final answer (Wang et al., 2022).

Each sample is a fresh run of the inner strategy (ReAct by default; a name or a factory, never an instance),
driven as a child: its steps and tool calls pass through, and its final answer becomes a vote
instead of ending the run. Answers are compared by what they say, not how they are spelt: a typed answer by
its arguments (`{"answer": 312}` and `{"answer": 312.0}` are one vote), a text answer with case and spacing
folded. Sampling stops early once no other answer can catch up with the leader. A sample that fails (its
strategy gives up, or the loop catches it repeating a call) casts no vote; the run fails only when none
voted. Each sample is told an equal share of the run's step budget as its own, so a strategy that plans its
last step (ReAct) answers within it.

On a deterministic model (greedy decoding) every sample would be the same run, so the samples ask for
`temperature` (0.7 by default); a request that already sets one keeps it.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from typing import Any

from agentlab.models.base import ModelRequest
from agentlab.strategies.base import (
    CompositeStrategy,
    Conclusion,
    ModelDecision,
    Observation,
    StrategyBase,
    StrategyContext,
    StrategyFailed,
)
from agentlab.strategies.child_tools import children_tools
from agentlab.strategies.registry import StrategySpec, strategy_factory


class Vote(CompositeStrategy):
    """Options: `inner` (the sampled strategy: a name in STRATEGIES or a factory, such as a class) with
    `inner_options`; `samples` (runs that vote, >= 1); `temperature` (for the samples' requests)."""

    name = "vote"

    def __init__(
        self,
        inner: StrategySpec = "react",
        *,
        samples: int = 5,
        temperature: float = 0.7,
        inner_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if samples < 1:
            raise ValueError("samples must be >= 1")
        if not isinstance(inner, str | type) and callable(getattr(inner, "next_step", None)):
            raise TypeError("inner must be a name or a factory, not an instance: every sample needs a fresh one")
        self.make_inner = strategy_factory(inner, inner_options)
        self.samples = samples
        self.temperature = temperature
        self.current: StrategyBase = self.make_inner()
        # Every sample is kept: the loop tells sub-tasks apart by their strategy's identity (`episode`), and a
        # dropped sample's id could be reused by the next one, whose first call would then look like a repeat.
        self.runs: list[StrategyBase] = [self.current]
        self.votes: Counter[str] = Counter()
        self.ballots: dict[str, ModelDecision] = {}  # the first decision of each distinct answer
        self.finished = 0  # samples that ended, with or without a vote

    def extra_tools(self) -> list[Any]:
        """The inner strategy's own tools (e.g. PAL's program runner) come along, each sample's its own."""
        return children_tools(self.current, lambda: self.current)

    def close(self) -> None:
        """Release what every sample held (a CodeAct sample's sandbox session)."""
        for sample in self.runs:
            sample.close()

    def start(self, context: StrategyContext) -> None:
        self.context = context
        # Each sample gets an equal share of the run's step budget, so a sample that plans its last step
        # (ReAct asks for the final answer then) answers within its share and leaves room for the others.
        share = None if context.max_steps is None else max(1, context.max_steps // self.samples)
        self.sample_context = dataclasses.replace(context, max_steps=share)
        self.current.start(self.sample_context)

    def next_step(self) -> ModelRequest | Conclusion:
        while not self._decided():
            try:
                step = self.ask(self.current, then=self._counted)
            except StrategyFailed as failure:
                self.note(f"sample {self.finished + 1} failed: {failure}", sample=self.finished + 1)
                self._next_sample()
                continue
            if isinstance(step, Conclusion):  # the sample ended without asking the model
                if step.status == "done":
                    self._count(ModelDecision(final_answer=step.answer or ""))
                else:
                    self.note(f"sample {self.finished + 1} ended {step.status}", sample=self.finished + 1)
                    self._next_sample()
                continue
            if step.temperature is None:
                step = dataclasses.replace(step, temperature=self.temperature)
            return step
        if not self.votes:
            raise StrategyFailed(f"none of the {self.finished} samples gave an answer")
        return Conclusion(self._verdict().final_answer)

    def observe(self, observations: list[Observation]) -> None:
        """A sample the loop caught repeating itself (its one nudge) is abandoned for the next sample: left to
        repeat again it would end the whole run as `stalled`, and the other samples may still answer."""
        super().observe(observations)
        if any(o.repeated for o in observations) and not self._decided():
            self.note(f"sample {self.finished + 1} repeated itself; moving on", sample=self.finished + 1)
            self._next_sample()

    def best_answer(self) -> str | None:
        if self.votes:
            return self.ballots[self.votes.most_common(1)[0][0]].final_answer
        return self.current.best_answer()

    def _counted(self, decision: ModelDecision) -> ModelDecision:
        """A sample's final answer: a vote, and the run's final answer once the vote is decided (with the
        sample's arguments, so the loop checks them against the output type as usual)."""
        self._count(decision)
        if self._decided():
            return self._verdict()
        return ModelDecision(thought=f"Sample {self.finished} of {self.samples} answered: {decision.final_answer}")

    def _count(self, decision: ModelDecision) -> None:
        key = _ballot_key(decision)
        self.votes[key] += 1
        self.ballots.setdefault(key, decision)
        self.note(f"sample {self.finished + 1}: {decision.final_answer}", sample=self.finished + 1, vote=key)
        self._next_sample()

    def _verdict(self) -> ModelDecision:
        key, count = self.votes.most_common(1)[0]
        self.note(f"self-consistency vote: {count} of {self.finished}", votes=dict(self.votes), answer=key)
        winner = self.ballots[key]
        return ModelDecision(
            thought=f"{count} of {self.finished} samples agree.",
            final_answer=winner.final_answer,
            final_arguments=winner.final_arguments,
        )

    def _next_sample(self) -> None:
        self.finished += 1
        if not self._decided():
            self.current = self.make_inner()
            self.runs.append(self.current)
            self.current.start(self.sample_context)

    def _decided(self) -> bool:
        """All samples are in, or the leader cannot be caught by the samples still to come."""
        left = self.samples - self.finished
        if left <= 0:
            return True
        ranked = self.votes.most_common(2)
        if not ranked:
            return False
        runner_up = ranked[1][1] if len(ranked) > 1 else 0
        return ranked[0][1] > runner_up + left


def _ballot_key(decision: ModelDecision) -> str:
    """What an answer says: its arguments (or its text) with numbers compared by value and text with case
    and spacing folded."""
    said = decision.final_arguments if decision.final_arguments is not None else decision.final_answer or ""
    return json.dumps(_by_value(said), sort_keys=True)


def _by_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _by_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_by_value(item) for item in value]
    if isinstance(value, str):
        text = " ".join(value.split()).casefold()
        try:
            return float(text)  # "312" and "312.0" say the same
        except ValueError:
            return text
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value
