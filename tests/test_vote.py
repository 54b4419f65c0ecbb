"""Self-consistency voting over real HTTP: the openai client talks to a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
from functools import partial

import pytest
import toolbox
from toolbox import decide

from agentlab import Agent
from agentlab import events as ev
from agentlab.strategies.vote import Vote
from agentlab.testing import ScriptedServer
from agentlab.tools.builtin import calculator

TASK = "What is 3 * 5?"
model_for = partial(toolbox.model_for, max_retry_wait=1.0)


def votes(result) -> dict:
    return next(e.data["votes"] for e in result.events if isinstance(e, ev.Note) and "votes" in e.data)


def test_the_most_common_answer_wins_and_each_sample_runs_its_own_tools():
    script = [
        decide("calculator", expression="3*5"),
        decide("final_answer", answer="15"),
        decide("calculator", expression="3+5"),
        decide("final_answer", answer="8"),
        decide("calculator", expression="3*5"),  # the same call as the first sample's: not a repeat
        decide("final_answer", answer="15.0"),  # the same number, spelt differently: the same vote
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        agent = Agent(model=model_for(srv), tools=[calculator], strategy="vote", samples=3)
        result = agent.run(TASK)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "15")
    assert sorted(votes(result).values()) == [1, 2]
    assert [e.output for e in result.events if isinstance(e, ev.ToolResult)] == ["15", "8", "15"]
    # Samples are asked at the sampling temperature; each starts from the task, not from another's turns.
    assert all(r["temperature"] == 0.7 for r in requests)
    assert "8" not in str(requests[4]["messages"])


def test_sampling_stops_once_the_leader_cannot_be_caught():
    script = [decide("final_answer", answer="15"), decide("final_answer", answer="15")]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="vote", samples=3).run(TASK)
        sent = len(srv.requests)
    assert (result.status, result.answer) == ("done", "15")
    assert sent == 2  # 2 of 3 agree: the third sample could not change the answer
    assert votes(result) == {'{"answer": 15.0}': 2}


def test_a_typed_answer_is_voted_by_value_and_checked_as_the_output_type():
    script = [
        decide("final_answer", answer=15),
        decide("final_answer", answer=8),
        decide("final_answer", answer=15.0),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        agent = Agent(model=model_for(srv), tools=[calculator], output_type=float, strategy="vote", samples=3)
        result = agent.run(TASK)
    assert result.status == "done"
    assert result.output == 15.0


def test_a_failed_sample_casts_no_vote_and_the_run_goes_on():
    # PAL gives up on a program that keeps failing; the next sample's program works.
    failing = [{"content": json.dumps({"program": f"def solution():\n    return {n} / 0\n"})} for n in (1, 2)]
    working = {"content": json.dumps({"program": "def solution():\n    return 3 * 5\n"})}
    script = [*failing, working]
    with ScriptedServer(script, native_tools=False) as srv:
        strategy = partial(Vote, "pal", samples=2, inner_options={"max_repairs": 1})
        result = Agent(model=model_for(srv), strategy=strategy).run(TASK)
    assert (result.status, result.answer) == ("done", "15")
    notes = [e.text for e in result.events if isinstance(e, ev.Note)]
    assert any("sample 1 failed" in text for text in notes)


def test_each_sample_answers_within_its_share_of_the_step_budget():
    # max_steps=4 over 2 samples: each sample's second step may only give the final answer.
    script = [
        decide("calculator", expression="3*5"),
        decide("final_answer", answer="15"),
        decide("calculator", expression="5*3"),
        decide("final_answer", answer="15"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="vote", samples=2, max_steps=4).run(TASK)
        schemas = [json.dumps(r["response_format"]["json_schema"]["schema"]) for r in srv.requests]
    assert (result.status, result.answer, result.steps) == ("done", "15", 4)
    assert ["calculator" in schema for schema in schemas] == [True, False, True, False]


def test_a_sample_that_repeats_itself_is_abandoned_for_the_next():
    # The loop refuses the repeat with its one nudge; left alone, a second repeat would end the run `stalled`.
    script = [
        decide("calculator", expression="3*5"),
        decide("calculator", expression="3*5"),
        decide("final_answer", answer="15"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="vote", samples=2).run(TASK)
        sent = len(srv.requests)
    assert (result.status, result.answer, sent) == ("done", "15", 3)
    notes = [e.text for e in result.events if isinstance(e, ev.Note)]
    assert any("sample 1 repeated itself" in text for text in notes)
    assert votes(result) == {'{"answer": 15.0}': 1}


def test_samples_must_be_positive_and_the_inner_strategy_a_name_or_a_factory():
    with pytest.raises(ValueError, match="samples"):
        Vote(samples=0)
    with pytest.raises(TypeError, match="fresh"):
        Vote(Vote())
