"""Helpers shared by the test files: sample tools and scripted-reply builders.

Import them as ``from toolbox import add, call, decide, explode, model_for``: pytest's default
(prepend) import mode puts tests/ on sys.path. Keep behaviour here stable; a file whose helper
differs wraps these (e.g. ``partial(toolbox.model_for, max_retry_wait=1.0)``) rather than
changing them.
"""

from __future__ import annotations

import json
from typing import Any

from agentlab import OpenAIModel, tool
from agentlab.testing import ScriptedServer


# test_tools.py asserts this tool's exact name, description and schema: edit both together.
@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise RuntimeError(f"boom: {reason}")


def model_for(srv: ScriptedServer, **options: Any) -> OpenAIModel:
    """An OpenAIModel pointed at ``srv``, named "scripted" with key "test-key"; ``options`` (e.g.
    max_retry_wait, decision_format, or another model / api_key) go to OpenAIModel as given."""
    settings: dict[str, Any] = {"model": "scripted", "api_key": "test-key", **options}
    return OpenAIModel(base_url=srv.base_url, **settings)


def call(name: str, thought: str | None = None, /, **arguments: Any) -> dict[str, Any]:
    """A reply item with one native tool call; with ``thought``, also that text as the content."""
    item: dict[str, Any] = {"tool_calls": [{"name": name, "arguments": arguments}]}
    if thought is not None:
        item["content"] = thought
    return item


def decide(name: str, thought: str = "", /, **arguments: Any) -> dict[str, Any]:
    """A JSON decision (thought and one action), as a json_schema or plain-JSON endpoint returns it."""
    return {"content": json.dumps({"thought": thought, "action": {"name": name, "arguments": arguments}})}
