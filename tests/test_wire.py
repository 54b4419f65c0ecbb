"""The request body agentlab encodes itself and the replies it reads without the client's models, checked on
the wire: what the scripted server received and what `complete` returned."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest

from agentlab.models import ModelError, ModelRequest, OpenAIModel
from agentlab.models.base import ReplyDelta
from agentlab.testing import ScriptedServer


def model_on(srv: ScriptedServer, **options: Any) -> OpenAIModel:
    return OpenAIModel("scripted", base_url=srv.base_url, api_key="k", decision_format="tools", **options)


async def test_a_message_changed_between_requests_is_sent_as_it_is_now() -> None:
    # The encoding of a message is reused only while the dict holds the same values.
    first = {"role": "user", "content": "one"}
    async with ScriptedServer([{"content": "a"}, {"content": "b"}, {"content": "c"}]) as srv:
        model = model_on(srv)
        await model.complete(ModelRequest(messages=[first]))
        first["content"] = "two"
        second = {"role": "user", "content": "three"}
        await model.complete(ModelRequest(messages=[first, second]))
        first["name"] = "someone"
        await model.complete(ModelRequest(messages=[first, second]))
        await model.aclose()
    sent = [request["messages"] for request in srv.requests]
    assert sent[0] == [{"role": "user", "content": "one"}]
    assert sent[1] == [{"role": "user", "content": "two"}, {"role": "user", "content": "three"}]
    assert sent[2][0] == {"role": "user", "content": "two", "name": "someone"}


async def test_extra_body_fields_go_into_the_json_body_and_the_reply_is_read() -> None:
    reply = {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}], "content": "thinking"}
    async with ScriptedServer([reply]) as srv:
        model = model_on(srv, extra_body={"top_k": 5, "cache_prompt": True})
        response = await model.complete(ModelRequest(messages=[{"role": "user", "content": "2+3?"}]))
        await model.aclose()
    assert srv.requests[0]["top_k"] == 5 and srv.requests[0]["cache_prompt"] is True
    assert response.content == "thinking" and response.tool_calls[0].name == "add"
    assert response.usage.prompt_tokens > 0


async def test_streamed_and_plain_replies_read_alike_with_many_agents_at_once() -> None:
    # More requests in flight than one HTTP client carries: several clients, every reply intact.
    async with ScriptedServer(lambda body, index: {"content": f"reply {body['messages'][0]['content']}"}) as srv:
        model = model_on(srv)

        pieces: list[ReplyDelta] = []
        plain = [model.complete(ModelRequest(messages=[{"role": "user", "content": str(i)}])) for i in range(70)]
        streamed = model.complete(ModelRequest(messages=[{"role": "user", "content": "s"}]), on_delta=pieces.append)
        replies = await asyncio.gather(*plain, streamed)
        await model.aclose()
    assert [r.content for r in replies] == [f"reply {i}" for i in range(70)] + ["reply s"]
    assert "".join(p.text or "" for p in pieces) == "reply s"


async def test_requests_carry_the_key_and_the_openai_clients_headers() -> None:
    async with ScriptedServer([{"content": "a"}]) as srv:
        model = model_on(srv)
        await model.complete(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
        await model.aclose()
    headers = srv.request_headers[0]
    assert headers["authorization"] == "Bearer k"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("AsyncOpenAI/Python")


STATUSES = [400, 401, 403, 404, 409, 418, 422, 429, 500, 503]


@pytest.mark.parametrize("status", STATUSES)
async def test_an_error_status_raises_what_the_openai_client_raises(status: int) -> None:
    item = {"status": status, "body": {"error": {"message": f"no ({status})", "type": "x"}}}
    async with ScriptedServer([item, item]) as srv:
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="k", max_retries=0)
        with pytest.raises(openai.APIStatusError) as theirs:
            await client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
        await client.close()
        model = model_on(srv, max_attempts=1)
        with pytest.raises(ModelError) as ours:
            await model.complete(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
        await model.aclose()
    cause = ours.value.__cause__
    assert type(cause) is type(theirs.value)
    assert isinstance(cause, openai.APIStatusError)
    assert str(cause) == str(theirs.value) == f"Error code: {status} - no ({status})"
    assert cause.status_code == status and cause.body == theirs.value.body


async def test_a_body_that_is_not_json_is_the_error_text() -> None:
    item = {"status": 502, "body": "<html>bad gateway</html>", "headers": {"Content-Type": "text/html"}}
    async with ScriptedServer([item]) as srv:
        model = model_on(srv, max_attempts=1)
        with pytest.raises(ModelError, match="HTTP 502: InternalServerError: Error code: 502") as ours:
            await model.complete(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
        await model.aclose()
    assert getattr(ours.value.__cause__, "body", None) == "<html>bad gateway</html>"


async def test_timeouts_and_refused_connections_raise_the_openai_clients_errors() -> None:
    async with ScriptedServer([{"content": "late", "delay": 2.0}]) as srv:
        model = model_on(srv, max_attempts=1, timeout=0.2)
        with pytest.raises(ModelError) as timed_out:
            await model.complete(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
        await model.aclose()
        port = srv.port
    assert isinstance(timed_out.value.__cause__, openai.APITimeoutError)
    gone = OpenAIModel("scripted", base_url=f"http://127.0.0.1:{port}/v1", api_key="k", decision_format="tools")
    gone.max_attempts = 1
    with pytest.raises(ModelError) as refused:
        await gone.complete(ModelRequest(messages=[{"role": "user", "content": "hi"}]))
    await gone.aclose()
    assert type(refused.value.__cause__) is openai.APIConnectionError


async def test_a_rate_limit_is_retried_after_the_wait_the_server_asks_for() -> None:
    limited = {"status": 429, "headers": {"Retry-After": "0"}}
    async with ScriptedServer([limited, {"content": "fine"}]) as srv:
        model = model_on(srv, max_retry_wait=5.0)
        waits: list[float] = []
        response = await model.complete(
            ModelRequest(messages=[{"role": "user", "content": "hi"}]), lambda attempt, error, wait: waits.append(wait)
        )
        await model.aclose()
    assert response.content == "fine" and waits == [0.0]
