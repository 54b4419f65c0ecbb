"""Embedding agents in apps, end to end over real HTTP (the openai client against the scripted server):
multi-turn chats by hand and through sessions (also across processes), typed output in every decision
format with repairs, repaired histories, deps reaching tools, agents as tools, provider-valid messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import toolbox
from pydantic import BaseModel
from toolbox import add, call, decide

from agentlab import Agent, InMemorySession, ModelRetry, RunContext, SQLiteSession, tool
from agentlab import events as ev
from agentlab.run.output import SHORT_ANSWER_INSTRUCTIONS, ShortAnswer
from agentlab.testing import ScriptedServer
from agentlab.trace import read_trace

ROOT = Path(__file__).resolve().parent.parent
FORMATS = {  # decision format -> the server flags under which the probe finds it
    "tools": {"native_tools": True, "json_schema": True},
    "json_schema": {"native_tools": False, "json_schema": True},
    "json": {"native_tools": False, "json_schema": False},
}


class Invoice(BaseModel):
    customer: str
    total: float
    paid: bool


def final(fmt: str, **arguments: Any) -> dict[str, Any]:
    """The model's final answer with `arguments`, the way an endpoint of decision format `fmt` replies."""
    return call("final_answer", **arguments) if fmt == "tools" else decide("final_answer", "done", **arguments)


