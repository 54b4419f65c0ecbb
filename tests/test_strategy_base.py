"""The strategy base, composition and plain-class strategies, over real HTTP to the scripted server."""

from __future__ import annotations

import json
from functools import partial

import pytest
import toolbox
from toolbox import add, call, decide

from agentlab import Agent, OpenAIModel
from agentlab import events as ev
from agentlab.models import ModelRequest
from agentlab.strategies import (
    CompositeStrategy,
    Conclusion,
    DecisionError,
    ModelDecision,
    StrategyContext,
    create,
    strategy_factory,
)
from agentlab.strategies.babyagi import BabyAGI
from agentlab.strategies.critic import Critic
from agentlab.strategies.react import ReAct
from agentlab.testing import ScriptedServer
from agentlab.tools.builtin import calculator

model_for = partial(toolbox.model_for, max_retry_wait=1.0)


class Echo:
    """Written against the protocol without the base class: asks once, answers with the reply."""

    name = "echo"

    def start(self, context):
        self.task = context.task
        self.said = None
        self.pending_notes = []

    def next_step(self):
        if self.said is not None:
            return Conclusion(self.said)
        return ModelRequest(messages=[{"role": "user", "content": self.task}])

    def interpret(self, response):
        self.said = response.content or ""
        self.pending_notes = [("echo noted", {"said": self.said})]
        return ModelDecision(thought=f"heard {self.said}")

    def observe(self, observations):
        pass

    def reject(self, response, error):
        pass

    def best_answer(self):
        return self.said

    def notes(self):
        drained, self.pending_notes = self.pending_notes, []
        return drained


class Bare:
    """Only the required methods: the loop supplies the rest."""

    def start(self, context):
        self.task = context.task

    def next_step(self):
        return ModelRequest(messages=[{"role": "user", "content": self.task}])

    def interpret(self, response):
        return ModelDecision(thought=response.content or "")

    def observe(self, observations):
        pass


class Mute:
    """Not a strategy: it cannot read a reply."""

    def start(self, context):
        pass

    def next_step(self):
        return Conclusion("x")

    def observe(self, observations):
        pass


def test_a_plain_class_strategy_runs_with_its_own_name_notes_and_answer():
    with ScriptedServer([{"content": "hello"}]) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), strategy=Echo).run("say hello")
    assert (result.status, result.answer) == ("done", "hello")
    assert result.events[0].strategy == "echo"
    assert [e.text for e in result.events if isinstance(e, ev.Note)] == ["echo noted"]


def test_a_plain_class_with_only_the_required_methods_gets_the_defaults():
    with ScriptedServer([{"content": "one"}, {"content": "two"}]) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), strategy=Bare, max_steps=2).run("x")
    assert result.status == "max_steps" and result.answer is None and result.steps == 2
    assert result.events[0].strategy == "custom"


def test_a_class_lacking_a_required_method_is_refused_when_the_agent_is_built():
    with pytest.raises(TypeError, match="Mute is not a strategy: it has no interpret method"):
        Agent(model=OpenAIModel("scripted", base_url="http://127.0.0.1:9/v1", api_key="k"), strategy=Mute)


def test_a_factory_returning_a_non_strategy_raises_a_type_error_naming_the_method():
    with ScriptedServer([]) as srv:
        agent = Agent(model=model_for(srv, decision_format="tools"), strategy=lambda: Mute())
        with pytest.raises(TypeError, match="no interpret method"):
            agent.run("x")


class CheckedAnswer(CompositeStrategy):
    """A tiny composite: ReAct answers as a child, then the composite asks the model to confirm it."""

    name = "checked_answer"

    def __init__(self) -> None:
        super().__init__()
        self.child = ReAct()
        self.draft: str | None = None
        self.confirmed: str | None = None

    def start(self, context: StrategyContext) -> None:
        self.context = context
        self.child.start(context)

    def next_step(self) -> ModelRequest | Conclusion:
        if self.confirmed is not None:
            return Conclusion(self.confirmed)
        if self.draft is None:
            return self.ask(self.child, then=self._drafted)
        messages = [{"role": "user", "content": f"Confirm: {self.draft}"}]
        return self.expect(ModelRequest(messages=messages), self._confirmed, self._rejected)

    def _drafted(self, decision: ModelDecision) -> ModelDecision:
        self.draft = decision.final_answer
        self.note("drafted", answer=self.draft)
        return ModelDecision(thought=f"draft {self.draft}")

    def _confirmed(self, response) -> ModelDecision:
        if not (response.content or "").startswith("yes"):
            raise DecisionError("say yes or no")
        self.confirmed = f"{self.draft} (confirmed)"
        return ModelDecision(thought="confirmed")

    def _rejected(self, response, error) -> None:
        self.note("confirmation rejected", error=str(error))


