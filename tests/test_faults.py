"""Faults of real endpoints, reproduced over real HTTP with the scripted server's fault modes: probes that
meet rate limits, timeouts and passing 5xx; 200 replies that are HTML; odd JSON shapes; lone surrogates;
and an endpoint that answers with native tool calls although its tool-result probe failed."""

from __future__ import annotations

import asyncio
import json
from functools import partial
from typing import Any

import openai
import pytest
import toolbox
from toolbox import add, call, decide

from agentlab import Agent
from agentlab.testing import PROBE_NAME, ScriptedServer, ScriptError

# Backoff waits stay tiny; Retry-After hints are given as 0 so no test sleeps for long.
model_for = partial(toolbox.model_for, max_retry_wait=0.05)
USER = [{"role": "user", "content": "hi"}]
PROBE_TOOL = {"type": "function", "function": {"name": PROBE_NAME, "parameters": {"type": "object"}}}


def kinds(result: Any) -> list[str]:
    return [e.kind for e in result.events]


def client(srv: ScriptedServer, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, **options)


def ask(c: openai.OpenAI, **options: Any) -> Any:
    return c.chat.completions.create(model="scripted", messages=options.pop("messages", USER), **options)


# --- the scripted server's fault modes -------------------------------------------------------------


def test_reset_aborts_the_connection_and_the_next_request_is_served(scripted_server: Any) -> None:
    srv = scripted_server([{"reset": True}, {"content": "back"}])
    c = client(srv)
    with pytest.raises(openai.APIConnectionError):
        ask(c)
    assert ask(c).choices[0].message.content == "back"


@pytest.mark.parametrize("item", [{"content": "a whole reply", "truncate": 20}, {"status": 503, "truncate": 5}])
def test_truncated_body_is_a_connection_error(scripted_server: Any, item: dict[str, Any]) -> None:
    srv = scripted_server([item, {"content": "back"}])
    c = client(srv)
    with pytest.raises(openai.APIConnectionError):
        ask(c)
    assert ask(c).choices[0].message.content == "back"


def test_message_items_are_sent_verbatim(scripted_server: Any) -> None:
    odd = {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": None, "arguments": {"x": 1}}}],
    }
    srv = scripted_server([{"message": odd}])
    raw = client(srv).chat.completions.with_raw_response.create(model="scripted", messages=USER)
    assert json.loads(raw.text)["choices"][0]["message"] == odd


def test_html_body_with_status_200(scripted_server: Any) -> None:
    srv = scripted_server(
        [{"status": 200, "body": "<html>bad gateway</html>", "headers": {"Content-Type": "text/html"}}]
    )
    reply = client(srv).chat.completions.with_raw_response.create(model="scripted", messages=USER)
    assert reply.status_code == 200 and reply.text == "<html>bad gateway</html>"


def test_probe_script_answers_probes_first_then_the_flags(scripted_server: Any) -> None:
    srv = scripted_server([], probe_script={"tools": [{"status": 429, "headers": {"Retry-After": "0"}}]})
    c = client(srv)
    with pytest.raises(openai.RateLimitError):
        ask(c, tools=[PROBE_TOOL])
    assert ask(c, tools=[PROBE_TOOL]).choices[0].message.tool_calls[0].function.name == PROBE_NAME
    assert len(srv.probe_requests) == 2 and srv.requests == []


def test_echo_tool_results_false_fails_the_tool_result_probe(scripted_server: Any) -> None:
    srv = scripted_server([], echo_tool_results=False)
    messages = [
        *USER,
        {"role": "assistant", "content": "", "tool_calls": [_probe_call()]},
        {"role": "tool", "tool_call_id": "p1", "content": "code: 7431"},
    ]
    reply = ask(client(srv), tools=[PROBE_TOOL], messages=messages)
    assert json.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"ok": True}


def _probe_call() -> dict[str, Any]:
    return {"id": "p1", "type": "function", "function": {"name": PROBE_NAME, "arguments": "{}"}}


