"""ReAct's defaults for a small local model (`StrategyContext.small_model`): a tool call before any answer,
no thought field, the task restated after observations, and a numeric answer copied from them; any model
else keeps ReAct as it was, and each option set explicitly wins."""

from __future__ import annotations

from typing import Any

from agentlab.decisions import ToolCall
from agentlab.models.base import ModelRequest
from agentlab.strategies.base import Observation, StrategyContext
from agentlab.strategies.react import RESTATED, ReAct
from agentlab.tools import ToolRegistry, calculator
from agentlab.tools.output import ToolOutput

NUMBER = {"type": "object", "properties": {"answer": {"type": "number"}}, "required": ["answer"]}
TASK = "What is 57 + 35 * 6?"


def _started(small: bool, **options: Any) -> ReAct:
    react = ReAct(**options)
    react.start(
        StrategyContext(TASK, ToolRegistry([calculator]), "json_schema", output_schema=NUMBER, small_model=small)
    )
    return react


def _actions(request: ModelRequest) -> list[str]:
    action = request.response_schema["properties"]["action"]
    return [v["properties"]["name"]["const"] for v in action.get("anyOf", [action])]


def _observe(react: ReAct, output: str) -> None:
    call = ToolCall("step1", "calculator", {"expression": "57 + 35 * 6"})
    react.observe([Observation(call, ToolOutput(ok=True, content=output))])


def test_a_small_model_must_call_a_tool_first_without_a_thought_then_answers_with_an_observed_number():
    react = _started(small=True)
    first = react.next_step()
    assert isinstance(first, ModelRequest)
    assert _actions(first) == ["calculator"] and "thought" not in first.response_schema["properties"]
    assert '"thought"' not in first.messages[0]["content"]
    _observe(react, "267")
    second = react.next_step()
    assert second.messages[-1]["content"] == "Observation: 267\n" + RESTATED.format(task=TASK)
    final = next(v for v in second.response_schema["properties"]["action"]["anyOf"] if "answer" in str(v))
    assert final["properties"]["arguments"]["properties"]["answer"]["enum"] == [267]


def test_other_models_keep_react_as_it_was_and_explicit_options_win():
    react = _started(small=False)
    first = react.next_step()
    assert _actions(first) == ["calculator", "final_answer"] and "thought" in first.response_schema["properties"]
    _observe(react, "267")
    assert react.next_step().messages[-1]["content"] == "Observation: 267"
    explicit = _started(small=True, min_tool_calls=0, thoughts=True, restate_task=False, answer_from_observations=False)
    request = explicit.next_step()
    assert _actions(request) == ["calculator", "final_answer"] and "thought" in request.response_schema["properties"]
    _observe(explicit, "267")
    assert "enum" not in str(explicit.next_step().response_schema)
