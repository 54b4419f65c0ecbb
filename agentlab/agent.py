"""The agent loop: one async event stream; `arun`, `run` and `stream` are thin wrappers around it."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from agentlab import decisions
from agentlab import events as ev
from agentlab._redact import redact_data, secret_values
from agentlab._sync import iterate_sync, run_sync
from agentlab.decisions import FormatWatch, ModelDecision, offer_tool
from agentlab.events import PendingCall, Status, Usage
from agentlab.models.base import (
    DeltaCallback,
    Model,
    ModelError,
    ModelRequest,
    ModelResponse,
    ReplyDelta,
    complete_with_deltas,
    probe_capabilities,
)
from agentlab.models.fallback import give_up
from agentlab.models.resolve import is_small_model
from agentlab.run.compaction import Compactor, TokenCounter, context_window, summary_request, tokenizer_of
from agentlab.run.context import RunContext
from agentlab.run.conversation import messages_from_events, repair_history
from agentlab.run.deltas import DeltaReader
from agentlab.run.guardrails import Blocked, Guardrails, check_guards
from agentlab.run.limits import Price, answering_model, check_prices, price_of
from agentlab.run.output import OutputSpec, OutputValidationError, OutputValidator, run_validators
from agentlab.run.replay import Recording, Replay, ResumeError, read_recording, response_record
from agentlab.run.state import BudgetExceeded, RunState
from agentlab.run.tool_calls import run_tool_calls
from agentlab.strategies import (
    Conclusion,
    DecisionError,
    Observation,
    StrategyContext,
    StrategyFailed,
    StrategySpec,
    strategy_factory,
)
from agentlab.strategies.registry import takes_option
from agentlab.tools import ApprovalCallback, Tool, ToolOutput, ToolRegistry
from agentlab.tools.guard import Guard
from agentlab.tools.output import describe_exception

if TYPE_CHECKING:
    from agentlab.demos import DemoLibrary
    from agentlab.store.claims import RunClaim
    from agentlab.store.runs import RunStore
    from agentlab.store.sessions import Session

T = TypeVar("T")

Instructions = str | Callable[[RunContext[Any]], str]
"""Extra system guidance: a string, or a function of the run's context (deps, run id) that returns one."""

STRUCTURE_SYSTEM = "You restate an answer in the exact JSON shape asked for. Change nothing of its meaning."
STRUCTURE_PROMPT = "Task: {task}\nAnswer: {answer}\nGive this answer as the final_answer JSON object."

STALL_NUDGE = (
    "You already made this exact call; its result is above. Do something different, "
    "or call final_answer with what you know."
)


@dataclass
class RunResult:
    """What a finished run returns: its answer and status, and every event it yielded.

    Attributes:
        answer: The answer as text (for a typed output, its text form), or the best answer so far when the
            run stopped early; None when there is none.
        status: How the run ended: done, max_steps, budget, stalled, blocked, error, or paused (tool calls wait
            for a person's approval: see `pending`, and go on with `Agent.resume(run_id, approvals=...)`).
        output: The typed output (an instance of the agent's `output_type`) of a `done` run; for plain text
            output the answer itself; None when the run did not finish with an answer.
        messages: The whole conversation (the history it continued, the task, tool calls and results, the
            answer) in OpenAI chat format, provider-valid and JSON-serialisable: pass it as `history=` to go on.
        run_id: The run's id, also on each of its events.
        cost: What the run's model calls cost by the agent's price table (None when it has none).
        pending: The tool calls a `paused` run waits on, one per call (parallel calls included).
    """

    answer: str | None
    status: Status
    steps: int
    usage: Usage
    duration: float
    events: list[ev.Event] = field(default_factory=list)
    error: str | None = None
    output: Any = None
    run_id: str = ""
    cost: float | None = None
    pending: list[PendingCall] = field(default_factory=list)

    @property
    def trace(self) -> list[dict[str, Any]]:
        """The events as JSON-ready dicts, as a JSONL trace holds them."""
        return [e.to_dict() for e in self.events]

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation so far (see the class docstring), rebuilt from this run's events."""
        return messages_from_events(self.events, self.run_id)


