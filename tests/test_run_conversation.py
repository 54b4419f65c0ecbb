"""repair_history and decision_exchange_messages: conversations any OpenAI-compatible endpoint accepts."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from agentlab.events import ToolCall
from agentlab.run.conversation import INTERRUPTED_RESULT, decision_exchange_messages, repair_history


def call(call_id: str, name: str = "add", arguments: Any = '{"a": 1}') -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def result(call_id: str, content: str = "2") -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


SYSTEM = {"role": "system", "content": "You help."}
USER = {"role": "user", "content": "What is 1+1?"}


def test_a_valid_conversation_comes_back_equal_and_the_input_untouched() -> None:
    history = [
        SYSTEM,
        USER,
        {"role": "assistant", "content": "", "tool_calls": [call("c1")]},
        result("c1"),
        {"role": "assistant", "content": "2"},
    ]
    before = copy.deepcopy(history)
    assert repair_history(history) == history
    assert history == before


def test_a_call_without_its_result_gets_an_interrupted_result_right_after_the_others() -> None:
    history = [
        USER,
        {"role": "assistant", "content": None, "tool_calls": [call("c1"), call("c2")]},
        result("c1"),
        {"role": "user", "content": "Are you there?"},
    ]
    assert repair_history(history) == [
        USER,
        {"role": "assistant", "content": "", "tool_calls": [call("c1"), call("c2")]},
        result("c1"),
        {"role": "tool", "tool_call_id": "c2", "content": INTERRUPTED_RESULT},
        {"role": "user", "content": "Are you there?"},
    ]


def test_a_crash_after_the_call_is_repaired_at_the_end() -> None:
    history = [USER, {"role": "assistant", "content": "Let me add.", "tool_calls": [call("c9")]}]
    repaired = repair_history(history)
    assert repaired[-1] == {"role": "tool", "tool_call_id": "c9", "content": INTERRUPTED_RESULT}
    assert len(repaired) == 3


def test_orphan_and_duplicate_results_are_dropped() -> None:
    history = [
        USER,
        result("nobody-called-me"),
        {"role": "assistant", "content": "", "tool_calls": [call("c1")]},
        result("c1", "first"),
        result("c1", "second"),
        {"role": "tool", "content": "no id"},
        {"role": "assistant", "content": "done"},
        result("c1", "late"),
    ]
    assert repair_history(history) == [
        USER,
        {"role": "assistant", "content": "", "tool_calls": [call("c1")]},
        result("c1", "first"),
        {"role": "assistant", "content": "done"},
    ]


def test_a_result_separated_from_its_call_by_a_user_turn_is_not_moved() -> None:
    """Results must follow their call; a late one is dropped and the call marked interrupted, nothing reordered."""
    history = [{"role": "assistant", "content": "", "tool_calls": [call("c1")]}, USER, result("c1")]
    assert repair_history(history) == [
        {"role": "assistant", "content": "", "tool_calls": [call("c1")]},
        {"role": "tool", "tool_call_id": "c1", "content": INTERRUPTED_RESULT},
        USER,
    ]


def test_content_is_made_a_string() -> None:
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "world"}]},
        {"role": "assistant"},
        {"role": "user", "content": None},
    ]
    assert repair_history(history) == [
        {"role": "user", "content": "Hello\nworld"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": ""},
    ]


def test_tool_call_arguments_become_json_strings_and_empty_call_lists_go() -> None:
    history = [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"id": "c1", "function": {"name": "add", "arguments": {"a": 1}}}],
        },
        result("c1"),
        {"role": "assistant", "content": "ok", "tool_calls": []},
    ]
    repaired = repair_history(history)
    assert repaired[0]["tool_calls"] == [call("c1", arguments='{"a": 1}')]
    assert repaired[2] == {"role": "assistant", "content": "ok"}


def test_repair_is_idempotent_and_json_serialisable() -> None:
    history = [
        SYSTEM,
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": None, "tool_calls": [call("a"), call("b", arguments={"x": 2})]},
        result("b"),
        result("zzz"),
        {"role": "assistant", "content": "answer"},
        {"role": "assistant", "content": "", "tool_calls": [call("c")]},
    ]
    once = repair_history(history)
    assert repair_history(once) == once
    assert json.loads(json.dumps(once)) == once
    # user and assistant text survives in order
    texts = [m["content"] for m in once if m["role"] in ("user", "assistant", "system")]
    assert texts == ["You help.", "Hi", "", "answer", ""]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"role": "wizard", "content": "x"}, "unknown role 'wizard'"),
        ({"content": "x"}, "unknown role None"),
        ("just text", "must be an object"),
        ({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "add"}}]}, "needs an 'id'"),
    ],
)
def test_unusable_messages_are_clear_errors(bad: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        repair_history([USER, bad])


def test_a_json_mode_step_becomes_the_native_form() -> None:
    calls = [ToolCall("step2", "add", {"a": 1, "b": 2}), ToolCall("step2b", "search", {"q": "x"})]
    messages = decision_exchange_messages("I add.", calls, ["3"])
    assert messages == [
        {
            "role": "assistant",
            "content": "I add.",
            "tool_calls": [
                {"id": "step2", "type": "function", "function": {"name": "add", "arguments": '{"a": 1, "b": 2}'}},
                {"id": "step2b", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "step2", "content": "3"},
        {"role": "tool", "tool_call_id": "step2b", "content": INTERRUPTED_RESULT},
    ]
    assert repair_history(messages) == messages
    assert decision_exchange_messages("Thinking.", []) == [{"role": "assistant", "content": "Thinking."}]
