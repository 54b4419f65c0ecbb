"""Guardrails over real HTTP (scripted server): input guardrails on the task, output guardrails on the final
answer and typed output, a tool's own guard on its arguments; each kind passes, rewrites and trips, sync and
async, and a trip ends the run as `blocked` with the guard's name and reason."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import toolbox
from pydantic import BaseModel
from toolbox import call

from agentlab import Agent, GuardrailTripped, tool
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, decision_format="tools", max_retry_wait=0.01)


def guardrail_events(result: Any) -> list[Any]:
    return [e for e in result.events if e.kind == "guardrail"]


def no_secrets(task: str) -> None:
    if "password" in task.lower():
        raise GuardrailTripped("the task contains a password")


async def no_secrets_async(task: str) -> None:
    await asyncio.sleep(0)
    no_secrets(task)


def shout(task: str) -> str:
    return task.upper()


async def shout_async(task: str) -> str:
    await asyncio.sleep(0)
    return task.upper()


# --- input guardrails --------------------------------------------------------------------------------


@pytest.mark.parametrize("guard", [no_secrets, no_secrets_async])
def test_an_input_guardrail_that_passes_changes_nothing(guard: Any) -> None:
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), input_guardrails=[guard]).run("Capital of France?")
        sent = srv.requests[0]["messages"]
    assert (result.status, result.answer) == ("done", "Paris")
    assert sent[-1]["content"].endswith("Capital of France?") and guardrail_events(result) == []


@pytest.mark.parametrize("guard", [shout, shout_async])
def test_an_input_guardrail_rewrites_the_task_the_model_sees(guard: Any) -> None:
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), input_guardrails=guard).run("capital of france?")
        sent = srv.requests[0]["messages"]
    assert result.status == "done"
    assert "CAPITAL OF FRANCE?" in sent[-1]["content"] and "capital of france?" not in sent[-1]["content"]
    [event] = guardrail_events(result)
    assert (event.stage, event.guard, event.action, event.value) == (
        "input",
        guard.__name__,
        "rewrote",
        sent[-1]["content"],
    )
    assert result.messages[0] == {"role": "user", "content": "CAPITAL OF FRANCE?"}  # what the model was given


@pytest.mark.parametrize("guard", [no_secrets, no_secrets_async])
def test_an_input_guardrail_trip_blocks_the_run_before_any_request(guard: Any) -> None:
    with ScriptedServer([{"content": "never"}]) as srv:
        result = Agent(model=model_for(srv), input_guardrails=[shout, guard]).run("my password is hunter2")
        requests = list(srv.requests)
    assert requests == [] and result.status == "blocked" and result.answer is None
    assert result.error == f"input guardrail '{guard.__name__}' tripped: the task contains a password"
    kinds = [e.kind for e in result.events]
    assert kinds[0] == "run_started" and kinds[-1] == "run_finished" and "model_call" not in kinds
    assert [(e.guard, e.action) for e in guardrail_events(result)] == [
        ("shout", "rewrote"),
        (guard.__name__, "tripped"),
    ]


def test_guardrails_run_in_order_each_seeing_the_previous_rewrite() -> None:
    seen: list[str] = []

    def record(task: str) -> None:
        seen.append(task)

    with ScriptedServer([{"content": "ok"}]) as srv:
        Agent(model=model_for(srv), input_guardrails=[shout, record]).run("abc")
    assert seen == ["ABC"]


def test_a_guard_that_fails_trips_closed() -> None:
    def broken(task: str) -> None:
        raise KeyError("oops")

    with ScriptedServer([{"content": "never"}]) as srv:
        result = Agent(model=model_for(srv), input_guardrails=[broken]).run("x")
        requests = list(srv.requests)
    assert result.status == "blocked" and requests == []
    assert "broken" in (result.error or "") and "KeyError" in (result.error or "")


def test_an_input_rewrite_that_is_not_text_trips() -> None:
    with ScriptedServer([{"content": "never"}]) as srv:
        result = Agent(model=model_for(srv), input_guardrails=[lambda task: 42]).run("x")
    assert result.status == "blocked" and "unusable" in (result.error or "")


def test_guardrails_must_be_callables() -> None:
    with pytest.raises(TypeError, match="input_guardrails"):
        Agent(model=toolbox.OpenAIModel(model="m", base_url="http://127.0.0.1:9", api_key="k"), input_guardrails=[3])
    with pytest.raises(TypeError, match="guard of tool"):
        tool(guard="no")(lambda x: x)


# --- output guardrails -------------------------------------------------------------------------------


def no_paris(answer: str) -> None:
    if "Paris" in answer:
        raise GuardrailTripped("no capitals today")


async def no_paris_async(answer: str) -> None:
    no_paris(answer)


@pytest.mark.parametrize("guard", [no_paris, no_paris_async])
def test_an_output_guardrail_trip_withholds_the_answer(guard: Any) -> None:
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), output_guardrails=[guard]).run("Capital of France?")
    assert result.status == "blocked" and result.answer is None and result.output is None
    assert result.error == f"output guardrail '{guard.__name__}' tripped: no capitals today"
    assert "final" not in [e.kind for e in result.events]
    assert all("Paris" not in str(m.get("content")) for m in result.messages if m["role"] == "assistant")


@pytest.mark.parametrize("guard", [no_paris, no_paris_async])
def test_an_output_guardrail_that_passes_keeps_the_answer(guard: Any) -> None:
    with ScriptedServer([{"content": "Lyon"}]) as srv:
        result = Agent(model=model_for(srv), output_guardrails=[guard]).run("A city?")
    assert (result.status, result.answer) == ("done", "Lyon") and guardrail_events(result) == []


@pytest.mark.parametrize("guard", [shout, shout_async])
def test_an_output_guardrail_rewrites_the_answer(guard: Any) -> None:
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), output_guardrails=[guard]).run("Capital of France?")
    assert (result.status, result.answer, result.output) == ("done", "PARIS", "PARIS")
    assert [e.answer for e in result.events if e.kind == "final"] == ["PARIS"]


class Invoice(BaseModel):
    total: float
    currency: str


def test_an_output_guardrail_sees_the_typed_output_and_its_rewrite_is_validated() -> None:
    seen: list[Any] = []

    def in_euros(invoice: Invoice) -> dict[str, Any]:
        seen.append(invoice)
        return {"total": invoice.total * 0.5, "currency": "EUR"}

    script = [call("final_answer", total=10, currency="USD")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), output_type=Invoice, output_guardrails=[in_euros]).run("bill")
    assert seen == [Invoice(total=10, currency="USD")]
    assert result.status == "done" and result.output == Invoice(total=5.0, currency="EUR")
    [event] = guardrail_events(result)
    assert event.stage == "output" and event.value == {"total": 5.0, "currency": "EUR"}


def test_an_output_rewrite_that_does_not_fit_the_type_trips() -> None:
    script = [call("final_answer", total=10, currency="USD")]
    with ScriptedServer(script) as srv:
        agent = Agent(model=model_for(srv), output_type=Invoice, output_guardrails=[lambda v: {"total": "lots"}])
        result = agent.run("bill")
    assert result.status == "blocked" and result.output is None and "unusable" in (result.error or "")


# --- a tool's guard ----------------------------------------------------------------------------------

deleted: list[str] = []


def only_tmp(arguments: dict[str, Any]) -> None:
    if not arguments["path"].startswith("/tmp/"):
        raise GuardrailTripped(f"{arguments['path']} is outside /tmp")


async def into_tmp(arguments: dict[str, Any]) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"path": "/tmp/" + arguments["path"].rsplit("/", 1)[-1]}


def delete_tool(guard: Any) -> Any:
    @tool(guard=guard)
    def delete(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        deleted.append(path)
        return f"deleted {path}"

    return delete


@pytest.fixture(autouse=True)
def nothing_deleted() -> None:
    deleted.clear()


def test_a_tool_guard_that_passes_lets_the_call_run() -> None:
    script = [call("delete", path="/tmp/a"), call("final_answer", answer="gone")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[delete_tool(only_tmp)]).run("delete /tmp/a")
    assert (result.status, deleted) == ("done", ["/tmp/a"]) and guardrail_events(result) == []


def test_a_tool_guard_trip_blocks_the_run_and_the_tool_never_runs() -> None:
    script = [call("delete", path="/etc/passwd"), call("final_answer", answer="never")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[delete_tool(only_tmp)]).run("delete /etc/passwd")
        requests = list(srv.requests)
    assert deleted == [] and len(requests) == 1
    assert result.status == "blocked"
    assert result.error == "the guard of tool 'delete' 'only_tmp' tripped: /etc/passwd is outside /tmp"
    [event] = guardrail_events(result)
    assert (event.stage, event.tool, event.action) == ("tool", "delete", "tripped")
    [outcome] = [e for e in result.events if e.kind == "tool_result"]
    assert not outcome.ok and outcome.output.startswith("Blocked:")


def test_a_tool_guard_rewrites_the_arguments() -> None:
    script = [call("delete", path="/etc/passwd"), call("final_answer", answer="done")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[delete_tool(into_tmp)]).run("delete passwd")
    assert result.status == "done" and deleted == ["/tmp/passwd"]
    [event] = guardrail_events(result)
    assert (event.stage, event.action, event.value, event.tool) == (
        "tool",
        "rewrote",
        {"path": "/tmp/passwd"},
        "delete",
    )


def test_a_tool_guard_rewrite_the_tool_cannot_take_trips() -> None:
    script = [call("delete", path="/etc/passwd"), call("final_answer", answer="never")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[delete_tool(lambda a: {"path": 7})]).run("x")
    assert result.status == "blocked" and deleted == [] and "unusable" in (result.error or "")


async def test_a_tool_guard_through_astream_and_arun() -> None:
    script = [call("delete", path="/etc/passwd"), call("final_answer", answer="never")]
    async with ScriptedServer(script) as srv:
        model = model_for(srv)
        events = [e async for e in Agent(model=model, tools=[delete_tool(only_tmp)]).astream("x")]
        await model.aclose()
    assert events[-1].kind == "run_finished" and events[-1].status == "blocked" and deleted == []


# --- a blocked run as the consumers of events show it -------------------------------------------------


def blocked_run(tmp_path: Path) -> tuple[Any, Path]:
    trace = tmp_path / "trace.jsonl"
    script = [call("delete", path="/etc/passwd"), call("final_answer", answer="never")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[delete_tool(only_tmp)], trace=trace).run("x")
    return result, trace


def test_the_console_the_viewer_and_the_exporter_know_blocked_runs(tmp_path: Path) -> None:
    from rich.console import Console

    from agentlab.commands.export import STATUSES
    from agentlab.render.console import render_events
    from agentlab.viewer import load_trace, render_html

    result, trace = blocked_run(tmp_path)
    console = Console(record=True, width=200)
    finished = render_events(result.events, console)
    text = console.export_text()
    assert finished is not None and finished.status == "blocked"
    assert "Guardrail: tool guardrail of delete 'only_tmp' tripped: /etc/passwd is outside /tmp" in text
    page = render_html(load_trace(trace).events)
    assert 'class="badge status-error">blocked' in page and "only_tmp" in page
    assert "blocked" in STATUSES


async def test_otel_marks_a_blocked_run_and_records_the_guardrail(tmp_path: Path) -> None:
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import StatusCode

    from agentlab.otel import OTelRecorder

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    recorder = OTelRecorder(provider)
    async with ScriptedServer([{"content": "never"}]) as srv:
        model = model_for(srv)
        async for event in Agent(model=model, input_guardrails=[no_secrets]).astream("password: x"):
            recorder.record(event)
        await model.aclose()
    (run,) = [s for s in memory.get_finished_spans() if s.name.startswith("invoke_agent")]
    assert run.status.status_code == StatusCode.ERROR and run.attributes["agentlab.status"] == "blocked"
    (guardrail,) = [e for e in run.events if e.name == "agentlab.guardrail"]
    assert guardrail.attributes["agentlab.guardrail.name"] == "no_secrets"
    assert guardrail.attributes["agentlab.guardrail.action"] == "tripped"


@pytest.mark.parametrize("stage", ["input", "output"])
def test_a_slow_guardrail_is_bounded_by_the_time_budget(stage: str) -> None:
    finished: list[str] = []

    async def slow(value: Any) -> None:
        await asyncio.sleep(5)  # a moderation call that hangs
        finished.append(stage)

    guards = {"input_guardrails": [slow]} if stage == "input" else {"output_guardrails": [slow]}
    with ScriptedServer([call("final_answer", answer="a")]) as srv:
        result = Agent(model=toolbox.model_for(srv), max_seconds=0.5, **guards).run("hi")
    # Before, an input guard ran to its end first, and an output guard's run ended `done`.
    assert result.status == "budget" and finished == []
