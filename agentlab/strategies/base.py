"""The strategy protocol: a strategy decides what to ask the model and what its reply means.

Strategies do no I/O: the loop calls the model and runs the tools, the strategy builds requests,
interprets replies and folds observations into its own conversation state. One instance serves one run.

Write a strategy by subclassing `StrategyBase` (it supplies every optional method), or `CompositeStrategy`
when it drives other strategies as children (CRITIC's drafter, BabyAGI's executor). A plain class with the
`Strategy` methods works too: the loop wraps it with `as_strategy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from agentlab.decisions import DecisionError, ModelDecision
from agentlab.events import Status, ToolCall
from agentlab.models.base import DecisionFormat, ModelRequest, ModelResponse

if TYPE_CHECKING:
    from agentlab.tools import ApprovalCallback, Tool, ToolOutput, ToolRegistry

__all__ = [
    "REQUIRED_METHODS",
    "CompositeStrategy",
    "Conclusion",
    "DecisionError",
    "ModelDecision",
    "Note",
    "Observation",
    "PlainStrategy",
    "Strategy",
    "StrategyBase",
    "StrategyContext",
    "StrategyFailed",
    "as_strategy",
    "missing_methods",
]


class StrategyFailed(RuntimeError):
    """The strategy cannot make progress (e.g. repairs exhausted); the run ends with status `error`."""


@dataclass
class StrategyContext:
    """What a strategy gets at `start`: the task, the run's tools and decision format, and its limits."""

    task: str
    tools: ToolRegistry
    decision_format: DecisionFormat
    instructions: str | None = None  # extra system guidance from the user
    max_steps: int | None = None  # the run's step budget, so a strategy can plan its last step
    # The conversation this run continues (OpenAI chat format, provider-valid): ReAct continues it, the
    # other strategies read it as context (`agentlab.run.conversation.with_history`).
    history: list[dict[str, Any]] = field(default_factory=list)
    # The parameters of the final-answer action: the run's output type as a JSON Schema object.
    output_schema: dict[str, Any] | None = None
    # For strategies that invoke tools themselves (CodeAct's snippets): the run's approver and its
    # `RunContext` (deps), passed on to `ToolRegistry.invoke`.
    approve: ApprovalCallback | None = None
    run_context: Any = None
    # The run's model is a small local one (`agentlab.models.resolve.is_small_model`): strategies may turn on
    # options that help such models (ReAct's defaults do).
    small_model: bool = False
    # The question inside the task, when the task wraps it in context (BabyAGI's executor gets the objective
    # and earlier results around its task): what ReAct on a small model copies grounded arguments and answers
    # from and restates after observations. None: the task itself.
    question: str | None = None

    @property
    def asked(self) -> str:
        """The `question`, or the task when there is none."""
        return self.task if self.question is None else self.question

    def for_role(self, task: str, question: str | None = None) -> StrategyContext:
        """The context of a tool-using role inside this run (CRITIC's verifier, BabyAGI's executor, CAMEL's
        assistant): the same tools, format, guidance, approver and model size (so a small model's role gets
        ReAct's small-model defaults too), with its own `task` (and the `question` in it), no earlier
        conversation, a plain-text answer and no step budget of its own (the run's budget still bounds it)."""
        return replace(self, task=task, question=question, history=[], output_schema=None, max_steps=None)


@dataclass
class Observation:
    """One tool call of the strategy's last decision and what it returned."""

    call: ToolCall
    output: ToolOutput

    @property
    def repeated(self) -> bool:
        """Whether the loop refused this call as an exact repeat of an earlier one (its stall nudge)."""
        return self.output.error == "repeated"


@dataclass
class Conclusion:
    """Returned by `next_step` when the strategy ends the run without asking the model again:
    with its answer (`done`), or with the best answer it has when it had to stop (e.g. `stalled`)."""

    answer: str | None
    status: Status = "done"


Note = tuple[str, dict[str, Any]]

# What a plain class needs to be a strategy; the rest of the protocol has defaults in `StrategyBase`.
REQUIRED_METHODS = ("start", "next_step", "interpret", "observe")


