"""The request body agentlab encodes itself and the replies it reads without the client's models, checked on
the wire: what the scripted server received and what `complete` returned."""

from __future__ import annotations

import asyncio
from typing import Any

from agentlab.models import ModelRequest, OpenAIModel
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
