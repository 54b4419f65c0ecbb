"""Streaming (`astream(task, deltas=True)`): the pieces of replies as they arrive, over real HTTP from the
scripted server (which streams SSE chunks of 16 characters, so JSON and arguments are cut mid-token)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel
from toolbox import add, call, decide, model_for

from agentlab import Agent
from agentlab import events as ev
from agentlab.testing import ScriptedServer

Factory = Callable[..., ScriptedServer]


async def collect(agent: Agent, task: str, **options: Any) -> list[ev.Event]:
    return [event async for event in agent.astream(task, **options)]


def texts(events: list[ev.Event], part: str, run_id: str | None = None) -> str:
    return "".join(
        e.text
        for e in events
        if isinstance(e, ev.TextDelta) and e.part == part and (run_id is None or e.run_id == run_id)
    )


def streamed(srv: ScriptedServer) -> list[bool]:
    return [bool(body.get("stream")) for body in srv.requests]


async def test_native_text_and_tool_call_deltas_add_up_to_the_reply(scripted_server: Factory) -> None:
    thought = "I will add the two numbers first, then answer."
    answer = "The sum of 1234 and 5678 is 6912, as the tool says."
    srv = scripted_server([call("add", thought, a=1234, b=5678), call("final_answer", answer=answer)])
    agent = Agent(model=model_for(srv), tools=[add])
    events = await collect(agent, "What is 1234 + 5678?", deltas=True)

    assert streamed(srv) == [True, True]
    assert all(body["stream_options"] == {"include_usage": True} for body in srv.requests)
    decisions = [e for e in events if isinstance(e, ev.Decision)]
    assert texts(events, "content") == decisions[0].thought == thought
    assert texts(events, "answer") == decisions[1].final_answer == answer
    pieces = [e for e in events if isinstance(e, ev.ToolCallDelta)]
    assert {(e.call_index, e.name) for e in pieces} == {(0, "add")}
    assert len(pieces) > 1  # the arguments came in pieces cut mid-JSON
    assert json.loads("".join(e.arguments_delta for e in pieces)) == {"a": 1234, "b": 5678}
    # Each delta comes before the model call and decision that carry the whole reply.
    kinds = [e.kind for e in events]
    assert kinds.index("tool_call_delta") < kinds.index("model_call") < kinds.index("decision")
    assert kinds[-1] == "run_finished" and events[-1].status == "done"  # type: ignore[attr-defined]


async def test_deltas_do_not_change_the_run(scripted_server: Factory) -> None:
    script = [call("add", "Adding.", a=2, b=3), call("final_answer", answer="5")]
    plain_srv, streaming_srv = scripted_server(script), scripted_server(script)
    plain = await collect(Agent(model=model_for(plain_srv), tools=[add]), "2+3?")
    live = await collect(Agent(model=model_for(streaming_srv), tools=[add]), "2+3?", deltas=True)

    assert not any(body.get("stream") for body in plain_srv.requests)  # deltas=False asks for no stream
    assert not any(isinstance(e, ev.Delta) for e in plain)
    whole = [e for e in live if not isinstance(e, ev.Delta)]
    assert [e.kind for e in whole] == [e.kind for e in plain]
    for mine, theirs in zip(whole, plain, strict=True):
        if isinstance(mine, ev.ModelCall):
            assert mine.usage == theirs.usage  # type: ignore[attr-defined]  # the server's counts, from the last chunk
        if isinstance(mine, ev.Decision):
            assert (mine.thought, mine.tool_calls, mine.final_answer) == (
                theirs.thought,  # type: ignore[attr-defined]
                theirs.tool_calls,  # type: ignore[attr-defined]
                theirs.final_answer,  # type: ignore[attr-defined]
            )


async def test_json_decisions_stream_text_not_braces(scripted_server: Factory) -> None:
    thought = 'Quoting "rain" needs escapes \\ and a newline\n here.'
    answer = "Rain taps the roof; the gutters hum along; dusk smells of wet stone."
    srv = scripted_server([decide("final_answer", thought, answer=answer)], native_tools=False)
    agent = Agent(model=model_for(srv))
    events = await collect(agent, "A haiku about rain", deltas=True)

    decision = next(e for e in events if isinstance(e, ev.Decision))
    assert texts(events, "thought") == decision.thought == thought.strip()
    assert texts(events, "answer") == decision.final_answer == answer
    assert texts(events, "content") == ""
    assert not any("{" in e.text for e in events if isinstance(e, ev.TextDelta))


class Invoice(BaseModel):
    customer: str
    items: list[str]
    total: int


@pytest.mark.parametrize("native", [True, False])
async def test_partial_outputs_are_prefixes_of_the_final_output(scripted_server: Factory, native: bool) -> None:
    final = {"customer": "Ada Lovelace and Partners", "items": ["analytical engine", "punch cards"], "total": 12345}
    reply = call("final_answer", **final) if native else decide("final_answer", "Done.", **final)
    srv = scripted_server([reply], native_tools=native)
    agent = Agent(model=model_for(srv), output_type=Invoice)
    events = await collect(agent, "Bill Ada", deltas=True)

    partials = [e.partial for e in events if isinstance(e, ev.OutputDelta)]
    assert len(partials) > 2
    assert partials[-1] == final == events[-1].output  # type: ignore[attr-defined]
    for partial in partials:
        assert_prefix(partial, final)


def assert_prefix(partial: Any, final: Any) -> None:
    """`partial` is `final` as far as it goes: strings cut short, lists and objects missing their tail."""
    if isinstance(partial, str):
        assert final.startswith(partial)
    elif isinstance(partial, list):
        assert len(partial) <= len(final)
        for index, item in enumerate(partial):
            assert_prefix(item, final[index])
    elif isinstance(partial, dict):
        for key, value in partial.items():
            assert_prefix(value, final[key])
    else:
        assert partial == final


async def test_a_stream_that_breaks_is_reset_then_retried(scripted_server: Factory) -> None:
    answer = "The answer arrives whole on the second attempt, not twice."
    broken = {**call("final_answer", answer=answer), "break_after": 4}
    srv = scripted_server([broken, call("final_answer", answer=answer)])
    agent = Agent(model=model_for(srv, max_retry_wait=0.01))
    events = await collect(agent, "Say it", deltas=True)

    kinds = [e.kind for e in events]
    assert kinds.count("model_retry") == 1 and kinds.count("stream_reset") == 1
    assert kinds.index("model_retry") < kinds.index("stream_reset")
    reset = kinds.index("stream_reset")
    before = texts(events[:reset], "answer")
    assert before and answer.startswith(before)  # some of the broken reply was shown
    assert texts(events[reset:], "answer") == answer  # after the reset: the whole answer, once
    assert events[-1].status == "done" and events[-1].answer == answer  # type: ignore[attr-defined]


async def test_a_failed_call_voids_what_it_streamed(scripted_server: Factory) -> None:
    broken = {**call("final_answer", answer="never finished, this one"), "break_after": 3}
    srv = scripted_server([broken])
    events = await collect(Agent(model=model_for(srv, max_attempts=1)), "Say it", deltas=True)
    kinds = [e.kind for e in events]
    assert "text_delta" in kinds and kinds.index("text_delta") < kinds.index("stream_reset")
    assert events[-1].status == "error"  # type: ignore[attr-defined]


async def test_sub_agent_deltas_pass_through_the_parent_tagged_with_their_run(scripted_server: Factory) -> None:
    inner_answer = "Paris is the capital of France, on the Seine."
    inner_srv = scripted_server([call("final_answer", "Looking it up.", answer=inner_answer)])
    outer_srv = scripted_server(
        [call("geographer", "Asking the expert.", input="Capital of France?"), call("final_answer", answer="Paris")]
    )
    expert = Agent(model=model_for(inner_srv)).as_tool("geographer", "Answers geography questions.")
    events = await collect(Agent(model=model_for(outer_srv), tools=[expert]), "Capital of France?", deltas=True)

    outer_id = events[0].run_id
    inner_id = next(e.run_id for e in events if isinstance(e, ev.RunStarted) and e.run_id != outer_id)
    assert inner_srv.requests and all(body.get("stream") for body in inner_srv.requests)
    inner_deltas = [e for e in events if isinstance(e, ev.Delta) and e.run_id == inner_id]
    assert inner_deltas and all(e.parent_run_id == outer_id for e in inner_deltas)
    assert texts(events, "answer", inner_id) == inner_answer
    assert texts(events, "content", inner_id) == "Looking it up."
    assert texts(events, "content", outer_id) == "Asking the expert."
    # The inner deltas arrive while the parent's tool runs, before its result.
    kinds_ids = [(e.kind, e.run_id) for e in events]
    assert kinds_ids.index(("text_delta", inner_id)) < kinds_ids.index(("tool_result", outer_id))


async def test_deltas_stay_out_of_the_trace(scripted_server: Factory, tmp_path: Any) -> None:
    srv = scripted_server([call("final_answer", "Thinking it over.", answer="done and dusted")])
    path = tmp_path / "trace.jsonl"
    events = await collect(Agent(model=model_for(srv), trace=path), "Go", deltas=True)
    assert any(isinstance(e, ev.Delta) for e in events)
    written = [json.loads(line)["kind"] for line in path.read_text().splitlines()]
    assert written == [e.kind for e in events if not isinstance(e, ev.Delta)]


async def test_deltas_arrive_while_the_reply_is_still_streaming(scripted_server: Factory) -> None:
    """Live, not at the step's end: the server sends the first piece at once and the next one an hour
    later, so the first text delta can only be seen if it is handed on as it arrives."""
    srv = scripted_server([{"content": "first piece, then a very long pause", "chunk_delay": 3600}])
    events = Agent(model=model_for(srv)).astream("Talk", deltas=True)
    kinds = []
    async for event in events:
        kinds.append(event.kind)
        if isinstance(event, ev.TextDelta):
            assert event.text == "first piece, the"
            break
    await events.aclose()  # leaving early ends the run and its request
    assert kinds == ["run_started", "text_delta"]


@pytest.mark.integration
async def test_embedded_model_streams_its_decisions_as_text(local_model: Any) -> None:
    agent = Agent(model=local_model, max_steps=2)
    events = await collect(agent, "Say hello to Ada in one short sentence.", deltas=True)

    calls = [e for e in events if isinstance(e, ev.ModelCall)]
    assert calls and all(call.usage.completion_tokens > 0 and call.usage.prompt_tokens > 0 for call in calls)
    decisions = [e for e in events if isinstance(e, ev.Decision)]
    assert decisions
    for decision in decisions:
        step = [e for e in events if isinstance(e, ev.TextDelta) and e.step == decision.step]
        assert "".join(e.text for e in step if e.part == "thought").strip() == decision.thought
        if decision.final_answer is not None:
            assert "".join(e.text for e in step if e.part == "answer") == decision.final_answer
        assert not any("{" in e.text for e in step if e.part == "thought")
    assert events[-1].kind == "run_finished"


def test_stream_faults_are_checked_when_the_script_is_built() -> None:
    from agentlab.testing import ScriptError

    for bad in (
        {"content": "x", "chunk_delay": -1},
        {"content": "x", "break_after": "3"},
        {"status": 500, "break_after": 1},
    ):
        with pytest.raises(ScriptError):
            ScriptedServer([bad])