class Strategy(Protocol):
    """What the loop calls, in this order each step: `next_step`, then `interpret` on the model's reply
    (or `reject` when that reply could not be read), then `observe` with the results of the decision's
    tool calls. `notes` is drained after `next_step` and after `interpret`.

    Two members are optional (`StrategyBase` has both): `extra_tools()`, the tools a strategy brings to
    its own runs (PAL's sandbox runner), and `episode`, a hashable naming the sub-task it is on (BabyAGI's
    task id), so the loop's stall check compares actions within one episode only."""

    name: str

    def start(self, context: StrategyContext) -> None:
        """Begin a run: keep the context and build the first conversation. Called once, before `next_step`."""
        ...

    def next_step(self) -> ModelRequest | Conclusion:
        """The next request to the model, or a `Conclusion` that ends the run without asking again."""
        ...

    def interpret(self, response: ModelResponse) -> ModelDecision:
        """Turn the reply to the last request into a decision, raising DecisionError for malformed output."""
        ...

    def observe(self, observations: list[Observation]) -> None:
        """Fold in the results of the last decision's tool calls (an empty list when it made none)."""
        ...

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        """Tell the model why its reply was unusable, so the next request can repair it."""
        ...

    def best_answer(self) -> str | None:
        """The answer to report when the run stops before a final answer (a budget ran out), or None."""
        ...

    def notes(self) -> list[Note]:
        """Phase changes and other facts worth a trace line since the last call (drained by the loop)."""
        ...


class StrategyBase:
    """The defaults of the protocol: subclasses implement `start`, `next_step`, `interpret` and `observe`,
    and record trace notes with `note`."""

    name = "custom"

    def __init__(self) -> None:
        self._notes: list[Note] = []

    def start(self, context: StrategyContext) -> None:
        """Begin a run (see `Strategy.start`)."""
        raise NotImplementedError(f"{type(self).__name__}.start")

    def next_step(self) -> ModelRequest | Conclusion:
        """The next request or a conclusion (see `Strategy.next_step`)."""
        raise NotImplementedError(f"{type(self).__name__}.next_step")

    def interpret(self, response: ModelResponse) -> ModelDecision:
        """Read the reply to the last request (see `Strategy.interpret`)."""
        raise NotImplementedError(f"{type(self).__name__}.interpret")

    def observe(self, observations: list[Observation]) -> None:
        """Fold in tool results (see `Strategy.observe`)."""
        raise NotImplementedError(f"{type(self).__name__}.observe")

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        """By default an unusable reply is dropped and the same request is asked again; override to show
        the model its mistake. The loop's `max_parse_failures` bounds the retries either way."""

    def best_answer(self) -> str | None:
        """By default there is no answer before the final one."""
        return None

    def note(self, text: str, **data: Any) -> None:
        """Record a fact worth a trace line (a `Note` event with `text` and `data`)."""
        self._notes.append((text, data))

    def notes(self) -> list[Note]:
        """The notes recorded since the last call."""
        drained, self._notes = self._notes, []
        return drained

    def extra_tools(self) -> list[Tool[..., Any]]:
        """By default a strategy brings no tools of its own."""
        return []

    def switch_format(self, fmt: DecisionFormat) -> bool:
        """Ask for decisions in `fmt` from now on, keeping the conversation; the loop calls it when replies
        keep coming in another shape than asked, or a fallback model takes another format. By default a
        strategy cannot switch (False): lenient reading still accepts either shape."""
        return False

    def close(self) -> None:
        """Release what the run held (CodeAct's sandbox worker); the loop calls it once the run ends, however
        it ends. By default there is nothing to release."""

    @property
    def episode(self) -> object:
        """By default the whole run is one episode."""
        return None


class PlainStrategy(StrategyBase):
    """A strategy written without `StrategyBase` (a plain class with the protocol's methods), given the
    defaults for the optional methods it lacks."""

    def __init__(self, strategy: Any) -> None:
        super().__init__()
        self.wrapped = strategy
        self.name = str(getattr(strategy, "name", "custom"))

    def start(self, context: StrategyContext) -> None:
        self.wrapped.start(context)

    def next_step(self) -> ModelRequest | Conclusion:
        step: ModelRequest | Conclusion = self.wrapped.next_step()
        return step

    def interpret(self, response: ModelResponse) -> ModelDecision:
        decision: ModelDecision = self.wrapped.interpret(response)
        return decision

    def observe(self, observations: list[Observation]) -> None:
        self.wrapped.observe(observations)

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        if hasattr(self.wrapped, "reject"):
            self.wrapped.reject(response, error)

    def best_answer(self) -> str | None:
        answer: str | None = self.wrapped.best_answer() if hasattr(self.wrapped, "best_answer") else None
        return answer

    def notes(self) -> list[Note]:
        return list(self.wrapped.notes()) if hasattr(self.wrapped, "notes") else []

    def extra_tools(self) -> list[Tool[..., Any]]:
        return list(self.wrapped.extra_tools()) if hasattr(self.wrapped, "extra_tools") else []

    def switch_format(self, fmt: DecisionFormat) -> bool:
        if not hasattr(self.wrapped, "switch_format"):
            return False
        self.wrapped.switch_format(fmt)
        return True

    def close(self) -> None:
        if hasattr(self.wrapped, "close"):
            self.wrapped.close()

    @property
    def episode(self) -> object:
        return getattr(self.wrapped, "episode", None)


