"""The agent loop over real HTTP: the openai client talks to a scripted OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
from functools import partial

import pytest
import toolbox
from toolbox import add, call, decide, explode

from agentlab import Agent, OpenAIModel, tool
from agentlab import events as ev
from agentlab.testing import ScriptedServer
from agentlab.trace import read_trace


@tool(timeout=0.3)
async def slow(seconds: float) -> str:
    """Sleep.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(seconds)
    return "woke"


model_for = partial(toolbox.model_for, max_retry_wait=2.0)  # a test may pass its own max_retry_wait


def kinds(result) -> list[str]:
    return [e.kind for e in result.events]


def test_native_tool_round_trip():
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", answer="5")]) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("What is 2 + 3?")
        second = srv.requests[1]
    assert result.status == "done" and result.answer == "5" and result.steps == 2
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages and tool_messages[0]["content"] == "5"
    # The assistant turn that asked for the tool is replayed with text content, never null.
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    assert assistant["content"] == "" and assistant["tool_calls"][0]["function"]["name"] == "add"
    assert second["tool_choice"] == "auto" and {t["function"]["name"] for t in second["tools"]} >= {"add"}
    assert result.usage.total_tokens > 0


def test_plain_text_reply_is_the_final_answer_in_native_mode():
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("Capital of France?")
    assert (result.status, result.answer) == ("done", "Paris")


def test_json_schema_mode_when_endpoint_has_no_native_tools():
    script = [decide("add", "need sum", a=20, b=22), decide("final_answer", answer="42")]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("20 + 22?")
        requests = srv.requests
    assert (result.status, result.answer) == ("done", "42")
    schema = requests[0]["response_format"]["json_schema"]["schema"]
    assert "tools" not in requests[0]
    assert "add" in json.dumps(schema) and "final_answer" in json.dumps(schema)
    assert requests[1]["messages"][-1] == {"role": "user", "content": "Observation: 42"}
    decision = next(e for e in result.events if isinstance(e, ev.Decision))
    assert decision.thought == "need sum" and decision.tool_calls[0].arguments == {"a": 20, "b": 22}


def test_plain_json_mode_repairs_one_malformed_reply():
    script = [
        {"content": 'Sure! {"thought": "x", "action": '},  # broken JSON
        {"content": "Here you go:\n```json\n" + decide("final_answer", answer="ok")["content"] + "\n```"},
    ]
    with ScriptedServer(script, native_tools=False, json_schema=False) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("say ok")
        repair_request = srv.requests[1]
    assert (result.status, result.answer) == ("done", "ok")
    assert "response_format" not in repair_request
    assert repair_request["messages"][-1]["content"].startswith("Error: Invalid JSON")
    assert kinds(result).count("parse_error") == 1


def test_truncated_output_twice_ends_in_error_with_partial_trace():
    truncated = {"content": '{"thought": "I will', "finish_reason": "length"}
    with ScriptedServer([decide("add", a=1, b=1), truncated, truncated], native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("1+1")
    assert result.status == "error" and "could not be parsed" in result.error
    assert kinds(result).count("parse_error") == 2
    assert "tool_result" in kinds(result)  # the work done before the failure is kept
    assert isinstance(result.events[-1], ev.RunFinished)


def test_parallel_tool_calls_run_concurrently():
    running = 0
    peak = 0

    @tool
    async def probe(name: str) -> str:
        """Track concurrency.

        Args:
            name: A label.
        """
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.2)
        running -= 1
        return name.upper()

    calls = {
        "tool_calls": [{"name": "probe", "arguments": {"name": "a"}}, {"name": "probe", "arguments": {"name": "b"}}]
    }
    with ScriptedServer([calls, call("final_answer", answer="AB")]) as srv:
        result = Agent(model=model_for(srv), tools=[probe]).run("both")
        tool_messages = [m for m in srv.requests[1]["messages"] if m["role"] == "tool"]
    assert peak == 2
    assert [m["content"] for m in tool_messages] == ["A", "B"]  # fed back in call order
    order = kinds(result)
    assert order.index("tool_started") < order.index("tool_result")
    assert order.count("tool_started") == 2 and order[order.index("tool_started") + 1] == "tool_started"