def test_a_composite_drives_a_child_and_gets_its_answer_back():
    script = [
        decide("add", a=2, b=3),  # the child's tool call passes through
        {"content": "not json {"},  # a bad reply during the child's turn: the child repairs it
        decide("final_answer", answer="5"),  # the child's answer goes to the composite
        {"content": "maybe"},  # the composite's own request: rejected by its reader
        {"content": "yes"},
    ]
    with ScriptedServer(script, native_tools=False, json_schema=False) as srv:
        agent = Agent(model=model_for(srv, decision_format="json"), tools=[add], strategy=CheckedAnswer)
        result = agent.run("2 + 3?")
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "5 (confirmed)"), result.error
    # The child's observation and the repair went into the child's own conversation.
    assert {"role": "user", "content": "Observation: 5"} in requests[1]["messages"]
    assert requests[2]["messages"][-2]["content"] == "not json {"
    assert requests[2]["messages"][-1]["content"].startswith("Error:")
    notes = [(e.text, e.data) for e in result.events if isinstance(e, ev.Note)]
    assert notes[0] == ("drafted", {"answer": "5"})
    assert notes[1][0] == "confirmation rejected" and "say yes or no" in notes[1][1]["error"]
    assert requests[3]["messages"] == [{"role": "user", "content": "Confirm: 5"}]


def test_one_resolver_takes_a_name_a_factory_or_an_instance():
    by_name, by_factory = strategy_factory("react")(), strategy_factory(ReAct, {"min_tool_calls": 1})()
    instance = ReAct()
    assert isinstance(by_name, ReAct) and by_factory.min_tool_calls == 1
    assert strategy_factory(instance)() is instance
    assert strategy_factory(Echo)().name == "echo"  # a plain class is wrapped with the defaults
    with pytest.raises(ValueError, match="unknown strategy 'reactt'"):
        strategy_factory("reactt")
    with pytest.raises(ValueError, match="cannot apply to a strategy instance"):
        strategy_factory(instance, {"min_tool_calls": 1})


CRITIC_SCRIPT = [
    decide("final_answer", "easy", answer="15"),
    decide("calculator", "check it", expression="3*5"),
    decide("final_answer", answer="15 is right."),
    {"content": json.dumps({"critique": "Confirmed.", "correct": True, "revised_answer": "15"})},
]


@pytest.mark.parametrize("inner", [ReAct, ReAct(), "react", lambda: ReAct()], ids=["class", "instance", "name", "fn"])
def test_critic_inner_takes_a_name_a_factory_or_an_instance(inner):
    with ScriptedServer(CRITIC_SCRIPT, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic", inner=inner).run("3 * 5?")
    assert (result.status, result.answer) == ("done", "15")
    assert [e.output for e in result.events if isinstance(e, ev.ToolResult)] == ["15"]


def test_babyagi_executor_instance_is_restarted_for_every_task(tmp_path):
    script = [
        call("final_answer", answer="first result"),
        call("progress", complete=False, summary=""),
        call("new_tasks", tasks=["Second task"]),
        call("final_answer", answer="second result"),
        call("progress", complete=False, summary="both done"),
    ]
    with ScriptedServer(script) as srv:
        model = model_for(srv, decision_format="tools")
        agent = Agent(model=model, strategy="babyagi", store=tmp_path / "q.sqlite3", max_tasks=2, executor=ReAct())
        result = agent.run("objective")
        second_task = srv.requests[3]["messages"]
    assert result.status == "done" and result.answer == "both done"
    # The same instance, started afresh: the second task's conversation holds nothing of the first.
    assert [m["role"] for m in second_task] == ["system", "user"] and "Your task: Second task" in second_task[1][
        "content"
    ]
    with pytest.raises(ValueError, match="unknown strategy 'nope'"):
        BabyAGI(store=tmp_path / "q.sqlite3", executor="nope")


def test_create_names_a_misspelt_option_and_the_accepted_ones():
    with pytest.raises(ValueError, match=r"no option 'max_roundz'.*accepts: inner, max_rounds, max_verify_steps"):
        create("critic", max_roundz=1)
    assert isinstance(create("critic", max_rounds=1), Critic)


def test_critic_drafts_with_a_plain_class_instance():
    script = [
        {"content": "15"},
        {"content": json.dumps({"critique": "Fine.", "correct": True, "revised_answer": "15"})},
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[], strategy="critic", inner=lambda: Echo()).run("3 * 5?")
    assert (result.status, result.answer) == ("done", "15")
    assert [e.data["phase"] for e in result.events if isinstance(e, ev.Note) and "phase" in e.data] == [
        "draft",
        "critique",
        "final",
    ]
    assert create("critic", inner=Echo()).inner.name == "echo"