def test_bad_fault_items_fail_at_construction() -> None:
    with pytest.raises(ScriptError, match="truncate"):
        ScriptedServer([{"content": "x", "truncate": -1}])
    with pytest.raises(ScriptError, match="message"):
        ScriptedServer([{"message": {"role": "assistant"}, "content": "x"}])
    with pytest.raises(ScriptError, match="probe kinds"):
        ScriptedServer([], probe_script={"tool": []})


# --- capability probing (issue 11, item 3) ---------------------------------------------------------

RATE_LIMITED = {"status": 429, "headers": {"Retry-After": "0"}}


def test_rate_limited_probe_is_retried_with_retry_events() -> None:
    with ScriptedServer([{"content": "done"}], probe_script={"tools": [RATE_LIMITED, RATE_LIMITED]}) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("x")
        first = srv.requests[0]
    assert result.status == "done", result.error
    assert kinds(result).count("model_retry") == 2
    assert "tools" in first  # the probe finally succeeded: native tools


def test_a_probe_timing_out_is_retried() -> None:
    with ScriptedServer([{"content": "done"}], probe_script={"tools": [{"delay": 2.0}, {"delay": 2.0}]}) as srv:
        result = Agent(model=model_for(srv, timeout=0.3), tools=[add]).run("x")
        first = srv.requests[0]
    assert result.status == "done", result.error
    assert kinds(result).count("model_retry") == 2 and "tools" in first


def test_a_passing_5xx_on_a_probe_does_not_mean_unsupported() -> None:
    with ScriptedServer([{"content": "done"}], probe_script={"tools": [{"status": 503}, {"status": 502}]}) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("x")
        first = srv.requests[0]
    assert result.status == "done"
    assert "tools" in first and "response_format" not in first


def test_a_rejected_probe_means_unsupported_without_retries() -> None:
    script = [decide("final_answer", answer="ok")]
    with ScriptedServer(script, probe_script={"tools": [{"status": 400}]}) as srv:
        result = Agent(model=model_for(srv), tools=[add]).run("x")
        first = srv.requests[0]
    assert result.status == "done" and "model_retry" not in kinds(result)
    assert "tools" not in first and "response_format" in first
    assert len(srv.probe_requests) == 2  # one rejected tools probe, one json-schema probe


def test_a_probe_that_keeps_failing_ends_the_run_with_its_error() -> None:
    with ScriptedServer([{"content": "never"}], probe_script={"tools": [RATE_LIMITED] * 4}) as srv:
        result = Agent(model=model_for(srv, max_attempts=4), tools=[add]).run("x")
    assert result.status == "error" and "429" in (result.error or "")
    assert kinds(result)[-1] == "run_finished" and kinds(result).count("model_retry") == 3


def test_max_seconds_covers_the_probe() -> None:
    # Were the probe outside the deadline, it would run to its end: a rate limit that ends the run in error.
    slow_then_limited = [{"delay": 3.0, **RATE_LIMITED}, RATE_LIMITED, RATE_LIMITED, RATE_LIMITED]
    with ScriptedServer([{"content": "done"}], probe_script={"tools": slow_then_limited}) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_seconds=0.3).run("x")
    assert result.status == "budget" and "time budget" in (result.error or "")


async def test_concurrent_agents_sharing_a_model_probe_once() -> None:
    async with ScriptedServer(lambda body, index: {"content": "done"}, latency=0.05) as srv:
        model = model_for(srv)
        results = await asyncio.gather(*(Agent(model=model, tools=[add]).arun(f"task {i}") for i in range(50)))
        await model.aclose()
    assert {r.status for r in results} == {"done"}
    assert len(srv.probe_requests) == 2 and len(srv.requests) == 50


# --- malformed replies (item 5) -------------------------------------------------------------------

HTML = {"status": 200, "body": "<html><body>502 Bad Gateway</body></html>", "headers": {"Content-Type": "text/html"}}
NOT_JSON = {"status": 200, "body": "{not json"}