def test_tool_calls_sharing_an_id_each_get_their_own_result():
    calls = {
        "tool_calls": [
            {"id": "same", "name": "add", "arguments": {"a": 1, "b": 1}},
            {"id": "same", "name": "add", "arguments": {"a": 2, "b": 3}},
        ]
    }
    with ScriptedServer([calls, call("final_answer", answer="2 and 5")]) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("both")
        tool_messages = [m for m in srv.requests[1]["messages"] if m["role"] == "tool"]
    assert result.status == "done"
    assert [m["content"] for m in tool_messages] == ["2", "5"]


def test_invalid_arguments_exceptions_and_timeouts_become_observations():
    script = [
        call("add", a="two", b=3),
        call("explode", reason="test"),
        call("slow", seconds=5),
        call("nope"),
        call("final_answer", answer="survived"),
    ]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add, explode, slow]).run("go")
    outputs = [e for e in result.events if isinstance(e, ev.ToolResult)]
    assert result.status == "done" and result.answer == "survived"
    assert [o.ok for o in outputs] == [False, False, False, False]
    assert "a" in outputs[0].output and "int" in outputs[0].output.lower()
    assert "boom: test" in outputs[1].output
    assert "timed out" in outputs[2].output.lower() or "timeout" in outputs[2].output.lower()
    assert "add" in outputs[3].output  # unknown tool lists the available ones


def test_malformed_native_arguments_are_reported_back_to_the_model():
    bad = {"tool_calls": [{"name": "add", "arguments": '{"a": 1, "b": '}]}
    with ScriptedServer([bad, call("final_answer", answer="fixed")]) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("1+?")
        follow_up = srv.requests[1]["messages"]
    assert result.status == "done"
    assert follow_up[-1]["role"] == "tool" and "Invalid JSON" in follow_up[-1]["content"]
    unreadable = next(e for e in result.events if e.kind == "parse_error")
    assert unreadable.raw == 'add({"a": 1, "b": )'  # the arguments that could not be read, not ""


@pytest.mark.parametrize("fmt", ["tools", "json"])
def test_a_number_too_long_for_python_is_a_parse_error_with_a_repair_round(fmt: str) -> None:
    huge = "9" * 5000  # past Python's 4300-digit limit for int(): json.loads raises a bare ValueError
    if fmt == "tools":
        bad: dict = {"tool_calls": [{"name": "add", "arguments": '{"a": ' + huge + ', "b": 1}'}]}
        fixed = call("final_answer", answer="3")
    else:
        bad = {"content": '{"thought": "", "action": {"name": "add", "arguments": {"a": ' + huge + ', "b": 1}}}'}
        fixed = decide("final_answer", answer="3")
    with ScriptedServer([bad, fixed]) as srv:
        result = Agent(model=model_for(srv, decision_format=fmt), tools=[add]).run("1+2?")
    unreadable = next(e for e in result.events if e.kind == "parse_error")
    assert (result.status, result.answer) == ("done", "3")
    assert "a number has too many digits" in unreadable.error and "set_int_max_str_digits" not in unreadable.error


def test_a_rejected_reply_with_tool_calls_gets_them_answered_in_json_mode_too():
    # A server may emit tool calls although none were offered (they are read as a decision, issue 11); when
    # such a reply is unusable, the repair must still answer each call.
    stray = {"tool_calls": [{"name": "add", "arguments": '{"a": 1,'}]}
    with ScriptedServer([stray, decide("final_answer", answer="2")]) as srv:
        result = Agent(model=model_for(srv, decision_format="json_schema"), tools=[add]).run("1+1")
        follow_up = srv.requests[1]["messages"]
    assert result.status == "done" and result.answer == "2"
    assert follow_up[-2]["role"] == "assistant" and follow_up[-2]["tool_calls"]
    assert follow_up[-1]["role"] == "tool" and "Invalid JSON" in follow_up[-1]["content"]


