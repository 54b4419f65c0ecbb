"""`RunContext.messages` is the conversation so far, rebuilt from the run's events: a tool called in a later
step sees the earlier steps' calls and results, over real HTTP."""

from __future__ import annotations

from typing import Any

from toolbox import call, model_for

from agentlab import Agent, RunContext, tool
from agentlab.testing import ScriptedServer

seen: list[list[dict[str, Any]]] = []


@tool
def note(ctx: RunContext[None], text: str) -> str:
    """Write a note.

    Args:
        text: The note.
    """
    seen.append([dict(m) for m in ctx.messages])
    return f"noted {text}"


def test_a_tool_sees_the_conversation_so_far() -> None:
    seen.clear()
    script = [call("note", text="one"), call("note", text="two"), {"content": "done"}]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[note], max_steps=5).run("Take two notes.")
    assert result.status == "done"
    first, second = seen
    assert first[0] == {"role": "user", "content": "Take two notes."}
    # The call being run is there, answered (provider-valid) by a stand-in until its result arrives.
    assert [m["role"] for m in first] == ["user", "assistant", "tool"]
    assert first[1]["tool_calls"][0]["function"]["name"] == "note"
    assert [m["role"] for m in second] == ["user", "assistant", "tool", "assistant", "tool"]
    assert second[2] == {"role": "tool", "tool_call_id": first[1]["tool_calls"][0]["id"], "content": "noted one"}
