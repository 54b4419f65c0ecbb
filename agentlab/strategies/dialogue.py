"""Conversations that a multi-part strategy (CRITIC, CAMEL) keeps for one of its roles.

`ToolDialogue` is a ReAct conversation that outlives its answer: the answer is kept as a plain assistant
turn and the conversation goes on with a new user message (CRITIC's verifier across revisions, CAMEL's
assistant across instructions). `Dialogue` is a conversation whose every reply is one JSON object of a
pydantic shape (CRITIC's critique, CAMEL's AI user and task specifier). Both stay valid in all three
decision formats: no tool call is ever left without its answer.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentlab import decisions
from agentlab.decisions import DecisionError
from agentlab.models.base import DecisionFormat, ModelRequest, ModelResponse
from agentlab.strategies.react import ReAct, rejection_turns

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agentlab.decisions import ShapeT


class ToolDialogue(ReAct):
    """A tool-using role: ReAct steps until it answers, then `settle` the answer and `say` what comes next."""

    name = "tool_dialogue"

    def settle(self, answer: str) -> None:
        """Keep the answer as plain assistant text; it may have come as a final_answer tool call, which
        would otherwise need a tool reply before the next user message."""
        self._pending = []
        self.messages.append({"role": "assistant", "content": answer})

    def say(self, text: str) -> None:
        """The role's next request (a new instruction, a revised answer to verify) becomes its task: what a
        small model is reminded of after each observation, what its grounded arguments copy from and what it
        must make `min_tool_calls` for. What the tools returned so far stays, for grounded answers."""
        self.messages.append({"role": "user", "content": text})
        self.context = replace(self.context, task=text, question=None)
        self._tool_calls = 0
        self._answer_now = False


class Dialogue:
    """A role whose replies are single JSON objects; it keeps its own message list."""

    def __init__(self, system: str, fmt: DecisionFormat) -> None:
        self.format = fmt
        self.messages: list[dict[str, Any]] = [{"role": "system", "content": system}]

    def say(self, text: str) -> None:
        self.messages.append({"role": "user", "content": text})

    def record(self, text: str) -> None:
        """The role's own accepted reply, as plain text (whatever format it arrived in)."""
        self.messages.append({"role": "assistant", "content": text})

    def request(self, shape: type[BaseModel], name: str) -> ModelRequest:
        return decisions.structured_request(self.messages, shape, self.format, name=name)

    def read(self, response: ModelResponse, shape: type[ShapeT]) -> ShapeT:
        return decisions.read_structured(response, shape)

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        """Show the model its unusable reply and why, so the next request can repair it."""
        self.messages += rejection_turns(response, error)