class Agent:
    """A tool-using agent: a model, tools and a strategy, run under budgets. Options beyond the ones named
    here go to the strategy (e.g. `max_rounds=1` for `strategy="critic"`) and are checked against its
    constructor when the agent is built.

    Args:
        model: Any `Model` (default: resolved from the environment, see `agentlab.models.default_model`).
        tools: Tools (`@tool` functions or plain functions) the model may call.
        strategy: A strategy name, or a factory returning a fresh strategy per run.
        max_steps: Model requests a run may make (None: no limit).
        max_tokens: Tokens a run may use (None: no limit).
        max_seconds: Wall-clock seconds a run may take (None: no limit).
        approve: Asked before a tool marked `requires_approval` runs (sync or async).
        instructions: Extra system guidance, or a function of the `RunContext` that returns it.
        trace: Append every event to this JSONL file as it happens.
        max_parse_failures: Unusable replies in a row before the run ends with status `error`.
        output_type: The type of the final answer: `str` (default), a pydantic model, dataclass, TypedDict,
            `int`/`float`/`bool`, `list[...]`, `Literal`, an Enum. `result.output` holds the validated value.
        output_retries: How many times an answer that does not fit `output_type` (or that a validator
            refused with `ModelRetry`) goes back to the model before the run ends with status `error`.
        output_validator: A callable (or a list of them) that checks the typed output, sync or async; it
            returns the value (possibly replaced) or raises `ModelRetry("why")`.
        input_guardrails: Guards (sync or async callables) that see the task before the first model call:
            each returns None to pass it, a new task (str) to rewrite it, or raises `GuardrailTripped("why")`,
            which ends the run with status `blocked`.
        output_guardrails: Guards that see the final output (the typed value after validation, or the
            answer text) before the run reports it: pass, rewrite (the replacement must fit the output type)
            or trip (status `blocked`; the answer is withheld).
        max_tool_calls: Tool calls a run may make; the step whose calls would go past it ends the run with
            status `budget` (None: no limit).
        max_cost: What a run's model calls may cost, by `prices` (None: no limit); status `budget` past it.
        prices: Model name -> `Price` (per million input and output tokens); needed with `max_cost` for every
            model the agent may use, unless the model object has a `price` attribute.
        store: Keep every event of every run in this SQLite file (or `RunStore`) as it happens, so that a
            paused, crashed or killed run goes on with `resume(run_id)`; `agentlab runs` lists them.
        context_window: The model's context window in tokens; None: learn it from the model (`n_ctx` of the
            embedded model, or what the endpoint advertises). Requests that grow past it are compacted.
        compaction: Keep requests within the context window (previews of old tool outputs, then a summary of
            the oldest turns, with a `recall` tool for what was shortened); False sends them as they are.
        demos: Solved examples (`agentlab.demos.DemoLibrary`): the `demos_k` most similar to each run's task
            (among those using this agent's tools) are added to its instructions. None (default): the built-in
            worked episodes of the built-in tools when the model is the embedded `LocalModel`, none otherwise;
            True: the built-in ones for any model; False: none.
        demos_k: How many demos a run gets at most.
    """

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
        instructions: Instructions | None = None,
        trace: str | Path | None = None,
        max_parse_failures: int = 2,
        output_type: Any = str,
        output_retries: int = 2,
        output_validator: OutputValidator | Sequence[OutputValidator] | None = None,
        input_guardrails: Guard | Sequence[Guard] | None = None,
        output_guardrails: Guard | Sequence[Guard] | None = None,
        max_tool_calls: int | None = None,
        max_cost: float | None = None,
        prices: dict[str, Price] | None = None,
        store: str | Path | RunStore | None = None,
        context_window: int | None = None,
        compaction: bool = True,
        demos: DemoLibrary | bool | None = None,
        demos_k: int = 2,
        **strategy_options: Any,
    ) -> None:
        for name, limit, kind in (
            ("max_steps", max_steps, int),
            ("max_tokens", max_tokens, int),
            ("max_seconds", max_seconds, float),
            ("max_parse_failures", max_parse_failures, int),
            ("output_retries", output_retries, int),
            ("max_tool_calls", max_tool_calls, int),
            ("max_cost", max_cost, float),
            ("demos_k", demos_k, int),
        ):
            _check_limit(name, limit, kind)
        if approve is not None and not callable(approve):
            raise TypeError(f"approve must be a callable or None, not {type(approve).__name__}")
        if instructions is not None and not isinstance(instructions, str) and not callable(instructions):
            raise TypeError(f"instructions must be a str, a callable or None, not {type(instructions).__name__}")
        validators = [] if output_validator is None else [output_validator] if callable(output_validator) else []
        if output_validator is not None and not callable(output_validator):
            validators = list(output_validator)
        if not all(callable(v) for v in validators):
            raise TypeError("output_validator must be a callable, a list of callables, or None")
        self.output: OutputSpec[Any] = OutputSpec.for_type(output_type)
        self.output_retries = output_retries
        self.output_validators: list[OutputValidator] = validators
        if model is None:
            from agentlab.models import default_model

            model = default_model()
        self.model = model
        self.guardrails = Guardrails(
            check_guards(input_guardrails, "input_guardrails"), check_guards(output_guardrails, "output_guardrails")
        )
        self.prices = dict(prices or {})
        if max_cost is not None or prices:
            check_prices(model, self.prices)
        self.max_tool_calls, self.max_cost = max_tool_calls, max_cost
        self.demos, self.demos_k = _demo_library(demos, model), demos_k
        self.tools = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
        self.strategy = strategy
        self.strategy_options = strategy_options
        if store is not None and not _is_run_store(store) and takes_option(strategy, "store"):
            strategy_options = {"store": store, **strategy_options}  # BabyAGI's task store shares the file
        # Instances are not shared between runs: an instance given here must come from a factory.
        self._new_strategy = strategy_factory(_factory_of(strategy), strategy_options)
        if isinstance(strategy, str):
            self._new_strategy()  # built once and dropped: the strategy's own checks (e.g. max_rounds >= 0) fail now
        self.max_steps, self.max_tokens, self.max_seconds = max_steps, max_tokens, max_seconds
        self.approve = approve
        self.instructions = instructions
        self.trace_path = Path(trace) if trace else None
        self.max_parse_failures = max_parse_failures
        if store is not None and not (isinstance(store, str | Path) or _is_run_store(store)):
            raise TypeError(f"store must be a path, a RunStore or None, not {type(store).__name__}")
        self.store = store
        _check_limit("context_window", context_window, int)
        self.context_window, self.compaction = context_window, compaction

    async def astream(
        self,
        task: str,
        *,
        history: Sequence[dict[str, Any]] | None = None,
        session: Session | None = None,
        deps: Any = None,
        parent: RunContext[Any] | None = None,
        deltas: bool = False,
    ) -> AsyncGenerator[ev.Event, None]:
        """Yield the run's events as they happen; the last one is always this run's `RunFinished`.

        Args:
            task: What to do (the user's message).
            history: The conversation to continue (OpenAI chat format, e.g. an earlier `result.messages`);
                a broken one (a call without its result, null content) is repaired before it is sent.
            session: A `Session` that keeps the conversation instead: its messages are the history, and the
                run's new messages are appended to it when the run ends (a run that pauses for approvals adds
                its turn when it ends: pass the session to `resume` too). A session that cannot be written
                is said in a `warning` event; the run's result is kept.
            deps: Anything the app wants its tools to see (`RunContext.deps`).
            parent: The context of the run that started this one (set by `as_tool`): this run's events carry
                that run's id as `parent_run_id`, and this run's budgets are bounded by what it has left.
            deltas: Also yield the pieces of each reply as they arrive (`text_delta`, `tool_call_delta`,
                `output_delta`, and `stream_reset` when a broken stream is asked again); the whole reply still
                follows as today's `model_call` and `decision`. Deltas are not written to the trace. A sub-run
                of a run with deltas (`as_tool`) streams its deltas too.
        """
        if history is not None and session is not None:
            raise ValueError("pass history= or session=, not both: a session keeps its own history")
        earlier = repair_history(session.load() if session is not None else history or ())
        run = self._prepare(task, earlier, deps, parent)
        run.context.deltas = deltas or (parent is not None and parent.deltas)
        async for event in self._drive(run, session, earlier):
            yield event

    async def _drive(
        self,
        run: RunState,
        session: Session | None,
        earlier: list[dict[str, Any]],
        first: ev.Event | None = None,
    ) -> AsyncGenerator[ev.Event, None]:
        """Run the loop, stamping each event with its run and writing it to the trace, the run store and
        the session; `first` (a `Resumed`) goes before the loop's events."""
        from agentlab.trace import JsonlTrace

        trace = JsonlTrace(self.trace_path) if self.trace_path else None
        store = _RunLog.open(self.store)
        if store and not store.claim(run.id):
            store.close()
            raise ResumeError(f"run {run.id!r} is already going on (another resume of it?): resume it once it stops")
        try:
            async for event in _prepended(first, self._loop(run)):
                if not event.run_id:
                    event.run_id, event.parent_run_id = run.id, run.context.parent_run_id
                if isinstance(event, ev.Delta):  # pieces of a reply that a later event carries whole
                    yield event
                    continue
                if event.run_id == run.id:
                    run.events.append(event)
                if run.replay is not None and event.run_id == run.id and run.replay.seen(event):
                    continue  # recorded already: a resumed run's replay
                # A trace or store that cannot be written is said once, after the event it failed on (before
                # `RunFinished`, which stays last), and the run goes on.
                failure = trace.write(event) if trace else None
                failure = (store.write(event, run.id) if store else None) or failure
                ended = event if isinstance(event, ev.RunFinished) and event.run_id == run.id else None
                if ended and session is not None and ended.status != "paused":  # a paused turn is not over
                    failure = _saved(session, messages_from_events(run.events, run.id)[len(earlier) :]) or failure
                warning = ev.RunWarning(failure, run_id=run.id) if failure else None
                if ended:
                    if warning:
                        yield warning
                    yield event
                    continue
                yield event
                if warning:
                    yield warning
        finally:
            if trace:
                trace.close()
            if store:
                store.release()
                store.close()

    # --- the loop: run → step → ask the model, read the decision, act ----------------------------------

    async def _loop(self, run: RunState) -> AsyncIterator[ev.Event]:
        tools = run.tools
        yield ev.RunStarted(
            run.task, run.strategy.name, self.model.name, tools.names(), tools.schemas(), history=run.history
        )
        try:
            await self._start(run)
            while not run.over:
                async for event in self._live(run, self._step(run)):
                    yield event
        except BudgetExceeded as stop:
            run.end(stop.status, error=str(stop))
        except Blocked as trip:
            run.end("blocked", error=str(trip))
        except (ModelError, StrategyFailed) as failure:
            run.end("error", error=str(failure))
        except Exception as bug:  # a run always ends with its trace and a status, even on our own bugs
            run.end("error", error=f"{type(bug).__name__}: {bug}")
        finally:
            self._release(run)
        for event in run.drain():  # e.g. the retries of a model call that failed
            yield event
        yield self._finish(run)

    def _prepare(
        self,
        task: str,
        history: list[dict[str, Any]],
        deps: Any,
        parent: RunContext[Any] | None,
        run_id: str | None = None,
    ) -> RunState:
        strategy = self._new_strategy()
        extra = strategy.extra_tools()  # e.g. PAL's program runner: part of this run's tools and its trace
        tools = ToolRegistry([*self.tools, *extra]) if extra else self.tools
        deadline = time.monotonic() + self.max_seconds if self.max_seconds is not None else None
        context = RunContext(deps=deps, run_id=run_id or uuid.uuid4().hex, messages=history)
        if parent is not None:  # a sub-agent: the parent's budgets bound it
            context.parent_run_id = parent.run_id
            deadline = _earliest(deadline, parent.deadline)
        run = RunState(task, strategy, tools, deadline, context, history)
        run.max_steps = _smallest(self.max_steps, parent.steps_left if parent else None)
        run.max_tokens = _smallest(self.max_tokens, parent.tokens_left if parent else None)
        run.max_seconds, run.max_cost, run.max_tool_calls = self.max_seconds, self.max_cost, self.max_tool_calls
        return run

    async def _start(self, run: RunState) -> None:
        # Before anything is sent anywhere; a slow guard (a moderation call) counts against max_seconds.
        run.task = await run.within(self.guardrails.screen_task(run.task, run.emit))
        # Probing is part of the run: its retries are events, its time counts against max_seconds.
        await self._probe(run)
        offered = run.tools  # `recall` joins these only once something was compacted (see _compact)
        await self._prepare_compaction(run)
        instructions = self.instructions(run.context) if callable(self.instructions) else self.instructions
        if self.demos is not None:
            from agentlab.demos import with_demos  # imported already: the agent has a library

            instructions = with_demos(instructions, self.demos, run.task, self.demos_k, offered.names())
        run.strategy.start(
            StrategyContext(
                run.task,
                offered,
                run.format,
                instructions,
                run.max_steps,
                history=run.history,
                output_schema=self.output.parameters,
                approve=self.approve,
                run_context=run.context,
                small_model=is_small_model(self.model),
            )
        )

    async def _step(self, run: RunState) -> AsyncIterator[ev.Event]:
        """One step: the strategy's next request, the model's reply, the decision read from it, the action."""
        request = run.strategy.next_step()
        run.take_notes()
        if isinstance(request, Conclusion):
            if request.status == "done":
                await self._conclude(run, request.answer or "")
            else:
                run.end(request.status, request.answer)
        for event in run.drain():
            yield event
        if isinstance(request, Conclusion):
            return
        run.check_budgets()
        response = await self._query(run, request)
        for event in run.drain():
            yield event
        if response is None:
            return
        decision = await self._read_decision(run, response)
        for event in run.drain():
            yield event
        if decision is not None and not run.over:
            async for event in self._act(run, decision):
                yield event

    async def _live(self, run: RunState, events: AsyncIterator[ev.Event]) -> AsyncIterator[ev.Event]:
        """The step's `events`; when the run streams deltas, also the events sent `run.live` while the step
        waits (the pieces of a reply): the step then runs as a task feeding one queue, as the tool calls do."""
        if not run.context.deltas:
            async for event in events:
                yield event
            return
        queue: asyncio.Queue[ev.Event | _StepEnd] = asyncio.Queue()

        def send(event: ev.Event) -> None:
            for earlier in run.drain():  # what the step emitted before goes out first: order is kept
                queue.put_nowait(earlier)
            queue.put_nowait(event)

        async def drive() -> None:
            try:
                async for event in events:
                    queue.put_nowait(event)
            except Exception as error:  # re-raised by the consumer: a budget stop ends the run
                queue.put_nowait(_StepEnd(error))
            else:
                queue.put_nowait(_StepEnd(None))

        run.live = send
        step = asyncio.create_task(drive())
        try:
            while not isinstance(item := await queue.get(), _StepEnd):
                yield item
            if item.error is not None:
                raise item.error
        finally:
            run.live = None
            step.cancel()  # the caller stopped iterating (or the step failed): nothing is left running

    async def _prepare_compaction(self, run: RunState) -> None:
        """Learn the context window; with one known, compact this run's requests, and make `recall` (the
        full text of what was shortened) callable when the run has tools."""
        if not self.compaction:
            return
        window = self.context_window or await run.within(context_window(self.model))
        if not window:
            return
        run.compactor = Compactor(window, TokenCounter(tokenizer_of(self.model)))
        if len(run.tools) and "recall" not in run.tools:
            run.recall = run.compactor.recall_tool()
            run.tools = ToolRegistry([*run.tools, run.recall])

    async def _compact(self, run: RunState, request: ModelRequest) -> ModelRequest:
        """The request made to fit the context window (a `Compacted` event says how), or as it is. Once
        compaction has shortened something, requests also offer `recall`: before that there is nothing to
        recall, and a small model offered it from the start picks it over the tools the task needs."""
        if run.compactor is None:
            return request
        outcome = await run.compactor.compact(request, lambda turns: self._summarise(run, turns), run.task)
        if outcome is not None:
            window = run.compactor.window
            run.emit(
                ev.Compacted(
                    run.step, outcome.action, outcome.tokens_before, outcome.tokens_after, window, outcome.summary
                )
            )
            request = outcome.request
        return offer_tool(request, run.recall) if run.recall and run.compactor.shortened_anything else request

    async def _summarise(self, run: RunState, turns: list[dict[str, Any]]) -> str | None:
        """A summary of `turns` by the model (a resumed run's recorded one when it has it)."""
        recorded = run.replay.summary() if run.replay else None
        if recorded is not None:
            return recorded or None
        run.check_budgets(steps=False)
        request = summary_request(turns)
        response: ModelResponse = await run.within(self.model.complete(request, run.retry_recorder()))
        run.usage += response.usage
        self._charge(run, response.usage)  # a summary is a model call: its cost counts against max_cost too
        return response.content

    async def _probe(self, run: RunState) -> None:
        """Learn (once per model) what the endpoint takes, and use its best decision format."""
        capabilities = await run.within(probe_capabilities(self.model, run.retry_recorder()))
        run.format, run.formats = capabilities.best_format(), FormatWatch(capabilities)

    async def _fall_back(self, run: RunState, failure: ModelError) -> None:
        """Move to the model's next model (a `FallbackModel`) after `failure`, and switch the strategy to
        the format that model takes; re-raise `failure` when there is no other model."""
        switch = give_up(self.model, str(failure))
        if switch is None:
            raise failure
        await self._probe(run)
        run.strategy.switch_format(run.format)
        run.parse_failures = 0
        run.emit(ev.ModelFallback(run.step, switch[0], switch[1], str(failure)))

    async def _query(self, run: RunState, request: ModelRequest) -> ModelResponse | None:
        """Ask the model, within the run's deadline; its retries and the call itself become events. None when
        the model failed for good and a fallback model takes over (the step is then asked again)."""
        run.step += 1
        started = time.monotonic()
        request = await self._compact(run, request)
        reader = DeltaReader(run.step, self.output, request) if run.live is not None else None
        try:
            replayed = run.replay.reply(request) if run.replay else None  # a resumed run's recorded reply
            response: ModelResponse = replayed or await run.within(
                complete_with_deltas(self.model, request, run.retry_recorder(), _delta_sender(run, reader))
            )
        except ModelError as failure:  # a FallbackModel moves on; any other model ends the run
            for reset in reader.reset(str(failure)) if reader else ():
                run.emit(reset)
            await self._fall_back(run, failure)
            return None
        except BudgetExceeded as stop:  # the time ran out mid-reply: what was shown of it is void
            for reset in reader.reset(str(stop)) if reader else ():
                run.emit(reset)
            raise
        run.usage += response.usage
        self._charge(run, response.usage)
        chars = sum(len(str(m.get("content") or "")) for m in request.messages)
        if run.compactor is not None:
            run.compactor.counter.calibrate(request, response.usage.prompt_tokens)
        duration = time.monotonic() - started
        recorded = response_record(response)
        run.emit(ev.ModelCall(run.step, len(request.messages), chars, response.usage, duration, run.format, recorded))
        return response

    async def _read_decision(self, run: RunState, response: ModelResponse) -> ModelDecision | None:
        """The strategy's decision from the reply, or None when the reply was rejected for a repair round
        (the run fails after `max_parse_failures` unusable replies in a row). A final answer ends the run
        once it fits the output type."""
        try:
            decision = run.strategy.interpret(response)
        except DecisionError as bad:
            run.parse_failures += 1
            run.emit(ev.ParseError(run.step, str(bad), _reply_text(response)[:2000]))
            run.strategy.reject(response, bad)
            if run.parse_failures >= self.max_parse_failures:
                unusable = ModelError(f"the model's reply could not be parsed {run.parse_failures} times: {bad}")
                unusable.__cause__ = bad
                await self._fall_back(run, unusable)
            return None
        run.parse_failures = 0
        self._follow_reply_format(run, decision)
        run.emit(ev.Decision(run.step, decision.thought, decision.tool_calls, decision.final_answer))
        run.take_notes()
        if decision.final_answer is not None:
            try:
                await self._conclude(run, decision.final_answer, decision.final_arguments, in_reply=True)
            except OutputValidationError as bad:  # the answer goes back to the model, like a bad reply
                self._count_output_failure(run, bad, decision.final_answer)
                run.strategy.reject(response, bad)
                return None  # rejected, not acted on: observing it too would add an empty turn
        return decision

    def _follow_reply_format(self, run: RunState, decision: ModelDecision) -> None:
        """Switch the run's decision format when replies keep coming in another shape than asked."""
        switched = run.formats.observe(run.format, decision) if run.formats else None
        if switched is not None and run.strategy.switch_format(switched):
            note = f"replies keep coming as {decision.read_as}, not as asked ({run.format}): asking for {switched}"
            run.emit(ev.Note(run.step, note, {"from": run.format, "to": switched}))
            run.format = switched

    # --- the typed output: the final action's arguments, validated -------------------------------------

    async def _conclude(
        self, run: RunState, answer: str, arguments: dict[str, Any] | None = None, *, in_reply: bool = False
    ) -> None:
        """End the run as `done` with `answer` as a value of the output type: from the final action's
        `arguments` when the model gave them, else (a plain-text answer, or one a strategy concluded) from a
        structuring request. OutputValidationError when the arguments do not fit, or when a validator refuses
        a text answer `in_reply` (the model's reply): the refusal goes back into the conversation, where the
        model still has its tools, rather than to a request that may only restate the answer."""
        spec = self.output
        if arguments is not None:
            value = await run_validators(self.output_validators, spec.validate(arguments))
        elif spec.is_text and (in_reply or not self.output_validators):
            value = await run_validators(self.output_validators, answer)
        else:
            value = await self._structure(run, answer)
        if self.guardrails.output:
            dump = partial(spec.adapter.dump_python, mode="json")
            screened = self.guardrails.screen_output(value, run.step, run.emit, spec.adapter.validate_python, dump)
            value = await run.within(screened)
        jsonable = None if spec.is_text else spec.adapter.dump_python(value, mode="json")
        run.end("done", spec.as_text(value), output=jsonable)

    async def _structure(self, run: RunState, answer: str) -> Any:
        """`answer` as a value of the output type: as it is when it already is one (its JSON), else restated by
        the model (one JSON object of the type's schema), with up to `output_retries` repairs; each request
        counts against the token and time budgets."""
        messages = [
            {"role": "system", "content": STRUCTURE_SYSTEM},
            {"role": "user", "content": STRUCTURE_PROMPT.format(task=run.task, answer=answer)},
        ]
        # The answer as it is first: text, or a value of the output type already (PAL's program returned 42
        # and the type is `float`). Asking a small model to copy a number it was given can change it.
        try:
            value = answer if self.output.is_text else self.output.read_text(answer)
        except OutputValidationError:
            pass  # not the type's JSON: the model restates it
        else:
            try:
                return await run_validators(self.output_validators, value)
            except OutputValidationError as bad:
                self._count_output_failure(run, bad, answer)
                messages.append({"role": "user", "content": f"Error: {bad}"})
        while True:
            run.check_budgets(steps=False)
            request = decisions.object_request(
                messages, self.output.parameters, run.format, name=decisions.FINAL, description="Give the final answer."
            )
            response = await self._query(run, request)
            if response is None:  # the model failed for good and a fallback model takes over: ask it
                continue
            try:
                value = self.output.validate(decisions.read_object(response))
                return await run_validators(self.output_validators, value)
            except DecisionError as bad:
                self._count_output_failure(run, bad, response.content or "")
                messages.append({"role": "assistant", "content": response.content or _arguments_text(response)})
                messages.append({"role": "user", "content": f"Error: {bad}"})

    def _count_output_failure(self, run: RunState, bad: DecisionError, raw: str) -> None:
        """Report an answer that does not fit the output type; past `output_retries` the run ends `error`."""
        run.output_failures += 1
        run.emit(ev.ParseError(run.step, str(bad), raw[:2000]))
        if run.output_failures > self.output_retries:
            raise ModelError(f"the answer did not fit the output type after {self.output_retries} repairs: {bad}")

    async def _act(self, run: RunState, decision: ModelDecision) -> AsyncIterator[ev.Event]:
        """Run the decision's tool calls and hand their results to the strategy; a repeated call is refused
        with a nudge once, and ends the run as `stalled` the second time."""
        guarded = [c for c in decision.tool_calls if not (c.name in run.tools and run.tools.get(c.name).repeatable)]
        verdict = run.repeats.check(run.strategy.episode, guarded)
        if verdict == "stop":
            run.end("stalled", error=f"repeated the same action: {decision.tool_calls[0].name}")
            return
        if verdict == "nudge":
            yield ev.Note(run.step, "stall: same action repeated; nudging the model once")
            refused = ToolOutput(False, STALL_NUDGE, "repeated")
            run.strategy.observe([Observation(c, refused) for c in decision.tool_calls])
            return
        observations: list[Observation] = []
        async for event in run_tool_calls(run, decision.tool_calls, observations, self.approve):
            yield event
        if not run.over:  # a paused run observes its step's results when it is resumed
            run.strategy.observe(observations)

    def _release(self, run: RunState) -> None:
        """Let the strategy release what the run held; a failure to do so is said, not raised."""
        try:
            run.strategy.close()
        except Exception as bug:
            run.emit(ev.RunWarning(f"the strategy could not release its resources: {type(bug).__name__}: {bug}"))

    def _finish(self, run: RunState) -> ev.RunFinished:
        """The last event: the answer (the strategy's best one when the run stopped early) and the status."""
        status: Status = run.status or "error"
        answer, error = run.answer, run.error
        if answer is None and status != "blocked":  # a blocked answer stays withheld
            try:
                answer = run.strategy.best_answer()
            except Exception as bug:  # the run still ends with a status, and says why it stopped first
                failed = f"best_answer failed: {type(bug).__name__}: {bug}"
                status, error = "error", f"{error}; {failed}" if error else failed
        duration = time.monotonic() - run.started
        return ev.RunFinished(status, answer, run.step, run.usage, duration, error, output=run.output, cost=run.cost)

    def _charge(self, run: RunState, usage: Usage) -> None:
        """Add what a model call cost to the run's cost, at the price of the model that answered it."""
        if not self.prices and self.max_cost is None:
            return
        price = price_of(answering_model(self.model), self.prices)
        run.cost = (run.cost or 0.0) + (price.cost(usage) if price is not None else 0.0)

    # --- the ways to run: all of them drain `astream` ------------------------------------------------

    async def arun(
        self,
        task: str,
        *,
        history: Sequence[dict[str, Any]] | None = None,
        session: Session | None = None,
        deps: Any = None,
    ) -> RunResult:
        """Run to the end and return the result with every event (arguments as for `astream`)."""
        return await self._result(self.astream(task, history=history, session=session, deps=deps))

    async def _result(self, events: AsyncIterator[ev.Event], earlier: Sequence[ev.Event] = ()) -> RunResult:
        """Drain a run's events into its result; `earlier` are the recorded events of a resumed run."""
        collected: list[ev.Event] = list(earlier)
        async for event in events:
            collected.append(event)
        end = collected[-1]
        assert isinstance(end, ev.RunFinished)
        output = end.answer if self.output.is_text else None
        if end.output is not None:
            output = self.output.adapter.validate_python(end.output)
        paused = [e for e in collected if isinstance(e, ev.Paused) and e.run_id == end.run_id]
        pending = paused[-1].pending if paused and end.status == "paused" else []
        ending = (end.answer, end.status, end.steps, end.usage, end.duration)
        return RunResult(*ending, collected, end.error, output, end.run_id, end.cost, pending)

    # --- going on with a stopped run: paused for approvals, or crashed ---------------------------------

    async def astream_resume(
        self,
        run_id: str,
        approvals: dict[str, bool] | None = None,
        *,
        deps: Any = None,
        session: Session | None = None,
    ) -> AsyncGenerator[ev.Event, None]:
        """Go on with a paused or interrupted run of this agent's store, yielding its new events (a `Resumed`
        first); the last one is its `RunFinished`. See `resume`."""
        replay = Replay(self._recording(run_id), approvals)
        async for event in self._resumed(replay, deps, session):
            yield event

    async def _resumed(self, replay: Replay, deps: Any, session: Session | None) -> AsyncGenerator[ev.Event, None]:
        recording = replay.recording
        run = self._prepare(recording.task, recording.history, deps, None, run_id=recording.run_id)
        if run.strategy.name != recording.strategy:
            raise ResumeError(
                f"run {recording.run_id!r} used strategy {recording.strategy!r}, this agent {run.strategy.name!r}"
            )
        if sorted(run.tools.names()) != sorted(recording.tools):  # an approved call of a missing tool would be lost
            raise ResumeError(
                f"run {recording.run_id!r} had the tools {', '.join(recording.tools) or 'none'}, this agent "
                f"{', '.join(run.tools.names()) or 'none'}: resume it with the tools it started with"
            )
        run.replay = replay
        resumed = ev.Resumed(dict(replay.approvals), len(recording.replies))
        async for event in self._drive(run, session, recording.history, first=resumed):
            yield event

    def _recording(self, run_id: str) -> Recording:
        if self.store is None:
            raise ValueError("resume needs the agent's run store: Agent(..., store='runs.db')")
        from agentlab.store.runs import RunStore

        store = self.store if isinstance(self.store, RunStore) else RunStore(self.store)
        try:
            return read_recording(run_id, store.events(run_id))
        finally:
            if store is not self.store:
                store.close()

    async def aresume(
        self,
        run_id: str,
        approvals: dict[str, bool] | None = None,
        *,
        deps: Any = None,
        session: Session | None = None,
    ) -> RunResult:
        """Go on with a run that stopped: paused for approvals, or crashed, killed or interrupted. Its
        recorded model replies are replayed (not asked again), its recorded tool results reused (no call
        runs twice: a call that started without a recorded result runs again only when its tool is
        `idempotent`, else the model is told it was interrupted), and then it goes on for real.

        Args:
            run_id: The run's id (`result.run_id`), in this agent's `store`.
            approvals: Decisions for the calls a paused run waits on, by call id (`result.pending`): True runs
                the call, False tells the model it was denied. A call left out keeps waiting.
            deps: The app's dependencies for the tools, as for `run`.
            session: The session the run's turn belongs to (the one given to `run`): the turn is added to it
                when the run ends.

        Returns the whole run's result: its recorded events, then the new ones. Raises `ResumeError` for a
        run that already ended or does not fit this agent, ValueError when the agent has no store."""
        replay = Replay(self._recording(run_id), approvals)
        earlier = [e for e in replay.recording.events if e.run_id == run_id]
        return await self._result(self._resumed(replay, deps, session), earlier)

    def resume(
        self,
        run_id: str,
        approvals: dict[str, bool] | None = None,
        *,
        deps: Any = None,
        session: Session | None = None,
    ) -> RunResult:
        """Blocking `aresume`."""
        return run_sync(self._closing(self.aresume(run_id, approvals, deps=deps, session=session)))

    def run(
        self,
        task: str,
        *,
        history: Sequence[dict[str, Any]] | None = None,
        session: Session | None = None,
        deps: Any = None,
    ) -> RunResult:
        """Blocking `arun`; it also works where an event loop is already running (Jupyter, async apps)."""
        return run_sync(self._closing(self.arun(task, history=history, session=session, deps=deps)))

    async def _closing(self, work: Awaitable[T]) -> T:
        """Run `work`, then release the model's connections: the sync wrappers' event loop ends with it."""
        try:
            return await work
        finally:
            close = getattr(self.model, "aclose", None)
            if close is not None:
                await close()

    def stream(
        self,
        task: str,
        *,
        history: Sequence[dict[str, Any]] | None = None,
        session: Session | None = None,
        deps: Any = None,
        deltas: bool = False,
    ) -> Iterator[ev.Event]:
        """Blocking iteration over `astream` on a private event loop; it also works where an event loop is
        already running (the private loop then runs in a helper thread)."""
        events = self.astream(task, history=history, session=session, deps=deps, deltas=deltas)
        return iterate_sync(events, lambda: self._closing(events.aclose()))

    def as_tool(self, name: str, description: str) -> Tool[..., Any]:
        """This agent as a tool another agent can call: the tool runs a sub-run on its `input` with the
        caller's deps, within the caller's budgets; the sub-run's events appear in the caller's stream and
        trace as they happen (each with the caller's run id as `parent_run_id`), its usage counts as the
        caller's, and its answer (or its error) is the tool's result."""
        agent = self

        async def delegate(ctx: RunContext[Any], input: str) -> str:
            end: ev.RunFinished | None = None
            async for event in agent.astream(input, deps=ctx.deps, parent=ctx):
                if ctx.emit is not None:
                    ctx.emit(event)
                if isinstance(event, ev.RunFinished) and event.parent_run_id == ctx.run_id:
                    end = event
            if end is None or end.status != "done":
                reason = (end.error if end is not None else None) or "no result"
                if end is not None and end.status == "paused":  # its run has no store or person to wait for
                    reason = "one of its calls needs approval, and a sub-agent cannot wait for it: give it `approve=`"
                raise RuntimeError(f"{name} stopped ({end.status if end else 'error'}): {reason}")
            return end.answer or ""

        delegate.__doc__ = f"{description}\n\nArgs:\n    input: What to ask {name}."
        return Tool(delegate, name=name, description=description)


