"""Context compaction over real HTTP: requests stay within the window, the task and system prompt stay, tool
calls stay with their results, a failed summary falls back to dropping whole turns, and what was shortened
can be recalled."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from toolbox import model_for

from agentlab import Agent, tool
from agentlab.events import Compacted
from agentlab.run.compaction import SUMMARY_PREFIX, SUMMARY_SYSTEM, Compactor, split_turns
from agentlab.testing import ScriptedServer

WINDOW = 2200
TASK = "Read pages 1 to 8 and tell me the secret word."


@tool
def read_page(n: int) -> str:
    """Read one page of the book.

    Args:
        n: The page number.
    """
    filler = " ".join(f"page{n}-word{i}" for i in range(250))  # about 600 tokens
    return f"Page {n}. The secret word of page {n} is kiwi{n}. {filler}"


def is_summary(body: dict[str, Any]) -> bool:
    return body["messages"][0]["content"] == SUMMARY_SYSTEM


def book_script(pages: int, summary: str, recall_first: bool = False) -> Any:
    """Read the pages in order (counting this script's own replies: a compacted request no longer shows every
    earlier call), optionally recall, then answer."""
    asked: list[int] = []

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if is_summary(body):
            return {"content": summary}
        asked.append(index)
        if len(asked) <= pages:
            return {"tool_calls": [{"name": "read_page", "arguments": {"n": len(asked)}}]}
        if recall_first and len(asked) == pages + 1:
            return {"tool_calls": [{"name": "recall", "arguments": {"query": "secret word of page 1 kiwi1"}}]}
        return {"content": f"done after {pages} pages"}

    return reply


def check_invariants(requests: list[dict[str, Any]]) -> None:
    chats = [r for r in requests if not is_summary(r)]
    system, task = chats[0]["messages"][0], chats[0]["messages"][1]
    assert system["role"] == "system" and task == {"role": "user", "content": TASK}
    for body in chats:
        messages = body["messages"]
        assert messages[0] == system and messages[1] == task  # pinned
        called: set[str] = set()
        for message in messages:
            called |= {c["id"] for c in message.get("tool_calls") or []}
            if message["role"] == "tool":
                assert message["tool_call_id"] in called  # a result never without its call
        answered = {m["tool_call_id"] for m in messages if m["role"] == "tool"}
        assert called <= answered  # a call never without its result


def run_book(
    scripted_server: Any, summary: str, pages: int = 8, server: dict[str, Any] | None = None, **options: Any
) -> tuple[Any, Any]:
    srv = scripted_server(book_script(pages, summary, options.pop("recall_first", False)), **(server or {}))
    options.setdefault("context_window", WINDOW)
    agent = Agent(model_for(srv), tools=[read_page], max_steps=20, **options)
    return agent.run(TASK), srv


def test_long_observations_are_compacted_with_previews_then_a_summary(scripted_server: Any) -> None:
    result, srv = run_book(scripted_server, "Pages 1-4 read; the secret words are kiwi1..kiwi4.")

    assert result.status == "done" and result.answer == "done after 8 pages"
    check_invariants(srv.requests)
    compacted = [e for e in result.events if isinstance(e, Compacted)]
    assert compacted and all(e.tokens_after < e.tokens_before and e.window == WINDOW for e in compacted)
    assert {e.action for e in compacted} >= {"previews", "summary"}
    last = srv.requests[-1]["messages"]
    assert any(str(m["content"]).startswith(SUMMARY_PREFIX) for m in last)
    assert sum(len(str(m["content"] or "")) for m in last) < WINDOW * 3.5 * 0.75
    # The summary was asked for once and then reused, not asked again on every step.
    assert sum(1 for r in srv.requests if is_summary(r)) < len(compacted)


def test_the_same_run_without_compaction_sends_everything(scripted_server: Any) -> None:
    result, srv = run_book(scripted_server, "unused", compaction=False)
    assert result.status == "done"
    assert not any(isinstance(e, Compacted) for e in result.events)
    assert sum(len(str(m["content"] or "")) for m in srv.requests[-1]["messages"]) > WINDOW * 3.5


def test_an_empty_summary_replaces_nothing_and_the_oldest_whole_turns_are_dropped(scripted_server: Any) -> None:
    result, srv = run_book(scripted_server, "   ")

    assert result.status == "done"
    check_invariants(srv.requests)
    actions = {e.action for e in result.events if isinstance(e, Compacted)}
    assert "dropped" in actions and "summary" not in actions
    assert not any(SUMMARY_PREFIX in str(m["content"]) for r in srv.requests for m in r["messages"])


def test_what_was_shortened_can_be_recalled(scripted_server: Any) -> None:
    result, _ = run_book(scripted_server, "", recall_first=True)

    assert result.status == "done"
    recalled = [e for e in result.events if e.kind == "tool_result" and e.call.name == "recall"]
    assert recalled and "The secret word of page 1 is kiwi1." in recalled[0].output
    assert "word249" in recalled[0].output or "page1-word2" in recalled[0].output


@pytest.mark.parametrize("fmt", ["json_schema", "json"])
def test_what_was_shortened_can_be_recalled_in_the_json_formats_too(scripted_server: Any, fmt: str) -> None:
    asked: list[int] = []

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if is_summary(body):
            return {"content": ""}
        asked.append(index)
        action: dict[str, Any] = {"name": "read_page", "arguments": {"n": len(asked)}}
        if len(asked) == 9:
            action = {"name": "recall", "arguments": {"query": "secret word of page 1 kiwi1"}}
        elif len(asked) > 9:
            action = {"name": "final_answer", "arguments": {"answer": "kiwi1"}}
        return {"content": json.dumps({"thought": "next", "action": action})}

    srv = scripted_server(reply, native_tools=False, json_schema=fmt == "json_schema")
    agent = Agent(model_for(srv, decision_format=fmt), tools=[read_page], max_steps=20, context_window=WINDOW)
    result = agent.run(TASK)
    recalled = [e for e in result.events if e.kind == "tool_result" and e.call.name == "recall"]
    # Before, the pages seconds newer (and the JSON actions and previews stored beside them) came first.
    first_hit = recalled[0].output.split("\n---\n")[0] if recalled else ""
    assert "Page 1. The secret word of page 1 is kiwi1." in first_hit


def test_a_time_budget_spent_during_a_summary_ends_the_run(scripted_server: Any) -> None:
    book = book_script(8, "")

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if is_summary(body):
            return {"content": "a summary", "delay": 5}  # the model hangs on the summary
        return book(body, index)

    srv = scripted_server(reply)
    agent = Agent(model_for(srv), tools=[read_page], max_steps=20, context_window=WINDOW, max_seconds=1.5)
    result = agent.run(TASK)
    # Before, the deadline was taken for a failed summary: the turns were dropped and the run asked again.
    assert result.status == "budget" and not any(e.kind == "compacted" and e.action == "dropped" for e in result.events)


def offered_actions(body: dict[str, Any]) -> set[str]:
    """The tool names a request lets the model choose: native tools, or a decision schema's actions."""
    if body.get("tools"):
        return {t["function"]["name"] for t in body["tools"]}
    action = body["response_format"]["json_schema"]["schema"]["properties"]["action"]
    return {v["properties"]["name"]["const"] for v in action.get("anyOf", [action])}