def test_429_with_retry_after_is_retried_then_succeeds():
    script = [{"status": 429, "headers": {"Retry-After": "0.3"}}, {"content": "fine"}]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv)).run("hi")
    retries = [e for e in result.events if isinstance(e, ev.ModelRetry)]
    assert result.status == "done" and result.answer == "fine"
    assert len(retries) == 1 and retries[0].wait == pytest.approx(0.3) and "429" in retries[0].error


def test_a_malformed_retry_after_falls_back_to_backoff():
    script = [{"status": 503, "headers": {"Retry-After": "soon"}}, {"content": "fine"}]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, max_retry_wait=0.05)).run("hi")
    retries = [e for e in result.events if isinstance(e, ev.ModelRetry)]
    assert result.status == "done" and result.answer == "fine"
    assert len(retries) == 1 and "503" in retries[0].error and retries[0].wait <= 0.05


def test_5xx_past_the_retry_bound_ends_in_error_and_keeps_the_trace():
    script = [call("add", a=1, b=2)] + [{"status": 503}] * 3
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, max_attempts=3, max_retry_wait=0.05), tools=[add]).run("x")
        assert srv.remaining == 0
    assert result.status == "error" and "503" in result.error
    assert "tool_result" in kinds(result) and result.steps == 2
    assert len([e for e in result.events if isinstance(e, ev.ModelRetry)]) == 2


def test_other_4xx_is_not_retried():
    with ScriptedServer([{"status": 400}, {"content": "never reached"}]) as srv:
        result = Agent(model=model_for(srv)).run("x")
        assert srv.remaining == 1
    assert result.status == "error" and "400" in result.error


def test_step_budget():
    script = [call("add", a=i, b=i) for i in range(5)]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_steps=3).run("loop")
        last_request = srv.requests[2]
    assert result.status == "max_steps" and result.steps == 3 and kinds(result).count("tool_result") == 3
    # The last step the budget allows asks for a final answer (a server that ignores that still ends the run).
    assert last_request["tool_choice"] == {"type": "function", "function": {"name": "final_answer"}}
    assert "final_answer now" in last_request["messages"][-1]["content"]


def test_last_step_is_constrained_to_a_final_answer_in_json_schema_mode():
    script = [decide("add", a=1, b=2), decide("add", a=3, b=3), decide("final_answer", answer="3")]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_steps=3).run("1+2")
        schemas = [r["response_format"]["json_schema"]["schema"] for r in srv.requests]
    assert (result.status, result.answer) == ("done", "3")
    assert "add" in json.dumps(schemas[1]) and "add" not in json.dumps(schemas[2])
    assert "final_answer" in json.dumps(schemas[2])


def test_token_budget():
    script = [{**call("add", a=i, b=1), "usage": {"prompt_tokens": 400, "completion_tokens": 100}} for i in range(5)]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_tokens=1200).run("loop")
    assert result.status == "budget" and result.usage.total_tokens == 1500 and result.steps == 3


def test_time_budget_interrupts_a_slow_model_call():
    with ScriptedServer([call("add", a=1, b=1), {"delay": 5.0, "content": "late"}]) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_seconds=1.0).run("x")
    assert result.status == "budget" and "time" in result.error
    assert result.duration < 4.0 and "tool_result" in kinds(result)


