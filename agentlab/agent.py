"""The agent loop: one async event stream; `arun`, `run` and `stream` are thin wrappers around it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from agentlab import events as ev
from agentlab._sync import run_sync
from agentlab.decisions import FormatWatch
from agentlab.events import Status, ToolCall, Usage
from agentlab.models.base import Capabilities, DecisionFormat, Model, ModelError, probe_capabilities
from agentlab.models.fallback import give_up
from agentlab.strategies import (
    Conclusion,
    DecisionError,
    Observation,
    Strategy,
    StrategyContext,
    StrategyFailed,
    create,
    extra_tools,
    switch_format,
)
from agentlab.tools import ApprovalCallback, ToolOutput, ToolRegistry

T = TypeVar("T")

STALL_NUDGE = (
    "You already made this exact call; its result is above. Do something different, "
    "or call final_answer with what you know."
)


@dataclass
class RunResult:
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


class Agent:
    def __init__(
        self,
        model: Model | None = None,
        tools: Iterable[Any] = (),
        strategy: str | Callable[[], Strategy] = "react",
        *,
        max_steps: int = 10,
        max_tokens: int | None = None,
        max_seconds: float | None = None,
        approve: ApprovalCallback | None = None,
        instructions: str | None = None,
        trace: str | Path | None = None,
        max_parse_failures: int = 2,
        **strategy_options: Any,
    ) -> None:
        if model is None:
            from agentlab.models import default_model

            model = default_model()
        self.model = model
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.strategy = strategy
        self.strategy_options = strategy_options
        self.max_steps, self.max_tokens, self.max_seconds = max_steps, max_tokens, max_seconds
        self.approve = approve
        self.instructions = instructions
        self.trace_path = Path(trace) if trace else None
        self.max_parse_failures = max_parse_failures

    def _new_strategy(self) -> Strategy:
        if isinstance(self.strategy, str):
            return create(self.strategy, **self.strategy_options)
        return self.strategy()

    async def astream(self, task: str) -> AsyncIterator[ev.Event]:
        """Yield the run's events as they happen; the last one is always `RunFinished`."""
        from agentlab.trace import JsonlTrace

        trace = JsonlTrace(self.trace_path) if self.trace_path else None
        try:
            async for event in self._loop(task):
                if trace:
                    trace.write(event)
                yield event
        finally:
            if trace:
                trace.close()

    async def _loop(self, task: str) -> AsyncIterator[ev.Event]:
        strategy = self._new_strategy()
        extra = extra_tools(strategy)  # e.g. PAL's program runner: part of this run's tools and its trace
        tools = ToolRegistry([*self.tools, *extra]) if extra else self.tools
        started = time.monotonic()
        deadline = started + self.max_seconds if self.max_seconds else None
        usage, step, answer, failures = Usage(), 0, None, 0
        repeats = RepeatGuard()
        retries: list[ev.Event] = []  # filled while a model call is retried, drained right after it
        status: Status = "error"
        error: str | None = None
        yield ev.RunStarted(task, getattr(strategy, "name", "custom"), self.model.name, tools.names(), tools.schemas())

        def record_retry(attempt: int, error: str, wait: float) -> None:
            retries.append(ev.ModelRetry(attempt, error, wait))

        try:
            # Probing is part of the run: its retries are events, its time counts against max_seconds.
            capabilities = await self._within(deadline, probe_capabilities(self.model, record_retry))
            for retry in retries:
                yield retry
            retries.clear()
            fmt, formats = capabilities.best_format(), FormatWatch(capabilities)
            strategy.start(StrategyContext(task, tools, fmt, self.instructions, self.max_steps))
            while True:
                request = strategy.next_step()
                for text, data in strategy.notes():
                    yield ev.Note(step, text, data)
                if isinstance(request, Conclusion):
                    answer, status = request.answer, request.status
                    if status == "done":
                        yield ev.Final(step, answer or "")
                    break
                self._check_budgets(step, usage, deadline)
                step += 1
                t0 = time.monotonic()
                try:
                    response = await self._within(deadline, self.model.complete(request, record_retry))
                except ModelError as failure:  # a FallbackModel moves on; any other model ends the run
                    fallback, capabilities = await self._fall_back(strategy, step, failure, deadline, record_retry)
                    fmt, formats = capabilities.best_format(), FormatWatch(capabilities)
                    for event in [*retries, fallback]:
                        yield event
                    retries.clear()
                    continue
                usage += response.usage
                for retry in retries:
                    yield retry
                retries.clear()
                chars = sum(len(str(m.get("content") or "")) for m in request.messages)
                yield ev.ModelCall(step, len(request.messages), chars, response.usage, time.monotonic() - t0, fmt)
                try:
                    decision = strategy.interpret(response)
                except DecisionError as bad:
                    failures += 1
                    yield ev.ParseError(step, str(bad), (response.content or "")[:2000])
                    strategy.reject(response, bad)
                    if failures >= self.max_parse_failures:
                        unusable = ModelError(f"the model's reply could not be parsed {failures} times: {bad}")
                        unusable.__cause__ = bad
                        fallback, capabilities = await self._fall_back(strategy, step, unusable, deadline, record_retry)
                        fmt, formats, failures = capabilities.best_format(), FormatWatch(capabilities), 0
                        for event in [*retries, fallback]:
                            yield event
                        retries.clear()
                    continue
                failures = 0
                switched = formats.observe(fmt, decision)
                if switched is not None and switch_format(strategy, switched):
                    note = f"replies keep coming as {decision.read_as}, not as asked ({fmt}): asking for {switched}"
                    yield ev.Note(step, note, {"from": fmt, "to": switched})
                    fmt = switched
                yield ev.Decision(step, decision.thought, decision.tool_calls, decision.final_answer)
                for text, data in strategy.notes():
                    yield ev.Note(step, text, data)
                if decision.final_answer is not None:
                    answer, status = decision.final_answer, "done"
                    yield ev.Final(step, answer)
                    break
                verdict = repeats.check(getattr(strategy, "episode", None), decision.tool_calls)
                if verdict == "stop":
                    status, error = "stalled", f"repeated the same action: {decision.tool_calls[0].name}"
                    break
                if verdict == "nudge":
                    yield ev.Note(step, "stall: same action repeated; nudging the model once")
                    refused = ToolOutput(False, STALL_NUDGE, "repeated")
                    strategy.observe([Observation(c, refused) for c in decision.tool_calls])
                    continue
                observations: list[Observation] = []
                async for event in self._run_tools(tools, step, decision.tool_calls, deadline, observations):
                    yield event
                strategy.observe(observations)
        except BudgetExceeded as stop:
            status, error = stop.status, str(stop)
        except (ModelError, StrategyFailed) as failure:
            status, error = "error", str(failure)
        except Exception as bug:  # a run always ends with its trace and a status, even on our own bugs
            status, error = "error", f"{type(bug).__name__}: {bug}"
        for retry in retries:
            yield retry
        if answer is None:
            try:
                answer = strategy.best_answer()
            except Exception as bug:  # the run still ends with a status, and says why it stopped first
                failed = f"best_answer failed: {type(bug).__name__}: {bug}"
                status, error = "error", f"{error}; {failed}" if error else failed
        yield ev.RunFinished(status, answer, step, usage, time.monotonic() - started, error)

    async def _fall_back(
        self,
        strategy: Strategy,
        step: int,
        failure: ModelError,
        deadline: float | None,
        on_retry: Callable[[int, str, float], None],
    ) -> tuple[ev.ModelFallback, Capabilities]:
        """Move to the model's next model (a `FallbackModel`) after `failure`, and switch the strategy to
        the format that model takes; re-raise `failure` when there is no other model."""
        switch = give_up(self.model, str(failure))
        if switch is None:
            raise failure
        capabilities = await self._within(deadline, probe_capabilities(self.model, on_retry))
        fmt: DecisionFormat = capabilities.best_format()
        switch_format(strategy, fmt)
        return ev.ModelFallback(step, switch[0], switch[1], str(failure)), capabilities

    def _check_budgets(self, step: int, usage: Usage, deadline: float | None) -> None:
        if step >= self.max_steps:
            raise BudgetExceeded("max_steps", f"step budget of {self.max_steps} reached")
        if self.max_tokens is not None and usage.total_tokens >= self.max_tokens:
            raise BudgetExceeded("budget", f"token budget of {self.max_tokens} reached ({usage.total_tokens})")
        if deadline is not None and time.monotonic() >= deadline:
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

    async def arun(self, task: str) -> RunResult:
        collected: list[ev.Event] = []
        async for event in self.astream(task):
            collected.append(event)
        end = collected[-1]
        assert isinstance(end, ev.RunFinished)
        return RunResult(end.answer, end.status, end.steps, end.usage, end.duration, collected, end.error)

    def run(self, task: str) -> RunResult:
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
        """Blocking iteration over `astream`, on a private event loop."""
        loop = asyncio.new_event_loop()
        events = self.astream(task)
        try:
            while True:
                try:
                    yield loop.run_until_complete(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(self._closing(events.aclose()))
            loop.close()