def json_book_script(pages: int) -> Any:
    """book_script for a server without native tools: decisions are JSON text."""
    asked: list[int] = []

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if is_summary(body):
            return {"content": "Pages read so far; the secret words are kiwi1 and on."}
        asked.append(index)
        action = {"name": "read_page", "arguments": {"n": len(asked)}}
        if len(asked) > pages:
            action = {"name": "final_answer", "arguments": {"answer": f"done after {pages} pages"}}
        return {"content": json.dumps({"thought": "next", "action": action})}

    return reply


@pytest.mark.parametrize("fmt", ["tools", "json_schema"])
def test_recall_is_offered_from_the_first_compaction_on_not_before(scripted_server: Any, fmt: str) -> None:
    if fmt == "tools":
        srv = scripted_server(book_script(8, "Pages 1-4 read; the secret words are kiwi1..kiwi4."))
    else:
        srv = scripted_server(json_book_script(8), native_tools=False)
    result = Agent(model_for(srv), tools=[read_page], max_steps=20, context_window=WINDOW).run(TASK)

    assert result.status == "done" and result.answer == "done after 8 pages"
    first = min(e.step for e in result.events if isinstance(e, Compacted))
    chats = [r for r in srv.requests if not is_summary(r)]
    assert 1 < first < len(chats)  # some requests before the first compaction, some after
    for step, body in enumerate(chats, start=1):
        assert ("recall" in offered_actions(body)) == (step >= first), step
        assert "read_page" in offered_actions(body)


def test_turns_keep_calls_with_results_and_the_head_is_pinned() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "t"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a"}, {"id": "b"}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "tool", "tool_call_id": "b", "content": "2"},
        {"role": "assistant", "content": "answer"},
    ]
    head, turns = split_turns(messages)
    assert head == messages[:2] and turns == [messages[2:5], messages[5:]]


def test_a_task_after_earlier_turns_is_pinned_with_them() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "the task"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "a"}]},
        {"role": "tool", "tool_call_id": "a", "content": "1"},
    ]
    head, turns = split_turns(messages, "the task")
    assert head == messages[:4] and turns == [messages[4:]]
    assert split_turns(messages) == (messages[:2], [messages[2:4], messages[4:]])  # without the task: not pinned