def test_time_budget_interrupts_a_slow_tool():
    @tool(timeout=None)
    async def nap(seconds: float) -> str:
        """Sleep.

        Args:
            seconds: How long.
        """
        await asyncio.sleep(seconds)
        return "woke"

    with ScriptedServer([call("nap", seconds=60)]) as srv:
        model = model_for(srv, decision_format="tools")  # no capability probes before the clock matters
        result = Agent(model=model, tools=[nap], max_seconds=3.0).run("x")
    assert result.status == "budget" and "time budget" in result.error
    assert "tool_started" in kinds(result) and "tool_result" not in kinds(result)


class TimingOutModel:
    """A model whose transport raises its own TimeoutError: a failure, not the run's time budget."""

    name = "timing-out"

    async def capabilities(self):
        from agentlab.models import Capabilities

        return Capabilities(native_tools=True, json_schema=True)

    async def complete(self, request, on_retry=None):
        raise TimeoutError("read timed out")


def test_a_timeout_that_is_not_the_budget_ends_in_error():
    result = Agent(model=TimingOutModel(), max_seconds=60).run("x")
    assert result.status == "error" and "read timed out" in result.error


class BrokenDraft:
    """A strategy whose best_answer fails: the run must still end with RunFinished and a status."""

    name = "broken_draft"

    def start(self, context):
        self.context = context

    def next_step(self):
        from agentlab.models import ModelRequest

        return ModelRequest(messages=[{"role": "user", "content": self.context.task}])

    def interpret(self, response):
        from agentlab.strategies import ModelDecision

        return ModelDecision(thought=response.content or "")  # never answers

    def observe(self, observations):
        pass

    def reject(self, response, error):
        pass

    def best_answer(self):
        raise RuntimeError("no draft kept")

    def notes(self):
        return []


def test_a_failing_best_answer_still_ends_the_run_with_a_status():
    with ScriptedServer([{"content": "thinking"}]) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), strategy=BrokenDraft, max_steps=1).run("x")
    assert isinstance(result.events[-1], ev.RunFinished)
    assert result.status == "error" and result.answer is None
    assert "step budget of 1 reached" in result.error and "no draft kept" in result.error


def test_stall_is_nudged_once_then_stopped():
    with ScriptedServer([call("add", a=1, b=1)] * 3) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("x")
        third_request = srv.requests[2]
        third = third_request["messages"]
    assert result.status == "stalled"
    assert kinds(result).count("tool_result") == 1  # the repeat was not executed again
    assert "already made this exact call" in third[-2]["content"] and third[-2]["role"] == "tool"
    # ReAct answers a refused repeat by asking for the final answer (this server ignores that, so: stalled).
    assert srv_choice(third_request) == "final_answer"


def test_a_repeatable_tool_may_be_called_again_with_the_same_arguments():
    pages = iter(["page one", "page two", "page three"])

    @tool(repeatable=True)
    def next_page() -> str:
        """Read the next page of the log."""
        return next(pages)

    with ScriptedServer([call("next_page")] * 3 + [call("final_answer", answer="read three")]) as srv:
        result = Agent(model=model_for(srv), tools=[next_page]).run("Read three pages.")
        last = srv.requests[-1]["messages"]
    assert result.status == "done" and result.answer == "read three"
    outputs = [e.output for e in result.events if e.kind == "tool_result"]
    assert outputs == ["page one", "page two", "page three"]  # each repeat ran and returned something new
    assert not any("already made this exact call" in str(m["content"]) for m in last)


def srv_choice(request: dict) -> str | None:
    choice = request.get("tool_choice")
    return choice["function"]["name"] if isinstance(choice, dict) else None


def test_stream_yields_events_in_order():
    with ScriptedServer([call("add", a=2, b=2), call("final_answer", answer="4")]) as srv:
        order = [e.kind for e in Agent(model=model_for(srv), tools=[add]).stream("2+2")]
    assert order == [
        "run_started",
        "model_call",
        "decision",
        "tool_started",
        "tool_result",
        "model_call",
        "decision",
        "final",
        "run_finished",
    ]


