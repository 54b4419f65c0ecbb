"""FallbackModel over real HTTP: two scripted endpoints, the run moves to the second when the first fails
for good or keeps sending unusable replies."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import toolbox
from toolbox import add, call, decide

import agentlab
from agentlab import Agent, FallbackModel
from agentlab.events import Usage
from agentlab.models import Model
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, max_retry_wait=0.05, max_attempts=2)
DOWN = {"status": 503}


def of_kind(result: Any, kind: str) -> list[Any]:
    return [e for e in result.events if e.kind == kind]


def test_fallback_model_is_exported_and_is_a_model() -> None:
    assert agentlab.FallbackModel is FallbackModel
    with ScriptedServer([]) as a, ScriptedServer([]) as b:
        assert isinstance(FallbackModel(model_for(a), model_for(b)), Model)


def test_a_model_that_fails_for_good_hands_the_step_to_the_next() -> None:
    with (
        ScriptedServer([DOWN, DOWN]) as primary,
        ScriptedServer([call("add", a=2, b=3), call("final_answer", answer="5")]) as secondary,
    ):
        model = FallbackModel(
            model_for(primary, model="big", decision_format="tools"),
            model_for(secondary, model="small", decision_format="tools"),
        )
        result = Agent(model=model, tools=[add]).run("2 + 3?")
    assert (result.status, result.answer) == ("done", "5"), result.error
    [fallback] = of_kind(result, "model_fallback")
    assert (fallback.from_model, fallback.to_model) == ("big", "small") and "503" in fallback.reason
    assert len(of_kind(result, "model_retry")) == 1  # the primary's own retry came first
    assert model.usage_by_model["big"] == Usage()
    assert model.usage_by_model["small"].total_tokens == result.usage.total_tokens > 0


def test_replies_that_stay_unusable_after_the_repair_round_move_to_the_next_model() -> None:
    garbage = {"content": "no json here"}
    with (
        ScriptedServer([garbage, garbage]) as primary,
        ScriptedServer([decide("final_answer", answer="ok")]) as secondary,
    ):
        model = FallbackModel(
            model_for(primary, model="chatty", decision_format="json"),
            model_for(secondary, model="strict", decision_format="json"),
        )
        result = Agent(model=model, tools=[add]).run("x")
        repaired = primary.requests[1]["messages"]
    assert (result.status, result.answer) == ("done", "ok"), result.error
    assert len(of_kind(result, "parse_error")) == 2 and repaired[-1]["content"].startswith("Error:")
    [fallback] = of_kind(result, "model_fallback")
    assert (fallback.from_model, fallback.to_model) == ("chatty", "strict") and "parsed 2 times" in fallback.reason
    assert model.usage_by_model["chatty"].total_tokens > 0 and model.usage_by_model["strict"].total_tokens > 0


def test_the_next_model_gets_requests_in_its_own_format() -> None:
    with (
        ScriptedServer([DOWN, DOWN]) as primary,
        ScriptedServer([decide("add", a=1, b=2), decide("final_answer", answer="3")], native_tools=False) as secondary,
    ):
        model = FallbackModel(model_for(primary), model_for(secondary))  # both probed: tools, then json_schema
        result = Agent(model=model, tools=[add]).run("1 + 2?")
        sent = secondary.requests[0]
    assert (result.status, result.answer) == ("done", "3"), result.error
    assert "tools" not in sent and sent["response_format"]["type"] == "json_schema"
    assert [e.output for e in of_kind(result, "tool_result")] == ["3"]
    assert [e.decision_format for e in of_kind(result, "model_call")] == ["json_schema", "json_schema"]


def test_when_every_model_fails_the_run_ends_in_error_with_its_trace() -> None:
    with ScriptedServer([DOWN, DOWN]) as primary, ScriptedServer([DOWN, DOWN]) as secondary:
        model = FallbackModel(
            model_for(primary, model="a", decision_format="tools"),
            model_for(secondary, model="b", decision_format="tools"),
        )
        result = Agent(model=model).run("x")
    assert result.status == "error" and "b: HTTP 503" in (result.error or "")
    assert len(of_kind(result, "model_fallback")) == 1 and result.events[-1].kind == "run_finished"
    assert model.current.name == "b"
    model.reset()
    assert model.current.name == "a"


def test_a_model_that_fails_during_the_structuring_request_hands_it_to_the_next() -> None:
    with (
        ScriptedServer([{"content": "forty-two"}, DOWN, DOWN]) as primary,
        ScriptedServer([call("final_answer", answer=42)]) as secondary,
    ):
        model = FallbackModel(
            model_for(primary, model="big", decision_format="tools"),
            model_for(secondary, model="small", decision_format="tools"),
        )
        result = Agent(model=model, tools=[add], output_type=int).run("6 * 7?")
        structuring = secondary.requests[0]
    assert (result.status, result.output) == ("done", 42), result.error
    assert "forty-two" in json.dumps(structuring["messages"])
    [fallback] = of_kind(result, "model_fallback")
    assert (fallback.from_model, fallback.to_model) == ("big", "small")
