"""Property: whatever JSON an endpoint sends back as a chat completion, a run ends with a RunResult whose last
event is `run_finished`, and never with one of our own TypeError/AttributeError/KeyError/IndexError."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
import toolbox
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toolbox import add

from agentlab import Agent
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, max_retry_wait=0.001, max_attempts=2)
INTERNAL = re.compile(r"^(TypeError|AttributeError|KeyError|IndexError|UnboundLocalError)\b")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
names = st.sampled_from(["add", "final_answer", "", "nope"]) | json_values
arguments = st.sampled_from(['{"a": 1, "b": 2}', '{"answer": "x"}', "{", ""]) | json_values
functions = st.fixed_dictionaries({}, optional={"name": names, "arguments": arguments}) | json_values
tool_calls = st.fixed_dictionaries({}, optional={"id": json_values, "type": st.just("function"), "function": functions})
messages = st.fixed_dictionaries(
    {"role": st.just("assistant")},
    optional={"content": json_values, "tool_calls": st.lists(tool_calls, max_size=2) | json_values},
)
replies = (
    messages.map(lambda message: {"message": message})
    | st.fixed_dictionaries({"choices": json_values}, optional={"usage": json_values}).map(
        lambda body: {"status": 200, "body": body}
    )
    | st.text(max_size=20).map(lambda text: {"status": 200, "body": text})
)


@pytest.fixture(scope="module")
def garbage_server() -> Iterator[tuple[ScriptedServer, list[dict[str, Any]]]]:
    queue: list[dict[str, Any]] = []
    # Each example queues its garbage; afterwards the endpoint answers plainly, so every run can end.
    with ScriptedServer(lambda body, index: queue.pop(0) if queue else {"content": "plain answer"}) as srv:
        yield srv, queue


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(reply=replies, second=replies, fmt=st.sampled_from(["tools", "json_schema", "json"]))
def test_no_garbage_reply_escapes_as_an_internal_error(
    garbage_server: tuple[ScriptedServer, list[dict[str, Any]]], reply: dict[str, Any], second: dict[str, Any], fmt: str
) -> None:
    srv, queue = garbage_server
    queue[:] = [reply, second]
    result = Agent(model=model_for(srv, decision_format=fmt), tools=[add], max_steps=4).run("x")
    assert result.events[-1].kind == "run_finished"
    assert result.status in ("done", "error", "max_steps", "stalled")
    assert not INTERNAL.match(result.error or ""), result.error