async def test_sync_and_async_give_the_same_result():
    script = [call("add", a=2, b=3), call("final_answer", answer="5")]
    async with ScriptedServer(script * 2) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        async_result = await agent.arun("2+3")
        sync_result = await asyncio.to_thread(agent.run, "2+3")
    assert (
        (async_result.answer, async_result.status, async_result.steps)
        == (sync_result.answer, sync_result.status, sync_result.steps)
        == ("5", "done", 2)
    )
    assert [e.kind for e in async_result.events] == [e.kind for e in sync_result.events]


def test_trace_is_jsonl_without_secrets(tmp_path, monkeypatch):
    secret = "sk-test-" + "q" * 40
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    path = tmp_path / "run.jsonl"
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", answer=f"5 {secret}")]) as srv:
        model = OpenAIModel(model="scripted", base_url=srv.base_url, api_key=secret)
        result = Agent(model=model, tools=[add], trace=path).run("2+3")
    lines = path.read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == kinds(result)
    assert secret not in path.read_text() and "[redacted]" in path.read_text()
    assert secret not in repr(model)
    assert [event["kind"] for event in read_trace(path)] == kinds(result)
    path.write_text(path.read_text() + "[1, 2]\n")
    with pytest.raises(ValueError, match=rf"run.jsonl:{len(lines) + 1}: expected a JSON object"):
        read_trace(path)


def test_capabilities_are_probed_once_per_endpoint():
    with ScriptedServer([{"content": "a"}, {"content": "b"}], native_tools=False, json_schema=True) as srv:
        model = model_for(srv)
        Agent(model=model).run("one")
        Agent(model=model).run("two")
        assert len(srv.probe_requests) == 2  # one tools probe, one json-schema probe


@pytest.mark.parametrize("native_tools", [True, False])
def test_first_request_is_short_and_its_prefix_is_stable(native_tools):
    script = (
        [call("add", a=1, b=2), call("final_answer", answer="3")]
        if native_tools
        else [decide("add", a=1, b=2), decide("final_answer", answer="3")]
    )
    with ScriptedServer(script, native_tools=native_tools) as srv:
        Agent(model=model_for(srv), tools=[add]).run("What is 1 + 2?")
        first, second = srv.requests
    prompt_chars = sum(len(m["content"]) for m in first["messages"])
    assert prompt_chars <= 700  # the brief's budget: ~600 characters plus the tool schema
    # Every request repeats the previous one's messages unchanged, so prefix caches hit.
    assert second["messages"][: len(first["messages"])] == first["messages"]
    assert second.get("tools") == first.get("tools") and second.get("response_format") == first.get("response_format")


def test_min_tool_calls_forbids_answering_before_a_tool_was_used():
    script = [decide("add", a=1, b=2), decide("final_answer", answer="3")]
    with ScriptedServer(script, native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[add], min_tool_calls=1).run("1+2")
        first, second = (json.dumps(r["response_format"]["json_schema"]["schema"]) for r in srv.requests)
    assert (result.status, result.answer) == ("done", "3")
    assert "final_answer" not in first and "final_answer" in second
    with ScriptedServer([call("add", a=1, b=2), call("final_answer", answer="3")]) as srv:
        Agent(model=model_for(srv), tools=[add], min_tool_calls=1).run("1+2")
        assert [r["tool_choice"] for r in srv.requests] == ["required", "auto"]


def test_a_json_reply_whose_strings_contain_code_fences_still_parses():
    answer = "use\n```python\nprint(1)\n```\nthen done"
    with ScriptedServer([decide("final_answer", answer=answer)], native_tools=False) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("how?")
    assert (result.status, result.answer) == ("done", answer)


def test_min_tool_calls_without_tools_still_allows_an_answer():
    with ScriptedServer([decide("final_answer", answer="ok")], native_tools=False) as srv:
        result = Agent(model=model_for(srv), min_tool_calls=1).run("hi")
    assert (result.status, result.answer) == ("done", "ok")