@pytest.mark.parametrize("fault", [HTML, NOT_JSON, {"status": 200, "body": {"object": "error"}}])
def test_a_malformed_200_reply_is_retried_as_a_server_fault(fault: dict[str, Any]) -> None:
    with ScriptedServer([fault, {"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv, decision_format="tools")).run("Capital of France?")
    assert (result.status, result.answer) == ("done", "Paris")
    assert kinds(result).count("model_retry") == 1


def test_a_persistent_html_reply_ends_the_run_with_a_clear_error() -> None:
    with ScriptedServer([HTML] * 3) as srv:
        result = Agent(model=model_for(srv, decision_format="tools", max_attempts=3)).run("x")
    assert result.status == "error" and "no chat completion" in (result.error or "")
    assert "502 Bad Gateway" in (result.error or "") and kinds(result)[-1] == "run_finished"


def _odd(**message: Any) -> dict[str, Any]:
    return {"message": {"role": "assistant", **message}}


def _odd_call(name: Any, arguments: Any) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}


def test_arguments_sent_as_an_object_are_used() -> None:
    script = [_odd(content=None, tool_calls=[_odd_call("add", {"a": 2, "b": 3})]), call("final_answer", answer="5")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), tools=[add]).run("2 + 3?")
    assert (result.status, result.answer) == ("done", "5")
    outputs = [e.output for e in result.events if e.kind == "tool_result"]
    assert outputs == ["5"]


def test_a_null_tool_name_is_a_parse_error_with_a_repair_round() -> None:
    script = [_odd(content=None, tool_calls=[_odd_call(None, "{}")]), call("final_answer", answer="ok")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), tools=[add]).run("x")
        repair = srv.requests[1]["messages"]
    assert (result.status, result.answer) == ("done", "ok")
    errors = [e.error for e in result.events if e.kind == "parse_error"]
    assert len(errors) == 1 and "no name" in errors[0]
    assert repair[-1]["role"] == "tool" and "no name" in repair[-1]["content"]


@pytest.mark.parametrize("arguments", [[1, 2], 7])
def test_arguments_that_are_not_an_object_are_a_parse_error(arguments: Any) -> None:
    script = [_odd(content=None, tool_calls=[_odd_call("add", arguments)]), call("final_answer", answer="ok")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), tools=[add]).run("x")
    assert result.status == "done" and kinds(result).count("parse_error") == 1


def test_content_as_a_list_of_text_parts_is_joined() -> None:
    parts = [{"type": "text", "text": "Par"}, {"type": "text", "text": "is"}]
    with ScriptedServer([_odd(content=parts)]) as srv:
        result = Agent(model=model_for(srv, decision_format="tools")).run("Capital of France?")
    assert (result.status, result.answer) == ("done", "Paris")


