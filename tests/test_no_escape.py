"""Property (issue 11): no exception escapes `run`/`arun`/`stream`/`astream` for any model, tool or trace
failure. Hypothesis mixes garbage replies (over real HTTP, one scripted server for every example), replies
calling tools that raise, hang, return garbage or lone surrogates, guards that trip or fail, traces that
cannot be written and a tight time budget; every run must end with `run_finished` as its last event and a
known status, never with one of our own TypeError/AttributeError/KeyError/IndexError."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, get_args

import pytest
import toolbox
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_garbage_replies import json_values, replies
from toolbox import add

from agentlab import Agent, GuardrailTripped, RunResult, tool
from agentlab.events import RunFinished, Status
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, max_retry_wait=0.001, max_attempts=2)
INTERNAL = re.compile(r"^(TypeError|AttributeError|KeyError|IndexError|UnboundLocalError|RecursionError)\b")
STATUSES = set(get_args(Status))


class Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no repr for you")

    __str__ = __repr__


def _loop() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


GARBAGE = [
    lambda: b"\xff\xfe raw bytes",
    lambda: "file \udcff name",
    lambda: "x" * 200_000,
    lambda: {"set": {1, 2}, "obj": object()},
    lambda: Unprintable(),
    _loop,
    lambda: float("nan"),
    lambda: {"\ud83d": "half an emoji"},
]


@tool(timeout=0.05)
def misbehave(kind: int) -> Any:
    """Return something odd.

    Args:
        kind: Which oddity.
    """
    return GARBAGE[kind % len(GARBAGE)]()


@tool(timeout=0.05)
def crash(kind: int) -> str:
    """Fail.

    Args:
        kind: How.
    """
    errors: list[BaseException] = [RuntimeError("boom \udc80"), SystemExit(3), MemoryError(), RecursionError()]
    raise errors[kind % len(errors)]


@tool(timeout=0.05)
def hang_sync(seconds: float) -> str:
    """Sleep in a thread.

    Args:
        seconds: How long.
    """
    time.sleep(min(abs(seconds), 0.2))
    return "woke"


@tool(timeout=0.05)
async def hang_async(seconds: float) -> str:
    """Sleep on the loop.

    Args:
        seconds: How long.
    """
    await asyncio.sleep(min(abs(seconds), 5))
    return "woke"


def passes(value: Any) -> None:
    return None


def trips(value: Any) -> None:
    raise GuardrailTripped("no \udc80")


def fails(value: Any) -> None:
    raise AttributeError("a guard's own bug")


def rewrites_badly(value: Any) -> Any:
    return Unprintable()


@tool(guard=fails)
def guarded(x: int) -> int:
    """Guarded.

    Args:
        x: A number.
    """
    return x


TOOLS = [add, misbehave, crash, hang_sync, hang_async, guarded]
TOOL_NAMES = [t.name for t in TOOLS]

VALID_ARGUMENTS = {
    "add": st.fixed_dictionaries({"a": st.integers(), "b": st.integers()}),
    "misbehave": st.fixed_dictionaries({"kind": st.integers(0, 20)}),
    "crash": st.fixed_dictionaries({"kind": st.integers(0, 20)}),
    "hang_sync": st.fixed_dictionaries({"seconds": st.floats(0, 1)}),
    "hang_async": st.fixed_dictionaries({"seconds": st.floats(0, 1)}),
    "guarded": st.fixed_dictionaries({"x": st.integers()}),
}
tool_replies = st.sampled_from(TOOL_NAMES).flatmap(
    lambda name: st.builds(
        lambda arguments: {"tool_calls": [{"name": name, "arguments": arguments}]},
        VALID_ARGUMENTS[name] | VALID_ARGUMENTS[name] | VALID_ARGUMENTS[name] | json_values,
    )
)
# Mostly guards that pass, so that most runs get past them to the model and the tools.
guards = st.lists(st.sampled_from([passes] * 5 + [trips, fails, rewrites_badly]), max_size=2)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[ScriptedServer, list[dict[str, Any]]]]:
    queue: list[dict[str, Any]] = []
    with ScriptedServer(lambda body, index: queue.pop(0) if queue else {"content": "plain answer"}) as srv:
        yield srv, queue


@pytest.fixture(scope="module")
def bad_traces(tmp_path_factory: pytest.TempPathFactory) -> list[str | None]:
    here = tmp_path_factory.mktemp("traces")
    return [None, "/dev/full", str(here), str(here / "no" / "such" / "dir" / "t.jsonl"), str(here / "ok.jsonl")]


async def _drain_async(agent: Agent, how: str) -> list[Any]:
    try:
        if how == "arun":
            return (await agent.arun("task \udc80")).events
        return [event async for event in agent.astream("task \udc80")]
    finally:
        await agent.model.aclose()  # type: ignore[attr-defined]


def _drain(agent: Agent, how: str) -> tuple[list[Any], RunResult | None]:
    if how == "run":
        result = agent.run("task \udc80")
        return result.events, result
    if how == "stream":
        return list(agent.stream("task \udc80")), None
    return asyncio.run(_drain_async(agent, how)), None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    script=st.lists(replies | tool_replies | tool_replies, min_size=1, max_size=4),
    fmt=st.sampled_from(["tools", "json_schema", "json"]),
    how=st.sampled_from(["run", "arun", "stream", "astream"]),
    trace=st.integers(0, 4),
    inputs=guards,
    outputs=guards,
    max_seconds=st.sampled_from([None, None, 0.3]),
)
def test_no_failure_escapes_any_entry_point(
    server: tuple[ScriptedServer, list[dict[str, Any]]],
    bad_traces: list[str | None],
    script: list[dict[str, Any]],
    fmt: str,
    how: str,
    trace: int,
    inputs: list[Any],
    outputs: list[Any],
    max_seconds: float | None,
) -> None:
    srv, queue = server
    queue[:] = script
    agent = Agent(
        model=model_for(srv, decision_format=fmt),
        tools=TOOLS,
        max_steps=5,
        max_seconds=max_seconds,
        trace=bad_traces[trace],
        input_guardrails=inputs,
        output_guardrails=outputs,
    )
    events, result = _drain(agent, how)
    end = events[-1]
    event(f"status {end.status}")  # pytest --hypothesis-show-statistics shows what the examples exercised
    for outcome in (e for e in events if e.kind == "tool_result"):
        event(f"tool {outcome.call.name} ok={outcome.ok}")
    event(f"warnings: {sum(e.kind == 'warning' for e in events)}")
    assert isinstance(end, RunFinished) and end.status in STATUSES
    assert sum(isinstance(e, RunFinished) for e in events) == 1
    assert not INTERNAL.match(end.error or ""), end.error
    assert not any(word in (end.error or "") for word in ("boom", "no repr")), (
        end.error
    )  # a tool's failure is an observation
    if result is not None:
        assert result.status == end.status and result.events[-1] is end
    if any(guard is not passes for guard in inputs):
        assert end.status == "blocked"  # an input guard tripped, failed, or rewrote the task into a non-str


def test_a_tool_result_that_cannot_be_shown_is_the_tools_failure_and_the_run_goes_on(
    server: tuple[ScriptedServer, list[dict[str, Any]]],
) -> None:
    srv, queue = server
    queue[:] = [{"tool_calls": [{"name": "misbehave", "arguments": {"kind": 4}}]}, {"content": "done anyway"}]
    result = Agent(model=model_for(srv, decision_format="tools"), tools=TOOLS).run("x")
    assert (result.status, result.answer) == ("done", "done anyway")
    [outcome] = [e for e in result.events if e.kind == "tool_result"]
    assert not outcome.ok and "cannot be shown" in outcome.output and "no repr for you" in outcome.output


def test_a_denied_tool_is_an_observation_and_the_run_goes_on(
    server: tuple[ScriptedServer, list[dict[str, Any]]],
) -> None:
    @tool(requires_approval=True)
    def wipe(path: str) -> str:
        """Wipe a disk.

        Args:
            path: The disk.
        """
        raise AssertionError("never runs")

    srv, queue = server
    queue[:] = [{"tool_calls": [{"name": "wipe", "arguments": {"path": "/dev/sda"}}]}, {"content": "left it alone"}]
    result = Agent(model=model_for(srv, decision_format="tools"), tools=[wipe], approve=lambda name, args: False).run(
        "x"
    )
    assert (result.status, result.answer) == ("done", "left it alone")
    [outcome] = [e for e in result.events if e.kind == "tool_result"]
    assert not outcome.ok and outcome.output.startswith("Denied")
