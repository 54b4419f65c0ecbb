"""CAMEL role-play: a task specifier makes a vague idea concrete, then an AI user instructs and an AI
assistant solves, one instruction at a time, until the user says the task is done.

Each role keeps its own conversation, primed by a short inception prompt: the user's replies are single
JSON objects ({"instruction": ...}); the assistant's turns are ReAct steps over the agent's tools, ending
in its solution to the current instruction. The run ends on the user's termination token (on a small
model, its `task_done` choice in reply to a solution; the answer is the assistant's last solution), on
`max_turns` solutions, or on the loop's budgets. Two failure modes of role-play are caught: role flipping
(the assistant instructing, the user solving) gets a corrective message to the offending role; an empty
loop (empty or repeated messages) is nudged once, then stopped.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field

from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.run.conversation import with_history
from agentlab.strategies.base import (
    CompositeStrategy,
    Conclusion,
    ModelDecision,
    StrategyContext,
)
from agentlab.strategies.dialogue import Dialogue, ToolDialogue

DONE_TOKEN = "<CAMEL_TASK_DONE>"
SPECIFIER_SYSTEM = "You turn vague task ideas into one specific, doable task."
SPECIFIER_PROMPT = (
    "Task idea: {idea}\nRewrite it as one specific task that {assistant} can complete with help from {user}. "
    "Under 60 words."
)
USER_INCEPTION = (
    "You are {user}. You instruct {assistant} to complete the task; you never solve it yourself. "
    "Give one instruction per message, starting with 'Instruction:'. When the task is complete, reply "
    "with {token} only.\nTask: {task}"
)
USER_START = "Give your first instruction."
ASSISTANT_INCEPTION = (
    "You are {assistant}. {user} instructs you to complete the task. Solve each instruction yourself, "
    "using tools when they help; never give instructions. Start your solution with 'Solution:'.\nTask: {task}"
)
CORRECT_ASSISTANT = (
    "You are {assistant}: do not instruct {user} or ask them to do things. Solve the instruction "
    "yourself and start with 'Solution:'."
)
CORRECT_USER = (
    "You are {user}: do not solve the task yourself. Give {assistant} one instruction, starting with 'Instruction:'."
)
CORRECT_EARLY_DONE = "Nothing has been solved yet. Give {assistant} the first instruction."
CORRECT_LOOP = "Your message was {what}. Say something new that moves the task forward."

# The assistant instructing: an "Instruction:" line, or a message that opens by asking the user to act.
_INSTRUCTING = re.compile(
    r"^\s*instruction\s*:|\A\s*(please\s+(provide|give|tell|send|share|specify|clarify|let\s+me\s+know)\b"
    r"|(can|could|would)\s+you\b|you\s+(should|need\s+to|must)\b)",
    re.IGNORECASE | re.MULTILINE,
)
# The user solving: a "Solution:" line, or a message that opens by handing over a result.
_SOLVING = re.compile(r"^\s*solution\s*:|\A\s*(answer\s*:|here\s+(is|are)\b)", re.IGNORECASE | re.MULTILINE)
_SOLUTION_PREFIX = re.compile(r"^\s*solution\s*:\s*", re.IGNORECASE)

Phase = Literal["specify", "user", "assistant", "stalled", "done"]


class SpecifiedTask(BaseModel):
    """The concrete task."""

    task: str = Field(description="One specific, doable task.", json_schema_extra={"maxLength": 300})


class Instruction(BaseModel):
    """The AI user's next message."""

    # maxLength bounds generation under a grammar without rejecting longer replies from other models.
    instruction: str = Field(
        description="One instruction, or the termination token when the task is done.",
        json_schema_extra={"maxLength": 300},
    )


class Review(BaseModel):
    """The AI user's reply to a solution: whether it completes the task, else the next instruction."""

    # Asked of a small model, which never writes the termination token: the grammar writes the key, and the
    # model only chooses true or false, before it writes an instruction.
    task_done: bool = Field(description="true when the solution completes the task")
    instruction: str = Field(
        default="", description="The next instruction, when the task is not done.", json_schema_extra={"maxLength": 300}
    )


