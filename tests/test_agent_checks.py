"""Construction checks and budgets: bad options fail in `Agent()`, not mid-run; None means no limit and 0
stops before the first model call; `stream` works inside a running event loop."""

from __future__ import annotations

from functools import partial

import pytest
import toolbox
from toolbox import add, call

from agentlab import Agent, OpenAIModel
from agentlab import events as ev
from agentlab.models.local import LocalModel
from agentlab.strategies.react import ReAct
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, max_retry_wait=1.0, decision_format="tools")
UNREACHABLE = OpenAIModel("scripted", base_url="http://127.0.0.1:9/v1", api_key="k")


def test_a_misspelt_strategy_option_fails_when_the_agent_is_built():
    with pytest.raises(ValueError, match=r"no option 'max_roundz'; it accepts: inner, max_rounds, max_verify_steps"):
        Agent(model=UNREACHABLE, strategy="critic", max_roundz=1)


def test_a_strategy_option_of_the_wrong_type_fails_when_the_agent_is_built():
    with pytest.raises(TypeError, match="option 'max_rounds' must be int, not str"):
        Agent(model=UNREACHABLE, strategy="critic", max_rounds="2")
    with pytest.raises(TypeError, match="option 'specify' must be bool"):
        Agent(model=UNREACHABLE, strategy="camel", specify="no")


def test_a_strategy_option_the_strategy_refuses_fails_when_the_agent_is_built():
    with pytest.raises(ValueError, match="max_rounds must be >= 0"):
        Agent(model=UNREACHABLE, strategy="critic", max_rounds=-1)


def test_options_of_a_custom_factory_are_checked_against_its_signature():
    def deep_react(depth: int = 1) -> ReAct:
        return ReAct(min_tool_calls=depth)

    with pytest.raises(ValueError, match="no option 'deepth'; it accepts: depth"):
        Agent(model=UNREACHABLE, strategy=deep_react, deepth=2)
    with ScriptedServer([call("add", a=1, b=2), call("final_answer", answer="3")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], strategy=deep_react, depth=1).run("1 + 2?")
        first = srv.requests[0]
    assert (result.status, result.answer) == ("done", "3")
    assert first["tool_choice"] == "required"  # the option reached the factory


def test_a_strategy_instance_is_refused_since_each_run_needs_its_own():
    with pytest.raises(TypeError, match="one instance serves one run"):
        Agent(model=UNREACHABLE, strategy=ReAct())


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("max_steps", -1, ValueError),
        ("max_tokens", -5, ValueError),
        ("max_seconds", -0.5, ValueError),
        ("max_parse_failures", -1, ValueError),
        ("max_steps", "3", TypeError),
        ("max_steps", True, TypeError),
        ("max_seconds", "10", TypeError),
    ],
)
def test_bad_budgets_fail_when_the_agent_is_built(option, value, error):
    with pytest.raises(error, match=option):
        Agent(model=UNREACHABLE, **{option: value})


@pytest.mark.parametrize(
    ("option", "status"), [("max_steps", "max_steps"), ("max_tokens", "budget"), ("max_seconds", "budget")]
)
def test_a_zero_budget_stops_before_the_first_model_call(option, status):
    with ScriptedServer([call("final_answer", answer="never")]) as srv:
        result = Agent(model=model_for(srv), **{option: 0}).run("x")
        requests = srv.requests
    assert result.status == status and result.steps == 0
    assert requests == []
    assert isinstance(result.events[-1], ev.RunFinished)


def test_no_step_limit_with_max_steps_none():
    script = [call("add", a=i, b=1) for i in range(11)] + [call("final_answer", answer="done")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_steps=None).run("count")
    assert (result.status, result.answer, result.steps) == ("done", "done", 12)


async def test_stream_works_inside_a_running_event_loop():
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", answer="5")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        events = list(agent.stream("2 + 3?"))
    assert events[0].kind == "run_started"
    assert isinstance(events[-1], ev.RunFinished) and events[-1].status == "done" and events[-1].answer == "5"
    assert any(isinstance(e, ev.ToolResult) and e.output == "5" for e in events)


async def test_stream_stopped_early_inside_a_running_event_loop_closes_cleanly():
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", answer="5")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        stream = agent.stream("2 + 3?")
        first = next(stream)
        stream.close()
        again = agent.run("2 + 3?")  # the agent is still usable afterwards
    assert first.kind == "run_started"
    assert again.status == "done" and again.answer == "5"


def test_local_models_sharing_a_loaded_model_share_its_lock(tmp_path):
    path = tmp_path / "m.gguf"
    first, second = LocalModel(path), LocalModel(path)
    other_settings = LocalModel(path, n_ctx=1024)
    assert first.lock is second.lock
    assert other_settings.lock is not first.lock