def test_a_run_that_continues_a_chat_keeps_its_task_whole_when_turns_are_dropped(scripted_server: Any) -> None:
    task = "Read the book, page by page. " + "Then tell me every secret word. " * 30  # longer than a preview
    history = [{"role": "user", "content": "earlier question"}, {"role": "assistant", "content": "earlier answer"}]
    srv = scripted_server(book_script(8, ""))  # an empty summary: the oldest turns are dropped
    result = Agent(model_for(srv), tools=[read_page], max_steps=20, context_window=WINDOW).run(task, history=history)
    chats = [r for r in srv.requests if not is_summary(r)]
    assert result.status == "done" and any(e.kind == "compacted" for e in result.events)
    # Before, the task (a user message after the earlier reply) was cut to a preview, then dropped.
    assert all({"role": "user", "content": task} in body["messages"] for body in chats)


def test_a_summary_request_counts_against_the_cost_limit(scripted_server: Any) -> None:
    from agentlab import Price

    book = book_script(8, "")

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        if is_summary(body):
            return {"content": "a summary", "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 10}}
        return book(body, index)

    srv = scripted_server(reply)
    prices = {"scripted": Price(input_per_million=1.0, output_per_million=1.0)}
    agent = Agent(model_for(srv), tools=[read_page], max_steps=20, context_window=WINDOW, prices=prices)
    result = agent.run(TASK)
    summaries = sum(1 for r in srv.requests if is_summary(r))
    assert summaries >= 1 and result.cost is not None and result.cost >= summaries * 1.0


@pytest.mark.asyncio
async def test_a_summariser_that_raises_falls_back_to_dropping() -> None:
    big = "x" * 4000
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "task"}]
    for i in range(6):
        messages += [
            {"role": "assistant", "content": "", "tool_calls": [{"id": f"c{i}", "function": {"name": "f"}}]},
            {"role": "tool", "tool_call_id": f"c{i}", "content": big},
        ]
    from agentlab.models.base import ModelRequest

    async def broken(turns: list[dict[str, Any]]) -> str:
        raise RuntimeError("model down")

    compactor = Compactor(1000, preview_chars=3000)
    outcome = await compactor.compact(ModelRequest(messages), broken)
    assert outcome is not None and outcome.action == "dropped" and outcome.summary == ""
    assert outcome.request.messages[:2] == messages[:2] and outcome.request.messages[-2:] == messages[-2:]
    assert outcome.tokens_after < outcome.tokens_before


# --- the window learned from the endpoint -------------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    [
        {"props": {"default_generation_settings": {"n_ctx": WINDOW}}},  # llama.cpp's server
        {"props": {"n_ctx": WINDOW}},  # older llama.cpp servers
        {"model_info": {"max_model_len": WINDOW}},  # vLLM
    ],
)
def test_the_window_is_learned_from_the_endpoint(scripted_server: Any, server: dict[str, Any]) -> None:
    result, srv = run_book(scripted_server, "Pages 1-4 read.", server=server, context_window=None)

    assert result.status == "done"
    compacted = [e for e in result.events if isinstance(e, Compacted)]
    assert compacted and all(e.window == WINDOW for e in compacted)
    check_invariants(srv.requests)


@pytest.mark.asyncio
async def test_the_window_is_asked_for_once_per_model_by_concurrent_callers(scripted_server: Any) -> None:
    srv = scripted_server([], model_info={"max_model_len": 32768})
    model = model_for(srv)

    assert await asyncio.gather(*(model.context_window() for _ in range(5))) == [32768] * 5
    assert await model.context_window() == 32768
    assert srv.info_requests == ["/v1/models"]


@pytest.mark.parametrize(
    "server",
    [
        {},  # /props answers 404, the model entry has no length
        {"props": "<html>not json</html>"},
        {"props": {"default_generation_settings": {"n_ctx": "big"}}, "model_info": {"max_model_len": -1}},
    ],
)
def test_an_endpoint_that_does_not_say_means_no_compaction_and_no_failure(
    scripted_server: Any, server: dict[str, Any]
) -> None:
    srv = scripted_server(book_script(3, "unused"), **server)
    agent = Agent(model_for(srv), tools=[read_page], max_steps=10)

    first, second = agent.run(TASK), agent.run(TASK)

    assert first.status == second.status == "done"
    assert not any(isinstance(e, Compacted) for e in [*first.events, *second.events])
    assert srv.info_requests == ["/v1/models", "/props"]  # "unknown" is remembered too: asked once


@pytest.mark.asyncio
async def test_an_unreachable_endpoint_means_unknown_and_is_asked_again_later() -> None:
    from agentlab import OpenAIModel

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    model = OpenAIModel("scripted", f"http://127.0.0.1:{port}/v1", "test-key")
    assert await model.context_window() is None

    async with ScriptedServer([], host="127.0.0.1", port=port, props={"n_ctx": 4096}):
        assert await model.context_window() == 4096
