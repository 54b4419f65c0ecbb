"""The agent loop: one async event stream; `arun`, `run` and `stream` are thin wrappers around it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agentlab import events as ev
from agentlab._sync import iterate_sync, run_sync
from agentlab.decisions import ModelDecision
from agentlab.events import Status, ToolCall, Usage
from agentlab.models.base import DecisionFormat, Model, ModelError, ModelRequest, ModelResponse
from agentlab.strategies import (
    Conclusion,
    DecisionError,
    Observation,
    StrategyBase,
    StrategyContext,
    StrategyFailed,
    StrategySpec,
    strategy_factory,
)
from agentlab.tools import ApprovalCallback, ToolOutput, ToolRegistry

T = TypeVar("T")

STALL_NUDGE = (
    "You already made this exact call; its result is above. Do something different, "
    "or call final_answer with what you know."
)


@dataclass
class RunResult:
    """What a finished run returns: its answer and status, and every event it yielded."""

    answer: str | None
    status: Status
    steps: int
    usage: Usage
    duration: float
    events: list[ev.Event] = field(default_factory=list)
    error: str | None = None

    @property
    def trace(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.events]


class BudgetExceeded(Exception):
    """Ends a run cleanly when a budget runs out (control flow, not a failure)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class RepeatGuard:
    """Stall detection: the same tool calls with the same arguments again (within one episode of the
    strategy) are refused with a nudge the first time and end the run the second time."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self.nudged = False

    def check(self, episode: object, calls: list[ToolCall]) -> str:
        """ "new", "nudge" or "stop"."""
        if not calls:
            return "new"
        signature = json.dumps([episode, [[c.name, c.arguments] for c in calls]], sort_keys=True, default=str)
        if signature not in self.seen:
            self.seen.add(signature)
            return "new"
        if self.nudged:
            return "stop"
        self.nudged = True
        return "nudge"


class RunState:
    """What one run carries from step to step. Events that arise inside a step (retries of a model call,
    a strategy's notes) are `emit`ted here and yielded by the loop at the step's next boundary, so a new
    kind of event needs no new plumbing."""

    def __init__(self, task: str, strategy: StrategyBase, tools: ToolRegistry, deadline: float | None) -> None:
        self.task, self.strategy, self.tools, self.deadline = task, strategy, tools, deadline
        self.started = time.monotonic()
        self.format: DecisionFormat = "json"
        self.usage = Usage()
        self.step = 0
        self.parse_failures = 0
        self.repeats = RepeatGuard()
        self.answer: str | None = None
        self.status: Status | None = None  # set when the run ends
        self.error: str | None = None
        self._outbox: list[ev.Event] = []

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

    def end(self, status: Status, answer: str | None = None, error: str | None = None) -> None:
        """End the run; a `done` run reports its answer as a `Final` event."""
        self.status, self.answer, self.error = status, answer, error
        if status == "done":
            self.emit(ev.Final(self.step, answer or ""))


class Agent:
    """A tool-using agent: a model, tools and a strategy, run under budgets. Options beyond the ones named
    here go to the strategy (e.g. `max_rounds=1` for `strategy="critic"`) and are checked against its
    constructor when the agent is built."""

    def __init__(
        self,
        model: Model | None = None,
        tools: Iterable[Any] = (),
        strategy: StrategySpec = "react",
        *,
        max_steps: int | None = 10,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        approve: ApprovalCallback | None = None,
        instructions: str | None = None,
        trace: str | Path | None = None,
        max_parse_failures: int = 2,
        **strategy_options: Any,
    ) -> None:
        for name, limit, kind in (
            ("max_steps", max_steps, int),
            ("max_tokens", max_tokens, int),
            ("max_seconds", max_seconds, float),
            ("max_parse_failures", max_parse_failures, int),
        ):
            _check_limit(name, limit, kind)
        if approve is not None and not callable(approve):
            raise TypeError(f"approve must be a callable or None, not {type(approve).__name__}")
        if instructions is not None and not isinstance(instructions, str):
            raise TypeError(f"instructions must be a str or None, not {type(instructions).__name__}")
        if model is None:
            from agentlab.models import default_model

            model = default_model()
        self.model = model
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.strategy = strategy
        self.strategy_options = strategy_options
        # Instances are not shared between runs: an instance given here must come from a factory.
        self._new_strategy = strategy_factory(_factory_of(strategy), strategy_options)
        if isinstance(strategy, str):
            self._new_strategy()  # built once and dropped: the strategy's own checks (e.g. max_rounds >= 0) fail now
        self.max_steps, self.max_tokens, self.max_seconds = max_steps, max_tokens, max_seconds
        self.approve = approve
        self.instructions = instructions
        self.trace_path = Path(trace) if trace else None
        self.max_parse_failures = max_parse_failures

    async def astream(self, task: str) -> AsyncGenerator[ev.Event, None]:
        """Yield the run's events as they happen; the last one is always `RunFinished`."""
        from agentlab.trace import JsonlTrace

        trace = JsonlTrace(self.trace_path) if self.trace_path else None
        try:
            async for event in self._loop(task):
                # A trace that cannot be written is said once, after the event it failed on (before
                # `RunFinished`, which stays last), and the run goes on.
                failure = trace.write(event) if trace else None
                if failure and isinstance(event, ev.RunFinished):
                    yield ev.RunWarning(failure)
                yield event
                if failure and not isinstance(event, ev.RunFinished):
                    yield ev.RunWarning(failure)
        finally:
            if trace:
                trace.close()

    # --- the loop: run → step → ask the model, read the decision, act ----------------------------------

    async def _loop(self, task: str) -> AsyncIterator[ev.Event]:
        run = self._prepare(task)
        tools = run.tools
        yield ev.RunStarted(task, run.strategy.name, self.model.name, tools.names(), tools.schemas())
        try:
            await self._start(run)
            while not run.over:
                async for event in self._step(run):
                    yield event
        except BudgetExceeded as stop:
            run.end(stop.status, error=str(stop))
        except (ModelError, StrategyFailed) as failure:
            run.end("error", error=str(failure))
        except Exception as bug:  # a run always ends with its trace and a status, even on our own bugs
            run.end("error", error=f"{type(bug).__name__}: {bug}")
        for event in run.drain():  # e.g. the retries of a model call that failed
            yield event
        yield self._finish(run)

    def _prepare(self, task: str) -> RunState:
        strategy = self._new_strategy()
        extra = strategy.extra_tools()  # e.g. PAL's program runner: part of this run's tools and its trace
        tools = ToolRegistry([*self.tools, *extra]) if extra else self.tools
        deadline = time.monotonic() + self.max_seconds if self.max_seconds is not None else None
        return RunState(task, strategy, tools, deadline)

    async def _start(self, run: RunState) -> None:
        run.format = (await self.model.capabilities()).best_format()
        run.strategy.start(StrategyContext(run.task, run.tools, run.format, self.instructions, self.max_steps))

    async def _step(self, run: RunState) -> AsyncIterator[ev.Event]:
        """One step: the strategy's next request, the model's reply, the decision read from it, the action."""
        request = run.strategy.next_step()
        run.take_notes()
        if isinstance(request, Conclusion):
            run.end(request.status, request.answer)
        for event in run.drain():
            yield event
        if isinstance(request, Conclusion):
            return
        self._check_budgets(run)
        response = await self._query(run, request)
        for event in run.drain():
            yield event
        decision = self._read_decision(run, response)
        for event in run.drain():
            yield event
        if decision is not None and not run.over:
            async for event in self._act(run, decision):
                yield event

    async def _query(self, run: RunState, request: ModelRequest) -> ModelResponse:
        """Ask the model, within the run's deadline; its retries and the call itself become events."""
        run.step += 1
        started = time.monotonic()
        response: ModelResponse = await self._within(
            run.deadline, self.model.complete(request, lambda n, e, w: run.emit(ev.ModelRetry(n, e, w)))
        )
        run.usage += response.usage
        chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        duration = time.monotonic() - started
        run.emit(ev.ModelCall(run.step, len(request.messages), chars, response.usage, duration, run.format))
        return response

    def _read_decision(self, run: RunState, response: ModelResponse) -> ModelDecision | None:
        """The strategy's decision from the reply, or None when the reply was rejected for a repair round
        (the run fails after `max_parse_failures` unusable replies in a row)."""
        try:
            decision = run.strategy.interpret(response)
        except DecisionError as bad:
            run.parse_failures += 1
            run.emit(ev.ParseError(run.step, str(bad), (response.content or "")[:2000]))
            if run.parse_failures >= self.max_parse_failures:
                raise ModelError(f"the model's reply could not be parsed {run.parse_failures} times: {bad}") from bad
            run.strategy.reject(response, bad)
            return None
        run.parse_failures = 0
        run.emit(ev.Decision(run.step, decision.thought, decision.tool_calls, decision.final_answer))
        run.take_notes()
        if decision.final_answer is not None:
            run.end("done", decision.final_answer)
        return decision

    async def _act(self, run: RunState, decision: ModelDecision) -> AsyncIterator[ev.Event]:
        """Run the decision's tool calls and hand their results to the strategy; a repeated call is refused
        with a nudge once, and ends the run as `stalled` the second time."""
        verdict = run.repeats.check(run.strategy.episode, decision.tool_calls)
        if verdict == "stop":
            run.end("stalled", error=f"repeated the same action: {decision.tool_calls[0].name}")
            return
        if verdict == "nudge":
            yield ev.Note(run.step, "stall: same action repeated; nudging the model once")
            refused = ToolOutput(False, STALL_NUDGE, "repeated")
            run.strategy.observe([Observation(c, refused) for c in decision.tool_calls])
            return
        observations: list[Observation] = []
        async for event in self._run_tools(run.tools, run.step, decision.tool_calls, run.deadline, observations):
            yield event
        run.strategy.observe(observations)

    def _finish(self, run: RunState) -> ev.RunFinished:
        """The last event: the answer (the strategy's best one when the run stopped early) and the status."""
        status: Status = run.status or "error"
        answer, error = run.answer, run.error
        if answer is None:
            try:
                answer = run.strategy.best_answer()
            except Exception as bug:  # the run still ends with a status, and says why it stopped first
                failed = f"best_answer failed: {type(bug).__name__}: {bug}"
                status, error = "error", f"{error}; {failed}" if error else failed
        return ev.RunFinished(status, answer, run.step, run.usage, time.monotonic() - run.started, error)

    def _check_budgets(self, run: RunState) -> None:
        if self.max_steps is not None and run.step >= self.max_steps:
            raise BudgetExceeded("max_steps", f"step budget of {self.max_steps} reached")
        if self.max_tokens is not None and run.usage.total_tokens >= self.max_tokens:
            raise BudgetExceeded("budget", f"token budget of {self.max_tokens} reached ({run.usage.total_tokens})")
        if run.deadline is not None and time.monotonic() >= run.deadline:
            raise self._out_of_time()

    def _out_of_time(self) -> BudgetExceeded:
        return BudgetExceeded("budget", f"time budget of {self.max_seconds}s exhausted")

    async def _within(self, deadline: float | None, awaitable: Any) -> Any:
        """Await `awaitable`, interrupted by the run's deadline; a `TimeoutError` of its own stays an error."""
        if deadline is None:
            return await awaitable
        scope = asyncio.timeout(max(0.0, deadline - time.monotonic()))
        try:
            async with scope:
                return await awaitable
        except TimeoutError:
            if scope.expired():
                raise self._out_of_time() from None
            raise

    async def _run_tools(
        self,
        tools: ToolRegistry,
        step: int,
        calls: list[ToolCall],
        deadline: float | None,
        observations: list[Observation],
    ) -> AsyncIterator[ev.Event]:
        """Run the step's tool calls concurrently, reporting each as it finishes."""

        async def invoke(index: int, call: ToolCall) -> tuple[int, ToolOutput]:
            output = await self._within(deadline, tools.invoke(call.name, call.arguments, approve=self.approve))
            return index, output

        for call in calls:
            yield ev.ToolStarted(step, call)
        # By position, not by call id: a server may give two calls of one step the same id.
        outputs: dict[int, ToolOutput] = {}
        for finished in asyncio.as_completed([invoke(i, c) for i, c in enumerate(calls)]):
            index, output = await finished
            outputs[index] = output
            yield ev.ToolResult(step, calls[index], output.ok, output.content, output.duration)
        observations += [Observation(c, outputs[i]) for i, c in enumerate(calls)]

    # --- the ways to run: all of them drain `astream` ------------------------------------------------

    async def arun(self, task: str) -> RunResult:
        """Run to the end and return the result with every event."""
        collected: list[ev.Event] = []
        async for event in self.astream(task):
            collected.append(event)
        end = collected[-1]
        assert isinstance(end, ev.RunFinished)
        return RunResult(end.answer, end.status, end.steps, end.usage, end.duration, collected, end.error)

    def run(self, task: str) -> RunResult:
        """Blocking `arun`; it also works where an event loop is already running (Jupyter, async apps)."""
        return run_sync(self._closing(self.arun(task)))

    async def _closing(self, work: Awaitable[T]) -> T:
        """Run `work`, then release the model's connections: the sync wrappers' event loop ends with it."""
        try:
            return await work
        finally:
            close = getattr(self.model, "aclose", None)
            if close is not None:
                await close()

    def stream(self, task: str) -> Iterator[ev.Event]:
        """Blocking iteration over `astream` on a private event loop; it also works where an event loop is
        already running (the private loop then runs in a helper thread)."""
        events = self.astream(task)
        return iterate_sync(events, lambda: self._closing(events.aclose()))


def _check_limit(name: str, value: object, kind: type) -> None:
    """None means no limit; a number must not be negative (0 stops before the first model call)."""
    if value is None:
        return
    allowed = (int, float) if kind is float else (int,)
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise TypeError(f"{name} must be {'a number' if kind is float else 'an int'} or None, not {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0 or None (no limit), not {value!r}")


def _factory_of(strategy: StrategySpec) -> StrategySpec:
    """The strategy spec an Agent keeps: a name or a factory. An instance is refused, since every run needs
    a fresh one."""
    if isinstance(strategy, (str, type)):
        return strategy
    if callable(getattr(strategy, "next_step", None)):
        raise TypeError(
            f"strategy must be a name or a factory, not a {type(strategy).__name__} instance (one instance serves "
            "one run); pass e.g. strategy=lambda: ..."
        )
    if not callable(strategy):
        raise TypeError(f"strategy must be a name or a factory, not {type(strategy).__name__}")
    return strategy
