"""One run's state from step to step, and the budgets it runs under.

The loop (agentlab/agent.py) keeps everything a run carries here: its strategy and tools, usage and cost so
far, the events a step emitted, and the checks that end a run when a budget runs out (`BudgetExceeded`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agentlab import events as ev
from agentlab.events import PendingCall, Status, ToolCall, Usage

if TYPE_CHECKING:
    from agentlab.decisions import FormatWatch
    from agentlab.models.base import DecisionFormat
    from agentlab.run.compaction import Compactor
    from agentlab.run.context import RunContext
    from agentlab.run.replay import Replay
    from agentlab.strategies import StrategyBase
    from agentlab.tools import ToolRegistry
    from agentlab.tools.function_tool import BaseTool


class BudgetExceeded(Exception):
    """Ends a run cleanly when a budget runs out (control flow, not a failure)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RepeatGuard:
    """Stall detection: the same tool calls with the same arguments again (within one episode of the
    strategy) are refused with a nudge the first time and end the run the second time, both counted per
    episode (a verifier that checks a draft with the call that produced it is not stalling). Calls to tools
    marked `repeatable` (a cursor, a status poll) are not counted."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.nudged: set[str] = set()  # the episodes whose model was nudged already

    def check(self, episode: object, calls: list[ToolCall]) -> str:
        """ "new", "nudge" or "stop"."""
        if not calls:
            return "new"
        where = json.dumps(episode, sort_keys=True, default=str)
        signature = json.dumps([where, [[c.name, c.arguments] for c in calls]], sort_keys=True, default=str)
        if signature not in self.seen:
            self.seen.add(signature)
            return "new"
        if where in self.nudged:
            return "stop"
        self.nudged.add(where)
        return "nudge"


class RunState:
    """What one run carries from step to step. Events that arise inside a step (retries of a model call,
    a strategy's notes) are `emit`ted here and yielded by the loop at the step's next boundary, so a new
    kind of event needs no new plumbing."""

    def __init__(
        self,
        task: str,
        strategy: StrategyBase,
        tools: ToolRegistry,
        deadline: float | None,
        context: RunContext[Any],
        history: list[dict[str, Any]],
    ) -> None:
        self.task, self.strategy, self.tools, self.deadline = task, strategy, tools, deadline
        self.context, self.history = context, history
        self.id = context.run_id
        self.started = time.monotonic()
        self.format: DecisionFormat = "json"
        self.formats: FormatWatch | None = None  # notices replies that keep coming in another format
        self.usage = Usage()
        self.step = 0
        self.parse_failures = 0
        self.output_failures = 0
        self.repeats = RepeatGuard()
        self.answer: str | None = None
        self.output: Any = None  # the typed output, JSON form
        self.max_steps: int | None = None  # the agent's budgets, bounded by a parent run's
        self.max_tokens: int | None = None
        self.max_seconds: float | None = None  # what `deadline` came from, for the message
        self.max_cost: float | None = None
        self.max_tool_calls: int | None = None
        self.tool_calls = 0  # made so far, against max_tool_calls
        self.sub_steps = 0  # model calls of the sub-agents its tools ran (`as_tool`), against max_steps
        self.cost: float | None = None  # so far, when the agent has a price table
        self.status: Status | None = None  # set when the run ends
        self.error: str | None = None
        self.replay: Replay | None = None  # a resumed run's record, served before anything is asked anew
        self.compactor: Compactor | None = None  # keeps requests within the context window
        self.recall: BaseTool[..., Any] | None = None  # callable from the start, offered after a compaction
        self._outbox: list[ev.Event] = []
        self.events: list[ev.Event] = []  # the run's own events so far: its conversation is rebuilt from them
        # While the run streams deltas (`context.deltas`): sends an event out at once, ahead of the step's end.
        self.live: Callable[[ev.Event], None] | None = None

    @property
    def over(self) -> bool:
        """Whether the run has ended (a status is set)."""
        return self.status is not None

    def emit(self, event: ev.Event) -> None:
        """Queue an event; the loop yields it at the step's next boundary."""
        self._outbox.append(event)

    def drain(self) -> list[ev.Event]:
        """The queued events, oldest first; the queue is left empty."""
        events, self._outbox = self._outbox, []
        return events

    def take_notes(self) -> None:
        """Queue the strategy's notes since the last call as `Note` events."""
        for text, data in self.strategy.notes():
            self.emit(ev.Note(self.step, text, data))

    def end(self, status: Status, answer: str | None = None, error: str | None = None, output: Any = None) -> None:
        """End the run; a `done` run reports its answer (and typed output, JSON form) as a `Final` event."""
        self.status, self.answer, self.error, self.output = status, answer, error, output
        if status == "done":
            self.emit(ev.Final(self.step, answer or "", output))

    def pause(self, pending: list[ToolCall]) -> None:
        """End the run as `paused`: these calls wait for a person's approval (`Agent.resume`)."""
        self.status = "paused"
        self.emit(ev.Paused(self.step, [PendingCall(c.id, c.name, c.arguments) for c in pending]))

    # --- budgets: each check ends the run with `BudgetExceeded` ------------------------------------------

    def check_budgets(self, *, steps: bool = True) -> None:
        """Raise `BudgetExceeded` when a budget is spent (the step budget only when `steps`)."""
        if steps and self.max_steps is not None and self.step + self.sub_steps >= self.max_steps:
            raise BudgetExceeded("max_steps", f"step budget of {self.max_steps} reached")
        if self.max_tokens is not None and self.usage.total_tokens >= self.max_tokens:
            raise BudgetExceeded("budget", f"token budget of {self.max_tokens} reached ({self.usage.total_tokens})")
        if self.max_cost is not None and (self.cost or 0.0) >= self.max_cost:
            raise BudgetExceeded("budget", f"cost limit of {self.max_cost:g} reached ({self.cost:.6g})")
        if self.deadline is not None and time.monotonic() >= self.deadline:
            raise self._out_of_time()

    def count_tool_calls(self, calls: list[ToolCall]) -> None:
        """Count the step's tool calls; past `max_tool_calls` none of them runs and the run ends."""
        if self.max_tool_calls is not None and self.tool_calls + len(calls) > self.max_tool_calls:
            made = f"{self.tool_calls} made, {len(calls)} more asked for"
            raise BudgetExceeded("budget", f"tool call limit of {self.max_tool_calls} reached ({made})")
        self.tool_calls += len(calls)

    def count_nested_tool_call(self) -> str | None:
        """Count a call a tool makes through the run's tools itself (CodeAct's code calling a tool): None when
        `max_tool_calls` allows it, else why not (the call is refused, and the run's next step ends it)."""
        if self.max_tool_calls is not None and self.tool_calls >= self.max_tool_calls:
            return f"the run's tool call limit of {self.max_tool_calls} is reached"
        self.tool_calls += 1
        return None

    async def within(self, awaitable: Any) -> Any:
        """Await `awaitable`, interrupted by the run's deadline; a `TimeoutError` of its own stays an error."""
        if self.deadline is None:
            return await awaitable
        scope = asyncio.timeout(max(0.0, self.deadline - time.monotonic()))
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise self._out_of_time() from None
            raise

    def _out_of_time(self) -> BudgetExceeded:
        return BudgetExceeded("budget", f"time budget of {self.max_seconds}s exhausted")

    def retry_recorder(self) -> Callable[[int, str, float], None]:
        """The model's retry callback: each retry of a call becomes a `ModelRetry` event of the run."""
        return lambda attempt, error, wait: self.emit(ev.ModelRetry(attempt, error, wait))