@dataclass
class _StepEnd:
    """The end of a step run as a task (`Agent._live`), with the exception it raised, if any."""

    error: Exception | None


def _delta_sender(run: RunState, reader: DeltaReader | None) -> DeltaCallback | None:
    """The model's delta callback: each piece of the reply, read into delta events sent out at once."""
    if reader is None or run.live is None:
        return None
    send = run.live

    def on_delta(piece: ReplyDelta) -> None:
        for event in reader.read(piece):
            send(event)

    return on_delta


async def _prepended(first: ev.Event | None, events: AsyncIterator[ev.Event]) -> AsyncIterator[ev.Event]:
    if first is not None:
        yield first
    async for event in events:
        yield event


def _saved(session: Session, messages: list[dict[str, Any]]) -> str | None:
    """Append a run's turn to the session: None, or what went wrong (a session is the app's own code, a
    database that may be down: its failure must not lose the answer the run already has)."""
    try:
        session.append(messages)
    except Exception as error:
        what = describe_exception(error).removeprefix("Error: ")
        return f"the session could not be written ({what}); this turn is not in it"
    return None


class _RunLog:
    """A run's events going into the run store (redacted as a trace is); a store that cannot be written
    is said once and the run goes on, as with a trace."""

    def __init__(self, store: RunStore, owned: bool) -> None:
        self.store, self.owned, self.failed = store, owned, False
        self.claimed: RunClaim | None = None  # this process's claim on the run (`RunStore.claim`)
        self.secrets = secret_values()

    @classmethod
    def open(cls, store: str | Path | RunStore | None) -> _RunLog | None:
        if store is None:
            return None
        from agentlab.store.runs import RunStore

        return cls(store, False) if isinstance(store, RunStore) else cls(RunStore(store), True)

    def claim(self, run_id: str) -> bool:
        """Claim the run for this process (see `RunStore.claim`): False while it goes on elsewhere. A store
        that cannot be written claims nothing and refuses nothing; its first write says so."""
        try:
            self.claimed = self.store.claim(run_id)
        except OSError:  # a folder that cannot be written: neither can the store, as its first write says
            return True
        return self.claimed is not None

    def release(self) -> None:
        if self.claimed is not None:
            with contextlib.suppress(OSError):
                self.claimed.release()

    def write(self, event: ev.Event, run_id: str) -> str | None:
        """Append the run's own event (a sub-run's events are its own agent's to keep; deltas are not kept)."""
        if self.failed or event.run_id != run_id or event.kind.endswith("_delta"):
            return None
        import sqlite3  # imported with the store already: only runs with a store get here

        try:
            self.store.append(redact_data(event.to_dict(), self.secrets))
        except (OSError, sqlite3.Error) as error:
            self.failed = True
            return f"the run store {self.store.path} could not be written ({error}); the run goes on without it"
        return None

    def close(self) -> None:
        if self.owned:
            self.store.close()


def _earliest(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _smallest(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _reply_text(response: ModelResponse) -> str:
    """A reply as a `parse_error` event shows it: its text, then each tool call as `name(arguments)` (the
    arguments may be what could not be read)."""
    calls = [f"{call.name}({call.arguments})" for call in response.tool_calls]
    return "\n".join(filter(None, [response.content or "", *calls]))


def _arguments_text(response: ModelResponse) -> str:
    """A reply's tool-call arguments as text, to show the model its unusable answer."""
    return "\n".join(call.arguments for call in response.tool_calls)


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


def _demo_library(demos: DemoLibrary | bool | None, model: Model) -> DemoLibrary | None:
    """The agent's demonstrations (`agentlab.demos.resolve_demos`); the demos module (and its search index)
    is imported only when demos can apply: asked for, or the default on a small model."""
    if demos is False or (demos is None and not is_small_model(model)):
        return None
    from agentlab.demos import resolve_demos

    return resolve_demos(demos, model)


def _is_run_store(store: object) -> bool:
    """Whether `store` is a `RunStore`, without importing the store (and sqlite3) for agents without one."""
    from agentlab.store.runs import RunStore

    return isinstance(store, RunStore)
