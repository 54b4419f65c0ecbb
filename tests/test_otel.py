"""OpenTelemetry spans recorded from real runs against a scripted OpenAI-compatible server."""

from __future__ import annotations

from functools import partial

import pytest
import toolbox
from toolbox import add, call, explode

from agentlab import Agent
from agentlab.testing import ScriptedServer

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentlab.otel import OTelRecorder, otel_traced


@pytest.fixture
def exporter() -> tuple[TracerProvider, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


model_for = partial(toolbox.model_for, model="scripted-7b")  # the spans below are named after it


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


SCRIPT = [
    {**call("add", a=2, b=3), "usage": {"prompt_tokens": 50, "completion_tokens": 7}},
    {"tool_calls": [{"name": "add", "arguments": "{not json"}], "usage": {"prompt_tokens": 60, "completion_tokens": 4}},
    {**call("explode", reason="test"), "usage": {"prompt_tokens": 70, "completion_tokens": 6}},
    {**call("final_answer", answer="5"), "usage": {"prompt_tokens": 80, "completion_tokens": 5}},
]


async def test_spans_of_a_run_follow_the_genai_conventions(exporter):
    provider, memory = exporter
    with ScriptedServer(SCRIPT) as srv:
        agent = Agent(model=model_for(srv), tools=[add, explode], max_parse_failures=3)
        seen = [e async for e in otel_traced(agent.astream("What is 2 + 3?"), provider)]
    assert seen[-1].kind == "run_finished" and seen[-1].status == "done"
    spans = memory.get_finished_spans()
    assert sorted(s.name for s in spans) == sorted(
        ["invoke_agent", *["chat scripted-7b"] * 4, "execute_tool add", "execute_tool explode"]
    )
    (run,) = by_name(spans, "invoke_agent")
    assert run.parent is None
    assert run.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert run.attributes["gen_ai.request.model"] == "scripted-7b"
    assert run.attributes["gen_ai.usage.input_tokens"] == 50 + 60 + 70 + 80
    assert run.attributes["gen_ai.usage.output_tokens"] == 7 + 4 + 6 + 5
    assert run.attributes["agentlab.status"] == "done" and run.status.status_code != StatusCode.ERROR
    for child in spans:
        if child is not run:
            assert child.parent is not None and child.parent.span_id == run.context.span_id
            assert child.context.trace_id == run.context.trace_id
            assert run.start_time <= child.start_time <= child.end_time <= run.end_time

    chats = sorted(by_name(spans, "chat scripted-7b"), key=lambda s: s.start_time)
    assert [c.attributes["gen_ai.usage.input_tokens"] for c in chats] == [50, 60, 70, 80]
    assert [c.attributes["gen_ai.usage.output_tokens"] for c in chats] == [7, 4, 6, 5]
    assert all(c.attributes["gen_ai.operation.name"] == "chat" for c in chats)
    assert [e.name for e in chats[1].events] == ["agentlab.parse_error"]
    assert [e.name for e in chats[0].events] == ["agentlab.decision"]

    (good,) = by_name(spans, "execute_tool add")
    assert good.attributes["gen_ai.operation.name"] == "execute_tool"
    assert good.attributes["gen_ai.tool.name"] == "add"
    assert good.attributes["gen_ai.tool.call.id"] == seen[3].call.id
    assert good.status.status_code == StatusCode.UNSET and "error.type" not in good.attributes
    (bad,) = by_name(spans, "execute_tool explode")
    assert bad.status.status_code == StatusCode.ERROR
    assert bad.attributes["error.type"] == "tool_error"
    assert "boom: test" in bad.status.description
    # Content stays out of spans unless asked for.
    assert not any(k.startswith("gen_ai.tool.call.arguments") for s in spans for k in s.attributes)


async def test_failed_run_marks_the_run_span_and_content_is_opt_in(exporter):
    provider, memory = exporter
    with ScriptedServer([call("add", a=1, b=1), call("add", a=2, b=2)]) as srv:
        agent = Agent(model=model_for(srv), tools=[add], max_steps=2)
        recorder = OTelRecorder(provider, agent_name="adder", capture_content=True)
        async for event in agent.astream("Add things"):
            recorder.record(event)
    spans = memory.get_finished_spans()
    (run,) = by_name(spans, "invoke_agent adder")
    assert run.attributes["gen_ai.agent.name"] == "adder"
    assert run.status.status_code == StatusCode.ERROR and run.attributes["error.type"] == "max_steps"
    assert run.attributes["agentlab.task"] == "Add things"
    tools = sorted(by_name(spans, "execute_tool add"), key=lambda s: s.start_time)
    assert [t.attributes["gen_ai.tool.call.result"] for t in tools] == ["2", "4"]
    assert '"a": 2' in tools[1].attributes["gen_ai.tool.call.arguments"]


async def test_an_abandoned_stream_ends_its_spans_as_interrupted(exporter):
    provider, memory = exporter
    with ScriptedServer([call("add", a=2, b=3), call("final_answer", answer="5")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        stream = otel_traced(agent.astream("What is 2 + 3?"), provider)
        async for event in stream:
            if event.kind == "decision":
                break
        await stream.aclose()
    spans = memory.get_finished_spans()
    (run,) = by_name(spans, "invoke_agent")
    assert run.status.status_code == StatusCode.ERROR and run.attributes["error.type"] == "interrupted"
    assert len(by_name(spans, "chat scripted-7b")) == 1


def test_default_provider_records_nothing_and_needs_no_setup():
    with ScriptedServer([call("final_answer", answer="ok")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        recorder = OTelRecorder()  # the global provider: a no-op unless the application set one
        for event in agent.stream("Say ok"):
            recorder.record(event)
    assert event.kind == "run_finished" and event.status == "done"


async def test_captured_content_has_credentials_redacted_like_jsonl_traces(exporter, monkeypatch):
    provider, memory = exporter
    monkeypatch.setenv("AGENTLAB_TEST_TOKEN", "tok-8c1f5e2a9d")  # read when the recorder is made
    task = "Add with token tok-8c1f5e2a9d"
    with ScriptedServer([call("add", a=1, b=2), call("final_answer", answer="key sk-abcdefghijklmnopqrstuvwx")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        recorder = OTelRecorder(provider, capture_content=True)
        async for event in agent.astream(task):
            recorder.record(event)
    (run,) = by_name(memory.get_finished_spans(), "invoke_agent")
    assert run.attributes["agentlab.task"] == "Add with token [redacted]"
    assert run.attributes["agentlab.answer"] == "key [redacted]"
    texts = [str(v) for s in memory.get_finished_spans() for v in s.attributes.values()]
    assert not any("tok-8c1f5e2a9d" in t or "sk-abcdefghij" in t for t in texts)


async def test_a_sub_agent_is_traced_under_the_tool_that_ran_it(exporter):
    provider, memory = exporter
    script = [
        call("helper", input="add 2 and 3"),
        call("add", a=2, b=3),
        call("final_answer", answer="5"),
        call("final_answer", answer="it is 5"),
    ]
    with ScriptedServer(script) as srv:
        sub = Agent(model=model_for(srv), tools=[add])
        parent = Agent(model=model_for(srv), tools=[sub.as_tool("helper", "A helper agent.")])
        seen = [e async for e in otel_traced(parent.astream("what is 2+3"), provider)]
    assert seen[-1].status == "done"
    spans = memory.get_finished_spans()
    runs = by_name(spans, "invoke_agent")
    (top,) = [s for s in runs if s.parent is None]
    (helper,) = by_name(spans, "execute_tool helper")
    (nested,) = [s for s in runs if s.parent is not None]
    # Before, the sub-run's start ended the caller's span ("interrupted") and began a trace of its own.
    assert top.status.status_code != StatusCode.ERROR and helper.status.status_code != StatusCode.ERROR
    assert helper.parent.span_id == top.context.span_id and nested.parent.span_id == helper.context.span_id
    assert {s.context.trace_id for s in spans} == {top.context.trace_id}
    (inner_add,) = by_name(spans, "execute_tool add")
    assert inner_add.parent.span_id == nested.context.span_id


async def test_two_calls_with_one_id_get_a_span_each(exporter):
    provider, memory = exporter
    twins = {
        "tool_calls": [
            {"name": "add", "arguments": {"a": 1, "b": 2}, "id": "dup"},
            {"name": "add", "arguments": {"a": 5, "b": 6}, "id": "dup"},
        ]
    }
    with ScriptedServer([twins, call("final_answer", answer="3 and 11")]) as srv:
        agent = Agent(model=model_for(srv), tools=[add])
        [e async for e in otel_traced(agent.astream("x"), provider, capture_content=True)]
    tools = by_name(memory.get_finished_spans(), "execute_tool add")
    pairs = sorted((s.attributes["gen_ai.tool.call.arguments"], s.attributes["gen_ai.tool.call.result"]) for s in tools)
    assert pairs == [('{"a": 1, "b": 2}', "3"), ('{"a": 5, "b": 6}', "11")]
