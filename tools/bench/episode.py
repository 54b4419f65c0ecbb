"""The benchmark episode: `steps` model requests, the first `steps - 1` answered with a call of `add`,
the last with a plain-text final answer; run by agentlab and by a hand-written loop on the raw client."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agentlab.tools import tool

TASK = "Add one, nine times, starting from zero."
MODEL = "scripted"


def add_numbers(a: int, b: int) -> int:
    return a + b


@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return add_numbers(a, b)


ADD_SCHEMA = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def episode_script(steps: int) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    """A stateless script (it reads the conversation so far), so any number of episodes can run at once."""

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        done = sum(1 for m in body["messages"] if m.get("role") == "tool")
        if done < steps - 1:
            return {"tool_calls": [{"name": "add", "arguments": {"a": done, "b": 1}}]}
        return {"content": f"The result is {done}."}

    return reply


def _first_messages() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "Use the tools to solve the task."},
        {"role": "user", "content": TASK},
    ]


def _raw_request(client: Any, messages: list[dict[str, Any]]) -> Any:
    """The request both raw loops make (the sync client returns the completion, the async one an awaitable)."""
    return client.chat.completions.create(
        model=MODEL, messages=messages, tools=[ADD_SCHEMA], tool_choice="auto", temperature=0.0, max_tokens=1024
    )


def _raw_turn(messages: list[dict[str, Any]], completion: Any) -> bool:
    """Append the reply and the tool results to `messages`; False when the reply is the final answer."""
    message = completion.choices[0].message
    if not message.tool_calls:
        return False
    messages.append(
        {
            "role": "assistant",
            "content": message.content or "",
            "tool_calls": [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.function.name, "arguments": c.function.arguments},
                }
                for c in message.tool_calls
            ],
        }
    )
    for call in message.tool_calls:
        result = add_numbers(**json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": str(result)})
    return True


async def raw_episode(client: Any, steps: int) -> int:
    """What a user would write without a framework: the request loop and tool dispatch by hand, on the
    async client. Returns the number of requests made."""
    messages = _first_messages()
    for request in range(1, steps + 2):
        if not _raw_turn(messages, await _raw_request(client, messages)):
            return request
    raise RuntimeError(f"the episode did not end after {steps} steps")


def raw_sync_episode(client: Any, steps: int) -> int:
    """The same loop on the sync client (`openai.OpenAI`), as most examples write it."""
    messages = _first_messages()
    for request in range(1, steps + 2):
        if not _raw_turn(messages, _raw_request(client, messages)):
            return request
    raise RuntimeError(f"the episode did not end after {steps} steps")


def raw_sync_client(base_url: str) -> Any:
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key="bench", max_retries=0)


def raw_client(base_url: str) -> Any:
    from openai import AsyncOpenAI

    return AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)


def agentlab_model(base_url: str) -> Any:
    from agentlab import OpenAIModel

    return OpenAIModel(MODEL, base_url=base_url, api_key="bench", decision_format="tools")


def agentlab_agent(base_url: str, steps: int, model: Any = None) -> Any:
    """An agent as a user would build it; agents sharing `model` share its HTTP connection pool."""
    from agentlab import Agent

    return Agent(model=model or agentlab_model(base_url), tools=[add], max_steps=steps + 1)


async def close_model(model: Any) -> None:
    """Close the model's client for this event loop while the loop still runs."""
    await model.aclose()


async def agentlab_episode(agent: Any, steps: int) -> int:
    result = await agent.arun(TASK)
    if result.status != "done" or result.steps != steps:
        raise RuntimeError(f"agentlab episode ended {result.status} after {result.steps} steps: {result.error}")
    return int(result.steps)