def as_strategy(candidate: object) -> StrategyBase:
    """`candidate` as a `StrategyBase`: itself, or wrapped with the defaults when it is a plain class with
    the required methods. A TypeError names the methods it lacks."""
    if isinstance(candidate, StrategyBase):
        return candidate
    missing = [method for method in REQUIRED_METHODS if not callable(getattr(candidate, method, None))]
    if missing:
        raise TypeError(
            f"{type(candidate).__name__} is not a strategy: it has no {', '.join(missing)} method; a strategy "
            f"needs {', '.join(REQUIRED_METHODS)} (subclass agentlab.strategies.StrategyBase for the rest)"
        )
    return PlainStrategy(candidate)


def missing_methods(cls: type) -> list[str]:
    """The required strategy methods a class lacks (empty for a `StrategyBase` subclass)."""
    if issubclass(cls, StrategyBase):
        return []
    return [method for method in REQUIRED_METHODS if not callable(getattr(cls, method, None))]


class _Reply:
    """Where the reply to a composite's pending request goes: a child strategy, or the composite's own reader."""

    def __init__(
        self,
        read: Callable[[ModelResponse], ModelDecision],
        repair: Callable[[ModelResponse, DecisionError], None],
        child: StrategyBase | None = None,
    ) -> None:
        self.read, self.repair, self.child = read, repair, child


class CompositeStrategy(StrategyBase):
    """A strategy that drives others: each request it returns comes from `ask` (a child strategy's next
    step) or `expect` (a request of its own, with the function that reads its reply). The base remembers
    where the pending request came from, so `interpret`, `reject` and `observe` reach the right part by
    themselves: a child's tool decisions pass through to the loop and their observations go back to it; a
    child's final answer goes to the `then` callback given to `ask`, whose decision the loop gets instead.
    Children's notes join the composite's, in the order they happened."""

    def __init__(self) -> None:
        super().__init__()
        self._reply: _Reply | None = None  # where the reply to the pending request goes
        self._observer: StrategyBase | None = None  # the child whose tool calls the loop is running

    def ask(self, child: StrategyBase, then: Callable[[ModelDecision], ModelDecision]) -> ModelRequest | Conclusion:
        """The child's next step. A request is returned for the loop to send; its reply is interpreted by
        the child, and when that is the child's final answer `then(decision)` decides what the composite
        makes of it. A `Conclusion` (the child answered without asking the model) is returned as it is."""
        step = child.next_step()
        self._notes += child.notes()
        if not isinstance(step, Conclusion):
            self._reply = _Reply(lambda response: self._from_child(child, response, then), child.reject, child)
        return step

    def expect(
        self,
        request: ModelRequest,
        read: Callable[[ModelResponse], ModelDecision],
        repair: Callable[[ModelResponse, DecisionError], None],
    ) -> ModelRequest:
        """A request of the composite's own: `read` turns its reply into a decision (raising DecisionError
        when it cannot), and `repair` records a rejected reply so the next request can fix it."""
        self._reply = _Reply(read, repair)
        return request

    def _from_child(
        self, child: StrategyBase, response: ModelResponse, then: Callable[[ModelDecision], ModelDecision]
    ) -> ModelDecision:
        decision = child.interpret(response)
        self._notes += child.notes()
        if decision.final_answer is None:
            self._observer = child
            return decision
        return then(decision)

    def interpret(self, response: ModelResponse) -> ModelDecision:
        """The pending request's reader interprets the reply (see the class docstring)."""
        self._observer = None
        if self._reply is None:
            raise StrategyFailed(f"{type(self).__name__} returned a request that came neither from ask nor expect")
        return self._reply.read(response)

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        """The part that made the pending request records the rejected reply."""
        if self._reply is not None:
            self._reply.repair(response, error)
            if self._reply.child is not None:
                self._notes += self._reply.child.notes()

    @property
    def episode(self) -> object:
        """The child whose tool calls the loop is running, with that child's own episode: a draft and its
        verification are different sub-tasks even when they make the same call."""
        observer = self._observer
        return None if observer is None else (id(observer), observer.episode)

    def observe(self, observations: list[Observation]) -> None:
        """Observations belong to the child whose decision the loop acted on; after a decision of the
        composite's own (which calls no tools) there is nothing to fold in."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.observe(observations)
            self._notes += observer.notes()