def user_turns(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def assert_provider_valid(messages: list[dict[str, Any]]) -> None:
    """What the pickiest OpenAI-compatible server accepts: string content everywhere, and every assistant
    tool call answered by a tool message right after it (and no tool message without its call)."""
    json.dumps(messages)
    waiting: list[str] = []
    for message in messages:
        assert isinstance(message["content"], str), message
        if message["role"] == "tool":
            assert message["tool_call_id"] in waiting, message
            waiting.remove(message["tool_call_id"])
            continue
        assert not waiting, f"calls {waiting} are not answered before {message}"
        if message["role"] == "assistant" and message.get("tool_calls"):
            waiting = [c["id"] for c in message["tool_calls"]]
            assert all(isinstance(c["function"]["arguments"], str) for c in message["tool_calls"])
    assert not waiting


# --- conversations: a chat whose later answers need its earlier turns ----------------------------------

CHAT = ["My name is Ada.", "My city is Paris.", "What is my name?", "My age is 36.", "What is my city and my age?"]
EXPECTED = ["Noted.", "Noted.", "Ada", "Noted.", "Paris and 36"]


def recalling(fmt: str) -> Any:
    """A model that remembers only what the request carries: it answers a question about "my X" from the
    earlier user turns of the request, so a right answer proves the earlier turns were sent."""

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        *earlier, question = user_turns(body)
        facts = dict(re.findall(r"[Mm]y (\w+) is (\w+)", " ".join(earlier)))
        if question.startswith("What"):
            answer = " and ".join(facts.get(key, "unknown") for key in re.findall(r"my (\w+)", question))
        else:
            answer = "Noted."
        return final(fmt, answer=answer)

    return reply


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_a_five_turn_chat_by_hand_continues_the_conversation(fmt: str) -> None:
    with ScriptedServer(recalling(fmt), **FORMATS[fmt]) as srv:
        agent = Agent(model=toolbox.model_for(srv))
        history: list[dict[str, Any]] | None = None
        answers = []
        for message in CHAT:
            result = agent.run(message, history=history)
            assert result.status == "done", result.error
            answers.append(result.answer)
            history = result.messages
        last = srv.requests[-1]["messages"]
    assert answers == EXPECTED
    assert user_turns({"messages": last}) == CHAT  # the fifth request carries every earlier turn...
    assert [m["content"] for m in last if m["role"] == "assistant"] == EXPECTED[:4]  # ...and the answers to them
    assert history is not None
    assert_provider_valid(history)
    assert [m["content"] for m in history if m["role"] == "assistant"] == EXPECTED


def test_a_session_keeps_the_chat_and_a_second_session_in_the_file_is_separate(tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    with ScriptedServer(recalling("tools")) as srv:
        agent = Agent(model=toolbox.model_for(srv))
        ada, bob = SQLiteSession(db, session_id="ada"), SQLiteSession(db, session_id="bob")
        answers = [agent.run(message, session=ada).answer for message in CHAT]
        agent.run("My name is Bob.", session=bob)
        bobs = agent.run("What is my name?", session=bob).answer
        memory = InMemorySession()
        agent.run("My name is Eve.", session=memory)
        eves = agent.run("What is my name?", session=memory).answer
    assert answers == EXPECTED and (bobs, eves) == ("Bob", "Eve")
    stored = ada.load()
    assert [m["content"] for m in stored if m["role"] == "user"] == CHAT
    assert [m["content"] for m in stored if m["role"] == "assistant"] == EXPECTED
    with pytest.raises(ValueError, match="not both"):
        agent.run("Hi", session=ada, history=stored)


CHAT_PROCESS = """
import sys
from agentlab import Agent, OpenAIModel, SQLiteSession

base_url, db, *messages = sys.argv[1:]
agent = Agent(model=OpenAIModel(base_url=base_url, model="scripted", api_key="k"))
session = SQLiteSession(db, session_id="user-42")
for message in messages:
    result = agent.run(message, session=session)
    print(result.status, result.answer, sep="|")
"""


def test_a_session_carries_the_chat_across_processes(tmp_path: Path) -> None:
    db = str(tmp_path / "chats.db")
    with ScriptedServer(recalling("tools")) as srv:
        first = subprocess.run(
            [sys.executable, "-c", CHAT_PROCESS, srv.base_url, db, *CHAT[:2]],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        second = subprocess.run(
            [sys.executable, "-c", CHAT_PROCESS, srv.base_url, db, *CHAT[2:]],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        last = srv.requests[-1]["messages"]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    lines = first.stdout.splitlines() + second.stdout.splitlines()
    assert lines == [f"done|{answer}" for answer in EXPECTED]
    assert user_turns({"messages": last}) == CHAT
    assert len(SQLiteSession(db, session_id="user-42").load()) == 2 * len(CHAT)


# --- typed output in each decision format, with repairs -----------------------------------------------


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_typed_output_in_each_format_with_a_validation_repair(fmt: str) -> None:
    script = [
        final(fmt, customer="ACME", total="a lot", paid=False),  # not a number: goes back to the model
        final(fmt, customer="ACME", total=37.5, paid=False),
    ]
    with ScriptedServer(script, **FORMATS[fmt]) as srv:
        result = Agent(model=toolbox.model_for(srv), output_type=Invoice).run("Invoice for ACME, 3 items at 12.50")
        first, repair = srv.requests
    assert result.status == "done", result.error
    assert result.output == Invoice(customer="ACME", total=37.5, paid=False)
    assert json.loads(result.answer or "") == {"customer": "ACME", "total": 37.5, "paid": False}
    assert json.dumps(repair).count("total") > json.dumps(first).count("total")  # the error names the field
    assert "valid number" in json.dumps(repair["messages"][-1])
    parameters = Invoice.model_json_schema()["properties"]
    if fmt == "tools":  # the final-answer tool's parameters are the output schema
        tool_ = next(t for t in first["tools"] if t["function"]["name"] == "final_answer")
        assert tool_["function"]["parameters"]["properties"] == {k: {"type": v["type"]} for k, v in parameters.items()}
    elif fmt == "json_schema":  # the decision grammar's final action carries it
        assert '"paid": {"type": "boolean"}' in json.dumps(first["response_format"])
    else:  # prompted JSON: the instructions show it
        assert "paid" in first["messages"][0]["content"] and "response_format" not in first
    assert [e.kind for e in result.events].count("parse_error") == 1


def test_an_output_validator_asks_for_another_try_with_model_retry() -> None:
    def upper_case_customer(invoice: Invoice) -> Invoice:
        if invoice.customer != invoice.customer.upper():
            raise ModelRetry("write the customer's name in upper case")
        return invoice

    script = [
        final("tools", customer="acme", total=1.0, paid=True),
        final("tools", customer="ACME", total=1.0, paid=True),
    ]
    with ScriptedServer(script) as srv:
        agent = Agent(model=toolbox.model_for(srv), output_type=Invoice, output_validator=upper_case_customer)
        result = agent.run("Invoice ACME")
        repair = srv.requests[1]["messages"]
    assert result.status == "done" and result.output == Invoice(customer="ACME", total=1.0, paid=True)
    assert "upper case" in json.dumps(repair[-1])


def test_a_refused_text_answer_goes_back_into_the_conversation_with_the_tools() -> None:
    def no_guessing(answer: str) -> str:
        if "guess" in answer:
            raise ModelRetry("do not guess: add the numbers with the add tool")
        return answer

    script = [{"content": "I guess 5"}, call("add", a=2, b=3), {"content": "5"}]
    with ScriptedServer(script) as srv:
        agent = Agent(model=toolbox.model_for(srv), tools=[add], output_validator=no_guessing)
        result = agent.run("What is 2 + 3?")
        retry = srv.requests[1]
    assert (result.status, result.answer) == ("done", "5")
    assert {t["function"]["name"] for t in retry["tools"]} >= {"add"}  # not a request that may only restate
    assert retry["messages"][-2:] == [
        {"role": "assistant", "content": "I guess 5"},
        {
            "role": "user",
            "content": "Error: The final answer was refused: do not guess: add the numbers with the "
            "add tool. Fix it and answer again.",
        },
    ]


def test_output_repairs_are_bounded() -> None:
    bad = final("tools", customer="ACME", total="?", paid=False)
    with ScriptedServer([bad, bad]) as srv:
        result = Agent(model=toolbox.model_for(srv), output_type=Invoice, output_retries=1).run("Invoice")
    assert result.status == "error" and "output type" in (result.error or "") and result.output is None


def test_a_plain_text_answer_is_structured_by_one_more_request() -> None:
    """An endpoint that answers in prose even with tools offered: the loop asks once more for the object."""
    script = [{"content": "ACME owes 37.50, unpaid."}, call("final_answer", customer="ACME", total=37.5, paid=False)]
    with ScriptedServer(script) as srv:
        result = Agent(model=toolbox.model_for(srv), output_type=Invoice).run("Invoice for ACME")
        structuring = srv.requests[1]
    assert result.output == Invoice(customer="ACME", total=37.5, paid=False)
    assert "ACME owes 37.50" in structuring["messages"][-1]["content"]


# --- history repair, deps, agents as tools ------------------------------------------------------------


def test_a_broken_history_is_sent_provider_valid() -> None:
    broken = [
        {"role": "user", "content": "What is 2 + 3?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "add", "arguments": {"a": 2, "b": 3}}}
            ],
        },
        # the app crashed here: the call has no result
        {"role": "user", "content": "Never mind. Say hi."},
        {"role": "tool", "tool_call_id": "nope", "content": "an orphan result"},
    ]
    with ScriptedServer([final("tools", answer="hi")]) as srv:
        result = Agent(model=toolbox.model_for(srv), tools=[add]).run("Hi again", history=broken)
        sent = srv.requests[0]["messages"]
    assert result.status == "done"
    assert_provider_valid(sent[1:])  # after the system prompt
    assert [m["role"] for m in sent[1:]] == ["user", "assistant", "tool", "user", "user"]
    assert sent[2]["content"] == "" and sent[2]["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "b": 3}'
    assert sent[3]["tool_call_id"] == "c1"
    assert_provider_valid(result.messages)


@dataclass
class Deps:
    db: dict[str, str]
    user: str


@tool
def lookup_customer(ctx: RunContext[Deps], name: str) -> str:
    """Find a customer.

    Args:
        name: The customer's name.
    """
    return f"{ctx.deps.db[name]} (asked by {ctx.deps.user}, step {ctx.step})"


def test_deps_reach_a_tool_and_the_context_is_not_in_its_schema() -> None:
    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        return final("tools", answer=results[-1]) if results else call("lookup_customer", name="ACME")

    with ScriptedServer(reply) as srv:
        agent = Agent(model=toolbox.model_for(srv), tools=[lookup_customer])
        result = agent.run("Who is ACME?", deps=Deps(db={"ACME": "ACME Corp, Berlin"}, user="u42"))
        schema = next(t for t in srv.requests[0]["tools"] if t["function"]["name"] == "lookup_customer")
    assert result.answer == "ACME Corp, Berlin (asked by u42, step 1)"
    assert list(schema["function"]["parameters"]["properties"]) == ["name"]


def test_an_agent_as_a_tool_nests_its_events_and_adds_its_usage(tmp_path: Path) -> None:
    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if "You research." in body["messages"][0]["content"]:
            return final("tools", answer="Paris")
        results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if results:
            return final("tools", answer=f"The capital is {results[-1]}.")
        return call("research", input="capital of France")

    trace = tmp_path / "writer.jsonl"
    with ScriptedServer(reply) as srv:
        model = toolbox.model_for(srv)
        researcher = Agent(model=model, instructions="You research.")
        writer = Agent(model=model, tools=[researcher.as_tool("research", "Research a question")], trace=trace)
        result = writer.run("Write: what is the capital of France?")
        research_request = srv.requests[1]
    assert (result.status, result.answer) == ("done", "The capital is Paris.")
    assert user_turns(research_request)[-1] == "capital of France"
    nested = [e for e in result.events if e.parent_run_id == result.run_id]
    assert (nested[0].kind, nested[-1].kind) == ("run_started", "run_finished")
    sub_run = nested[0].run_id
    assert sub_run != result.run_id and all(e.run_id == sub_run for e in nested)
    # nested under the call: after the parent's ToolStarted, before its ToolResult
    kinds = [(e.kind, e.run_id == sub_run) for e in result.events]
    assert kinds.index(("tool_started", False)) < kinds.index(("run_started", True))
    assert kinds.index(("run_finished", True)) < kinds.index(("tool_result", False))
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    assert len(calls) == 3 and result.usage.total_tokens == sum(c.usage.total_tokens for c in calls)
    written = read_trace(trace)
    assert sum(1 for e in written if e.get("parent_run_id") == result.run_id) == len(nested)
    assert_provider_valid(result.messages)
    assert all(m["content"] != "Paris" for m in result.messages if m["role"] == "assistant")  # the parent's only


def test_a_sub_agents_model_calls_count_against_the_callers_step_budget() -> None:
    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if "You research." in body["messages"][0]["content"]:
            return call("add", a=index, b=1)  # a sub-agent that never answers
        return call("research", input="q")

    with ScriptedServer(reply) as srv:
        model = toolbox.model_for(srv)
        researcher = Agent(model=model, tools=[add], instructions="You research.")
        result = Agent(model=model, tools=[researcher.as_tool("research", "R")], max_steps=3).run("go")
        asked = len(srv.requests)
    # The caller's one step plus its sub-agent's two use up the three; before, the caller went on to a
    # second step (and a second sub-run): five requests for a budget of three.
    assert result.status == "max_steps" and asked == 3


def test_a_sub_agent_whose_call_needs_approval_says_why_it_stopped() -> None:
    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        return f"deleted {path}"

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if "You clean up." in body["messages"][0]["content"]:
            return call("delete_file", path="a.txt")
        if any(m["role"] == "tool" for m in body["messages"]):
            return {"content": "could not clean up"}
        return call("janitor", input="delete a.txt")

    with ScriptedServer(reply) as srv:
        model = toolbox.model_for(srv)
        janitor = Agent(model=model, tools=[delete_file], instructions="You clean up.")
        result = Agent(model=model, tools=[janitor.as_tool("janitor", "Cleans up")]).run("Clean up")
    failed = next(e for e in result.events if isinstance(e, ev.ToolResult) and e.run_id == result.run_id)
    assert result.status == "done" and not failed.ok
    assert "janitor stopped (paused)" in failed.output and "cannot wait" in failed.output


def test_messages_of_a_json_decision_run_are_native_tool_calls() -> None:
    script = [
        decide("add", "I add them", a=2, b=3),
        decide("final_answer", answer="5"),
        decide("final_answer", answer="8"),
    ]
    with ScriptedServer(script, **FORMATS["json"]) as srv:
        agent = Agent(model=toolbox.model_for(srv), tools=[add])
        result = agent.run("What is 2 + 3?")
        messages = result.messages
        agent.run("And plus 3?", history=messages)
        continued = srv.requests[-1]["messages"]
    assert_provider_valid(messages)
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["content"] == "I add them"
    assert messages[1]["tool_calls"][0]["function"] == {"name": "add", "arguments": '{"a": 2, "b": 3}'}
    assert messages[2] == {"role": "tool", "tool_call_id": messages[1]["tool_calls"][0]["id"], "content": "5"}
    assert messages[3] == {"role": "assistant", "content": "5"}
    # sent back to a JSON-decision endpoint, the history is text turns (no tool role it may not show)
    assert "tool" not in [m["role"] for m in continued] and "Observation: 5" in json.dumps(continued)


# --- other strategies: history as context, typed output by a structuring request ----------------------

PROGRAM = "def solution():\n    return 7 - 3\n"


def test_pal_takes_history_as_context_and_ends_with_a_typed_output() -> None:
    history = [{"role": "user", "content": "I had 7 apples."}, {"role": "assistant", "content": "Noted."}]
    script = [{"content": f"```python\n{PROGRAM}```"}]
    with ScriptedServer(script) as srv:
        result = Agent(model=toolbox.model_for(srv), strategy="pal", output_type=int).run(
            "I ate 3. How many are left?", history=history
        )
        (first,) = srv.requests  # the program's 4 is an int already: no request to restate it
    assert result.status == "done" and result.output == 4 and isinstance(result.output, int)
    assert first["messages"][-1]["content"] == (
        "Conversation so far:\nUser: I had 7 apples.\nAssistant: Noted.\n\nNow: I ate 3. How many are left?"
    )
    assert result.messages[:2] == history and result.messages[-1] == {"role": "assistant", "content": "4"}


# --- short answers, for the evaluation harness -------------------------------------------------------


def test_a_short_answer_is_checked_and_a_long_one_goes_back_to_be_shortened() -> None:
    long = "Paris, " + "which is a lovely city " * 12
    script = [final("tools", answer=long), final("tools", answer="Paris"), {"content": "Rome, " * 50}]
    with ScriptedServer(script) as srv:
        agent = Agent(model=toolbox.model_for(srv), output_type=ShortAnswer, instructions=SHORT_ANSWER_INSTRUCTIONS)
        result = agent.run("Capital of France?")
        plain = agent.run("Capital of Italy?")  # plain text is taken as the answer: no structuring request
        first, repair, _ = srv.requests
    assert (result.status, result.answer, result.output) == ("done", "Paris", "Paris")
    assert "at most 200 characters" in first["messages"][0]["content"]
    assert "200 characters" in repair["messages"][-1]["content"]
    final_tool = next(t for t in first["tools"] if t["function"]["name"] == "final_answer")
    assert final_tool["function"]["parameters"]["properties"]["answer"]["maxLength"] == 200
    assert plain.status == "done" and plain.answer == ("Rome, " * 50).strip() and len(srv.requests) == 3


def test_a_plain_str_answer_is_not_limited() -> None:
    long = "word " * 200
    with ScriptedServer([final("tools", answer=long)]) as srv:
        result = Agent(model=toolbox.model_for(srv)).run("Write a long answer.")
        # In native mode a plain-text answer needs no final_answer tool; whatever is offered sets no length cap.
        offered = [t for t in srv.requests[0].get("tools", []) if t["function"]["name"] == "final_answer"]
    assert result.answer == long and all("maxLength" not in json.dumps(t) for t in offered)


class FailingSession(InMemorySession):
    """A session whose store is down when the turn is saved (a database that timed out)."""

    def append(self, messages: list[dict[str, Any]]) -> None:
        raise OSError("connection reset")


def test_a_session_that_cannot_be_written_is_a_warning_and_the_answer_is_kept() -> None:
    with ScriptedServer([{"content": "the answer"}] * 2) as srv:
        agent = Agent(model=toolbox.model_for(srv))
        result = agent.run("q", session=FailingSession())
        streamed = [e.kind for e in agent.stream("q", session=FailingSession())]
    assert (result.status, result.answer) == ("done", "the answer")
    warning = next(e for e in result.events if e.kind == "warning")
    assert "session could not be written (OSError: connection reset)" in warning.text
    assert streamed[-2:] == ["warning", "run_finished"]