@pytest.mark.parametrize("content", [[{"type": "image_url", "image_url": {"url": "x"}}], {"text": "a"}, 42])
def test_content_without_a_clear_meaning_is_a_parse_error(content: Any) -> None:
    with ScriptedServer([_odd(content=content), {"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv, decision_format="json")).run("Capital of France?")
    assert result.status == "error" or (result.status, result.answer) == ("done", "Paris")
    assert kinds(result).count("parse_error") >= 1 and kinds(result)[-1] == "run_finished"
    assert not (result.error or "").startswith(("TypeError", "AttributeError"))


def test_a_lone_surrogate_in_a_reply_is_scrubbed_so_it_can_be_sent_back() -> None:
    script = [call("add", "half an emoji \ud83d", a=1, b=2), call("final_answer", answer="3 \ud83d")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), tools=[add]).run("1 + 2?")
        resent = srv.requests[1]["messages"]
    assert result.status == "done", result.error
    assert result.answer == "3 \ufffd"
    assistant = next(m for m in resent if m["role"] == "assistant")
    assert assistant["content"] == "half an emoji \ufffd"


@pytest.mark.parametrize("strategy", ["react", "babyagi"])
def test_a_lone_surrogate_escaped_in_a_json_reply_is_scrubbed(strategy: str, tmp_path: Any) -> None:
    answer = decide("final_answer", answer="a \ud800 b")  # json.dumps writes the escape `\ud800`
    assert "\\ud800" in answer["content"]
    done = {"content": json.dumps({"complete": True, "summary": "half \ud800"})}
    options = {"store": str(tmp_path / "tasks.db")} if strategy == "babyagi" else {}
    with ScriptedServer([answer, done]) as srv:
        model = model_for(srv, decision_format="json")
        result = Agent(model=model, strategy=strategy, **options).run("q")
    assert result.status == "done", result.error  # BabyAGI's SQLite write raised UnicodeEncodeError
    assert result.answer in ("a \ufffd b", "half \ufffd") and result.answer.encode("utf-8")


# --- reading what comes back, whatever was asked (item 4) -------------------------------------------


def test_a_json_decision_in_native_mode_is_a_decision() -> None:
    script = [decide("add", "sum first", a=2, b=3), call("final_answer", answer="5")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv, decision_format="tools"), tools=[add]).run("2 + 3?")
        second = srv.requests[1]["messages"]
    assert (result.status, result.answer) == ("done", "5")
    assert [e.output for e in result.events if e.kind == "tool_result"] == ["5"]
    # No tool call was made natively, so the observation goes back as text, not as an orphan tool message.
    assert second[-1]["role"] == "user" and "5" in second[-1]["content"]


def test_native_tool_calls_in_json_mode_are_a_decision_answered_with_tool_messages() -> None:
    script = [call("add", a=2, b=3), decide("final_answer", answer="5")]
    with ScriptedServer(script, native_tools=True) as srv:
        result = Agent(model=model_for(srv, decision_format="json_schema"), tools=[add]).run("2 + 3?")
        second = srv.requests[1]["messages"]
    assert (result.status, result.answer) == ("done", "5")
    assert second[-1]["role"] == "tool" and second[-1]["content"] == "5"


def test_a_ten_step_native_episode_runs_without_a_decision_format_though_the_probe_failed() -> None:
    """The done-criterion: native tool calls from an endpoint whose tool-result probe fails."""
    script = [call("add", a=i, b=1) for i in range(9)] + [call("final_answer", answer="done")]
    with ScriptedServer(script, native_tools=True, echo_tool_results=False) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_steps=12).run("count")
        requests, probes = list(srv.requests), list(srv.probe_requests)
    assert (result.status, result.answer) == ("done", "done"), result.error
    assert len(requests) == 10 and len(probes) <= 2
    assert "response_format" in requests[0] and "tools" not in requests[0]  # the probe said JSON...
    assert "tools" in requests[-1]  # ...and the replies switched the run to native tools
    notes = [e for e in result.events if e.kind == "note" and e.data.get("to") == "tools"]
    assert len(notes) == 1
    assert [e.output for e in result.events if e.kind == "tool_result"] == [str(i + 1) for i in range(9)]


def test_a_key_the_server_echoes_back_is_in_no_error_or_event(scripted_server: Any) -> None:
    key = "gateway-key-5f3a9c1e"  # no `sk-` shape and in no environment variable: only the model knows it
    echoed = {"error": {"message": f"Incorrect API key provided: {key}.", "code": "invalid_api_key"}}
    srv = scripted_server([{"status": 503, "body": echoed}, {"status": 401, "body": echoed}])
    result = Agent(model=toolbox.model_for(srv, api_key=key, max_retry_wait=0.01)).run("hi")

    assert result.status == "error" and "Incorrect API key provided: [redacted]" in result.error
    assert any(e.kind == "model_retry" for e in result.events)
    assert key not in json.dumps([e.to_dict() for e in result.events]) + json.dumps(result.trace)
