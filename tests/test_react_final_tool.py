"""ReAct in native-tools mode offers the `final_answer` tool only where an answer must be forced or typed: a
plain-text reply already ends the run, so the first request stays short (issue 16, target 2)."""

from __future__ import annotations

from pydantic import BaseModel
from toolbox import add, call, model_for

from agentlab import Agent, tool
from agentlab.testing import ScriptedServer


def tool_names(request: dict) -> set[str]:
    return {t["function"]["name"] for t in request.get("tools", [])}


def test_a_text_answer_needs_no_final_answer_tool():
    with ScriptedServer([call("add", a=2, b=3), {"content": "5"}]) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("What is 2 + 3?")
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "5")
    assert [tool_names(r) for r in requests] == [{"add"}, {"add"}]
    # Every request after the first extends the first: the tools do not change from step to step.
    assert requests[1]["messages"][: len(requests[0]["messages"])] == requests[0]["messages"]


def test_the_forced_last_step_adds_the_final_answer_tool_it_forces():
    with ScriptedServer([call("add", a=1, b=1), call("final_answer", answer="2")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_steps=2).run("What is 1 + 1?")
        first, last = srv.requests
    assert (result.status, result.answer) == ("done", "2")
    assert tool_names(first) == {"add"}
    assert tool_names(last) == {"add", "final_answer"}
    assert last["tool_choice"] == {"type": "function", "function": {"name": "final_answer"}}


def test_min_tool_calls_keeps_the_final_answer_tool():
    script = [call("add", a=1, b=1), call("final_answer", answer="2")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add], min_tool_calls=1).run("What is 1 + 1?")
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "2")
    assert requests[0]["tool_choice"] == "required"
    assert all(tool_names(r) == {"add", "final_answer"} for r in requests)


class Sum(BaseModel):
    total: int


def test_a_typed_output_is_carried_by_the_final_answer_tool():
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", total=5)]) as srv:
        result = Agent(model=model_for(srv), tools=[add], output_type=Sum).run("What is 2 + 3?")
        first = srv.requests[0]
    assert result.status == "done" and result.output == Sum(total=5)
    final = next(t["function"] for t in first["tools"] if t["function"]["name"] == "final_answer")
    assert final["parameters"]["properties"]["total"]["type"] == "integer"


def test_an_answer_beside_another_tool_call_is_refused_and_nothing_runs_unseen():
    sent: list[str] = []

    @tool
    def send_email(to: str) -> str:
        """Send an email.

        Args:
            to: The recipient.
        """
        sent.append(to)
        return "sent"

    both = {
        "tool_calls": [
            {"name": "send_email", "arguments": {"to": "bob"}},
            {"name": "final_answer", "arguments": {"answer": "I emailed Bob"}},
        ]
    }
    script = [both, call("send_email", to="bob"), {"content": "I emailed Bob"}]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[send_email]).run("Email Bob")
        retry = srv.requests[1]["messages"]
    assert (result.status, result.answer, sent) == ("done", "I emailed Bob", ["bob"])
    refused = [e for e in result.events if e.kind == "parse_error"]
    assert len(refused) == 1 and "together with send_email" in refused[0].error
    # Both calls of the refused reply are answered, so the conversation stays valid for the endpoint.
    assert [m["role"] for m in retry[-3:]] == ["assistant", "tool", "tool"]
    assert all("call final_answer alone" in m["content"] for m in retry[-2:])
