"""The scripted server, exercised only through the official openai client over real HTTP."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from collections.abc import Callable
from typing import Any

import openai
import pytest

from agentlab.testing import PROBE_NAME, ScriptedServer, ScriptError

Factory = Callable[..., ScriptedServer]
USER = [{"role": "user", "content": "What is 1 + 2? Please answer briefly."}]


def client(srv: ScriptedServer, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=0, **kw)


def aclient(srv: ScriptedServer, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=0, **kw)


def ask(c: openai.OpenAI, **kw: Any) -> Any:
    return c.chat.completions.create(model="scripted", messages=kw.pop("messages", USER), **kw)


PROBE_TOOL = {
    "type": "function",
    "function": {
        "name": PROBE_NAME,
        "parameters": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    },
}
PROBE_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": PROBE_NAME,
        "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    },
}


# --- plain replies ------------------------------------------------------------------------------


def test_text_reply_with_default_usage_and_recorded_request(scripted_server: Factory) -> None:
    srv = scripted_server([{"content": "3"}])
    reply = ask(client(srv), temperature=0)

    assert reply.choices[0].message.content == "3"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    assert srv.requests == [{"model": "scripted", "messages": USER, "temperature": 0}]
    assert srv.remaining == 0 and srv.consumed == 1 and srv.failures == []


def test_explicit_usage_and_truncation(scripted_server: Factory) -> None:
    srv = scripted_server(
        [
            {
                "finish_reason": "length",
                "content": '{"thought": "trunc',
                "usage": {"prompt_tokens": 7, "completion_tokens": 5},
            }
        ]
    )
    reply = ask(client(srv))

    assert reply.choices[0].finish_reason == "length"
    assert reply.choices[0].message.content == '{"thought": "trunc'
    assert reply.usage is not None
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (7, 5, 12)


async def test_async_client_and_async_context_manager() -> None:
    async with ScriptedServer([{"content": "one"}, {"content": "two"}]) as srv:
        c = aclient(srv)
        first = await c.chat.completions.create(model="scripted", messages=USER)
        second = await c.chat.completions.create(model="scripted", messages=USER)
        await c.close()
    assert [first.choices[0].message.content, second.choices[0].message.content] == ["one", "two"]
    assert len(srv.requests) == 2


def test_models_endpoint(scripted_server: Factory) -> None:
    srv = scripted_server([], model="tiny")
    assert [m.id for m in client(srv).models.list()] == ["tiny"]


def test_callable_script_gets_body_and_index(scripted_server: Factory) -> None:
    def script(body: dict[str, Any], index: int) -> dict[str, Any] | None:
        return None if index == 2 else {"content": f"{index}:{body['messages'][-1]['content']}"}

    srv = scripted_server(script)
    c = client(srv)
    assert ask(c, messages=[{"role": "user", "content": "a"}]).choices[0].message.content == "0:a"
    assert ask(c, messages=[{"role": "user", "content": "b"}]).choices[0].message.content == "1:b"
    with pytest.raises(openai.InternalServerError, match="script exhausted"):
        ask(c)


# --- tool calls ---------------------------------------------------------------------------------


def test_tool_calls_dict_and_raw_arguments(scripted_server: Factory) -> None:
    srv = scripted_server(
        [
            {
                "content": "let me compute",
                "tool_calls": [
                    {"name": "add", "arguments": {"a": 1, "b": 2}},
                    {"name": "add", "arguments": '{"a": 1, "b":', "id": "mine"},
                ],
            },
            {"tool_calls": [{"name": "noop"}]},
        ]
    )
    c = client(srv)
    msg = ask(c).choices[0]
    assert msg.finish_reason == "tool_calls"
    assert msg.message.content == "let me compute"
    calls = msg.message.tool_calls
    assert calls is not None and len(calls) == 2
    assert calls[0].function.name == "add" and json.loads(calls[0].function.arguments) == {"a": 1, "b": 2}
    assert calls[0].id.startswith("call_")
    assert calls[1].id == "mine" and calls[1].function.arguments == '{"a": 1, "b":'  # verbatim, malformed

    second = ask(c).choices[0].message
    assert second.content is None
    assert second.tool_calls is not None
    assert second.tool_calls[0].function.arguments == "{}"
    assert second.tool_calls[0].id not in {calls[0].id, calls[1].id}


def test_tool_calls_refused_without_native_tools(scripted_server: Factory) -> None:
    srv = scripted_server([{"tool_calls": [{"name": "add", "arguments": {}}]}], native_tools=False)
    with pytest.raises(openai.InternalServerError, match="native_tools=False"):
        ask(client(srv))
    assert srv.failures and "native_tools=False" in srv.failures[0]


# --- errors and faults --------------------------------------------------------------------------


def test_rate_limit_with_retry_after(scripted_server: Factory) -> None:
    srv = scripted_server([{"status": 429, "headers": {"Retry-After": "0.2"}}, {"content": "after"}])
    c = client(srv)
    with pytest.raises(openai.RateLimitError) as info:
        ask(c)
    assert info.value.response.headers["retry-after"] == "0.2"
    assert info.value.status_code == 429
    # The connection stays usable after an error reply.
    assert ask(c).choices[0].message.content == "after"
    assert len(srv.requests) == 2


def test_error_status_with_custom_body(scripted_server: Factory) -> None:
    body = {"error": {"message": "context too long", "type": "invalid_request_error", "code": "ctx"}}
    srv = scripted_server([{"status": 400, "body": body}, {"status": 503}])
    c = client(srv)
    with pytest.raises(openai.BadRequestError, match="context too long") as info:
        ask(c)
    assert info.value.code == "ctx"
    with pytest.raises(openai.InternalServerError) as server_error:
        ask(c)
    assert server_error.value.status_code == 503


def test_script_exhausted(scripted_server: Factory) -> None:
    srv = scripted_server([{"content": "only"}])
    c = client(srv)
    ask(c)
    with pytest.raises(openai.InternalServerError, match="scripted server: script exhausted"):
        ask(c)
    assert len(srv.requests) == 1
    assert srv.failures == ["scripted server: script exhausted after 1 replies"]


def test_delay_lets_the_client_time_out(scripted_server: Factory) -> None:
    srv = scripted_server([{"delay": 2.0, "content": "late"}, {"content": "on time"}])
    c = client(srv, timeout=0.3)
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        ask(c)
    assert time.perf_counter() - started < 1.5
    assert ask(c).choices[0].message.content == "on time"


def test_drop_closes_without_reply(scripted_server: Factory) -> None:
    srv = scripted_server([{"drop": True}, {"content": "back"}])
    c = client(srv)
    with pytest.raises(openai.APIConnectionError):
        ask(c)
    assert ask(c).choices[0].message.content == "back"


def test_malformed_items_fail_at_construction() -> None:
    with pytest.raises(ScriptError, match="tool_call"):
        ScriptedServer([{"tool_call": [{"name": "x"}]}])
    with pytest.raises(ScriptError, match="status"):
        ScriptedServer([{"status": 429, "content": "x"}])
    with pytest.raises(ScriptError):
        ScriptedServer(["plain string"])  # type: ignore[list-item]


def test_invalid_item_from_callable_is_a_clear_500(scripted_server: Factory) -> None:
    srv = scripted_server(lambda body, index: {"contnet": "typo"})
    with pytest.raises(openai.InternalServerError, match="contnet"):
        ask(client(srv))


# --- probes -------------------------------------------------------------------------------------


@pytest.mark.parametrize("native_tools", [True, False])
def test_tool_probe(scripted_server: Factory, native_tools: bool) -> None:
    srv = scripted_server([{"content": "scripted"}], native_tools=native_tools)
    c = client(srv)
    message = ask(c, tools=[PROBE_TOOL]).choices[0].message
    if native_tools:
        assert message.tool_calls is not None
        assert message.tool_calls[0].function.name == PROBE_NAME
        assert json.loads(message.tool_calls[0].function.arguments) == {"ok": True}
    else:
        assert message.tool_calls is None and message.content == "pong"
    assert srv.remaining == 1 and srv.requests == [] and len(srv.probe_requests) == 1
    assert ask(c).choices[0].message.content == "scripted"


@pytest.mark.parametrize("json_schema", [True, False])
async def test_json_schema_probe(scripted_server: Factory, json_schema: bool) -> None:
    srv = scripted_server([], json_schema=json_schema)
    c = aclient(srv)
    reply = await c.chat.completions.create(model="scripted", messages=USER, response_format=PROBE_FORMAT)  # type: ignore[arg-type]
    await c.close()
    content = reply.choices[0].message.content
    assert content is not None
    if json_schema:
        assert json.loads(content) == {"ok": True}
    else:
        assert content == "pong"
    assert srv.probe_requests[0]["response_format"] == PROBE_FORMAT
    assert srv.requests == [] and srv.failures == []


# --- concurrency, keep-alive, streaming ---------------------------------------------------------


async def test_concurrent_requests_overlap(scripted_server: Factory) -> None:
    srv = scripted_server(lambda body, index: {"content": str(index)}, latency=0.05)
    c = aclient(srv)
    started = time.perf_counter()
    replies = await asyncio.gather(*(c.chat.completions.create(model="scripted", messages=USER) for _ in range(50)))
    elapsed = time.perf_counter() - started
    await c.close()
    assert sorted(int(r.choices[0].message.content or "") for r in replies) == list(range(50))
    assert elapsed < 1.5, f"50 requests at 50 ms each took {elapsed:.2f}s: not served concurrently"


def test_keep_alive_serves_many_requests_on_one_connection(scripted_server: Factory) -> None:
    srv = scripted_server(lambda body, index: {"content": "ok"})
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=5)
    payload = json.dumps({"model": "scripted", "messages": USER})
    for _ in range(3):
        conn.request("POST", "/v1/chat/completions", payload, {"Content-Type": "application/json"})
        response = conn.getresponse()
        response_json = json.loads(response.read())
        assert response.status == 200 and response.getheader("Connection") is None
        assert response_json["choices"][0]["message"]["content"] == "ok"
    conn.close()
    assert srv.consumed == 3


def test_streaming_text_tool_calls_and_usage(scripted_server: Factory) -> None:
    srv = scripted_server(
        [
            {"content": "a fairly long streamed answer, longer than one chunk"},
            {"tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 2, "note": "x" * 40}}]},
        ]
    )
    c = client(srv)
    chunks = list(ask(c, stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "a fairly long streamed answer, longer than one chunk"
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0

    with c.chat.completions.stream(model="scripted", messages=USER) as stream:  # type: ignore[arg-type]
        final = stream.get_final_completion()
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "add"
    assert json.loads(calls[0].function.arguments) == {"a": 1, "b": 2, "note": "x" * 40}
    assert final.choices[0].finish_reason == "tool_calls"


def test_lifecycle_guards_and_idempotent_stop() -> None:
    srv = ScriptedServer([{"content": "x"}])
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    srv.start()
    assert srv.base_url.startswith("http://127.0.0.1:") and srv.base_url.endswith("/v1")
    with pytest.raises(RuntimeError):
        srv.start()
    srv.stop()
    srv.stop()
    srv.extend([{"content": "y"}])
    assert srv.remaining == 2
