"""The strategy protocol: a strategy decides what to ask the model and what its reply means.

Strategies do no I/O: the loop calls the model and runs the tools, the strategy builds requests,
interprets replies and folds observations into its own conversation state. One instance serves one run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agentlab.decisions import DecisionError, ModelDecision
from agentlab.events import Status, ToolCall
from agentlab.models.base import DecisionFormat, ModelRequest, ModelResponse

if TYPE_CHECKING:
    from agentlab.tools import ToolOutput, ToolRegistry


class StrategyFailed(RuntimeError):
    """The strategy cannot make progress (e.g. repairs exhausted); the run ends with status `error`."""


@dataclass
class StrategyContext:
    task: str
    tools: ToolRegistry
    decision_format: DecisionFormat
    instructions: str | None = None  # extra system guidance from the user
    max_steps: int | None = None  # the run's step budget, so a strategy can plan its last step


@dataclass
class Observation:
    call: ToolCall
    output: ToolOutput


@dataclass
class Conclusion:
    """Returned by `next_step` when the strategy ends the run without asking the model again:
    with its answer (`done`), or with the best answer it has when it had to stop (e.g. `stalled`)."""

    answer: str | None
    status: Status = "done"


class Strategy(Protocol):
    name: str

    def start(self, context: StrategyContext) -> None: ...

    def next_step(self) -> ModelRequest | Conclusion: ...

    def interpret(self, response: ModelResponse) -> ModelDecision:
        """Turn a reply into a decision, raising DecisionError for malformed output."""
        ...

    def observe(self, observations: list[Observation]) -> None: ...

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        """Tell the model why its reply was unusable, so the next request can repair it."""
        ...

    def best_answer(self) -> str | None: ...

    # Optional: `episode`, a hashable naming the sub-task a strategy is on (e.g. BabyAGI's task id); the
    # loop's stall check only compares actions within one episode.

    def notes(self) -> list[tuple[str, dict[str, Any]]]:
        """Phase changes and other facts worth a trace line since the last call (drained by the loop)."""
        ...


def switch_format(strategy: Strategy, fmt: DecisionFormat) -> bool:
    """Ask `strategy` to request decisions in `fmt` from now on, keeping its conversation (optional
    `switch_format(fmt)`: the loop calls it when replies keep coming in another shape than asked, or a
    fallback model takes another format). False when the strategy cannot switch."""
    switch = getattr(strategy, "switch_format", None)
    if switch is None:
        return False
    switch(fmt)
    return True


def extra_tools(strategy: Strategy) -> list[Any]:
    """Tools a strategy brings to its own runs (e.g. PAL's sandbox runner); optional `extra_tools()`."""
    provide = getattr(strategy, "extra_tools", None)
    return list(provide()) if provide is not None else []