class Camel(CompositeStrategy):
    name = "camel"

    def __init__(
        self,
        *,
        user_role: str = "AI User",
        assistant_role: str = "AI Assistant",
        max_turns: int = 5,
        specify: bool = True,
        done_token: str = DONE_TOKEN,
    ) -> None:
        super().__init__()
        if max_turns < 1:
            raise ValueError("max_turns must be >= 1")
        self.user_role, self.assistant_role = user_role, assistant_role
        self.max_turns = max_turns
        self.specify = specify
        self.done_token = done_token
        self.phase: Phase = "specify" if specify else "user"
        self.task = ""
        self.solution: str | None = None  # the assistant's latest solution
        self.turns = 0  # solutions given
        self.role_flips = {"user": 0, "assistant": 0}
        self._loop_strikes = 0  # consecutive empty or repeated messages
        self._last = {"user": "", "assistant": ""}

    @property
    def roles(self) -> dict[str, str]:
        return {"user": self.user_role, "assistant": self.assistant_role, "token": self.done_token}

    def start(self, context: StrategyContext) -> None:
        self.context = context
        fmt = context.decision_format
        self.specifier = Dialogue(SPECIFIER_SYSTEM, fmt)
        # Primed when the first instruction arrives. Its replies are turns of the role-play ("Solution: ..."),
        # not answers copied from documents: a small model's grounded answers stay off for it, and it keeps its
        # thought (without one SmolLM2's solutions were "1.1.2.1.1.2.2..."; with one, a sentence). It uses
        # tools when they help, never by obligation: forced to call one before each solution, SmolLM2 asked the
        # calculator for "3 + 4" to write a bakery's slogan, repeated the call, then answered with the loop's
        # own reminder.
        self.assistant = ToolDialogue(answer_from_observations=False, min_tool_calls=0, thoughts=True)
        self._assistant_started = False
        task = with_history(context.task, context.history)  # earlier turns are context for both roles
        if self.specify:
            self.specifier.say(SPECIFIER_PROMPT.format(idea=task, **self.roles))
        else:
            self._begin(task)

    def _begin(self, task: str) -> None:
        self.task = task
        self.user = Dialogue(USER_INCEPTION.format(task=task, **self.roles), self.context.decision_format)
        self.user.say(USER_START)
        self.assistant.system_prompt = ASSISTANT_INCEPTION.format(task=task, **self.roles)
        self.phase = "user"

    def next_step(self) -> ModelRequest | Conclusion:
        if self.phase == "specify":
            return self.expect(
                self.specifier.request(SpecifiedTask, "specify_task"), self._specified, self.specifier.reject
            )
        if self.phase == "user" and self.context.small_model and self.solution is not None:
            return self.expect(self.user.request(Review, "review"), self._reviewed, self.user.reject)
        if self.phase == "user":
            return self.expect(self.user.request(Instruction, "instruct"), self._instructed, self.user.reject)
        if self.phase == "assistant":
            return self.ask(self.assistant, then=self._solved)
        if self.phase == "stalled":
            return Conclusion(self.solution, status="stalled")
        return Conclusion(self.solution or "")

    def best_answer(self) -> str | None:
        return self.solution

    # --- turns -----------------------------------------------------------------------------------------

    def _specified(self, response: ModelResponse) -> ModelDecision:
        task = self.specifier.read(response, SpecifiedTask).task.strip() or self.context.task
        self.specifier.record(task)
        self._begin(task)
        self.note(f"specified task: {task}", event="specified", task=task)
        return ModelDecision(thought=f"Task: {task}")

    def _instructed(self, response: ModelResponse) -> ModelDecision:
        return self._user_turn(self.user.read(response, Instruction).instruction.strip())

    def _reviewed(self, response: ModelResponse) -> ModelDecision:
        review = self.user.read(response, Review)
        return self._user_turn(self.done_token if review.task_done else review.instruction.strip())

    def _solved(self, decision: ModelDecision) -> ModelDecision:
        return self._assistant_turn(decision.thought, (decision.final_answer or "").strip())

    def _user_turn(self, text: str) -> ModelDecision:
        thought = f"{self.user_role}: {text}"
        self.user.record(text)
        if self._looping("user", text):
            return self._stop_or_nudge("user", text, thought)
        if self.done_token.strip("<>").lower() in text.lower():
            if self.solution is None:
                self._correct("user", CORRECT_EARLY_DONE, "early_done", text)
                return ModelDecision(thought=thought)
            self.phase = "done"
            self.note("task done: the user ended the role-play", event="done", turns=self.turns)
            return ModelDecision(thought=thought, final_answer=self.solution)
        if _SOLVING.search(text):
            self._correct("user", CORRECT_USER, "role_flip", text)
            return ModelDecision(thought=thought)
        if self._assistant_started:
            self.assistant.say(text)
        else:
            self.assistant.start(self.context.for_role(text))
            self._assistant_started = True
        self.phase = "assistant"
        return ModelDecision(thought=thought)

    def _assistant_turn(self, reasoning: str, text: str) -> ModelDecision:
        reasoning = "" if reasoning.strip() == text else reasoning.strip()
        thought = "\n".join(filter(None, [reasoning, f"{self.assistant_role}: {text}"]))
        self.assistant.settle(text)
        if self._looping("assistant", text):
            return self._stop_or_nudge("assistant", text, thought)
        if _INSTRUCTING.search(text):
            self._correct("assistant", CORRECT_ASSISTANT, "role_flip", text)
            return ModelDecision(thought=thought)
        self.solution = _SOLUTION_PREFIX.sub("", text, count=1).strip() or text
        self.turns += 1
        if self.turns >= self.max_turns:
            self.phase = "done"
            self.note(
                f"turn limit of {self.max_turns} reached; answering with the last solution",
                event="turn_limit",
                turns=self.turns,
            )
            return ModelDecision(thought=thought, final_answer=self.solution)
        self.user.say(text)
        self.phase = "user"
        return ModelDecision(thought=thought)

    def _looping(self, role: str, text: str) -> bool:
        """An empty message, or the same message as this role's previous one, is a strike."""
        normal = " ".join(text.lower().split())
        repeated = bool(normal) and normal == self._last[role]
        self._last[role] = normal
        if normal and not repeated:
            self._loop_strikes = 0
            return False
        self._loop_strikes += 1
        return True

    def _stop_or_nudge(self, role: str, text: str, thought: str) -> ModelDecision:
        what = "repeated" if text.strip() else "empty"
        if self._loop_strikes < 2:
            self._correct(role, CORRECT_LOOP.replace("{what}", what), "loop_nudge", text)
            return ModelDecision(thought=thought)
        self.phase = "stalled"
        self.note(
            f"empty loop: {role} sent {what} messages; stopping with the last solution",
            event="empty_loop",
            role=role,
            message=text,
            answer=self.solution,
        )
        return ModelDecision(thought=thought)

    def _correct(self, role: str, template: str, event: str, text: str) -> None:
        """Tell the offending role what went wrong, in its own conversation; its next request carries it."""
        message = template.format(**self.roles)
        if role == "user":
            self.user.say(message)
        else:
            self.assistant.say(message)
        if event == "role_flip":
            self.role_flips[role] += 1
        self.note(
            f"{event.replace('_', ' ')} by {role}: corrected",
            event=event,
            role=role,
            message=text,
            correction=message,
            count=self.role_flips[role],
        )
