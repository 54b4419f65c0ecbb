"""ReAct: Thought → Action → Observation, repeated until a final answer.

Works with native tool calls (observations go back as `tool` messages) and with JSON decisions
(observations go back as user messages). The conversation only grows, so every request shares the
previous one's prefix and server-side prefix caches hit.
"""

from __future__ import annotations

from typing import Any, Literal

from agentlab import decisions
from agentlab.models.base import DecisionFormat, ModelRequest, ModelResponse
from agentlab.run.conversation import as_text_turns
from agentlab.strategies.base import (
    Conclusion,
    DecisionError,
    ModelDecision,
    Observation,
    StrategyBase,
    StrategyContext,
)
from agentlab.strategies.grounding import (
    answer_phrases,
    candidate_numbers,
    candidate_sentences,
    grounded_markers,
    grounded_number_parameters,
    grounded_parameters,
    grounded_queries,
    grounded_tool_parameters,
    numeric_answer_type,
)

# Only what every run needs; how to answer is said by the decision format (a plain-text reply with native
# tools, the final_answer action otherwise), so this prompt holds for both.
SYSTEM = "Solve the task step by step. Use the tools for facts and arithmetic; do not guess. Then give the answer."


# Restating the task helps small models, which lose it behind long observations.
ANSWER_NOW = "Task: {task}\nCall final_answer now with your best answer from the observations."
# After observations (`restate_task`): a small model otherwise copies its previous call with the result
# substituted ("57 + 35 * 6" -> 267, then "267 + 35 * 6", ...) instead of answering.
RESTATED = "Task: {task}\nIf the observation answers the task, call final_answer with it."


class ReAct(StrategyBase):
    """Options: `system_prompt`; `min_tool_calls` (like `tool_choice="required"`) forbids a final answer
    before that many tool calls; `answer_on_last_step` (default on) constrains the last step the budget
    allows, and the step after the loop refused a repeated call, to a final answer: a run that gathered
    observations then ends with the model's own answer instead of `max_steps` or `stalled` (smolagents
    also asks for a final answer when steps run out). `answer_from_observations` makes a plain-text final
    answer, once tools have returned something, one of the observed sentences (an `enum` in the final
    answer's schema, enforced by a grammar or a native tool schema): grounded answers for QA over documents
    (`"phrases"` offers the names, dates and numbers in them and the titles instead, for short-answer QA);
    a numeric final answer (`output_type=float`/`int`) becomes one of the observed numbers. `restate_task`
    follows each observation (JSON decisions) with the task and a reminder to answer when it is answered.
    `thoughts` keeps the `thought` field of JSON decisions (a small model writes a made-up answer there and
    then copies it instead of the task). `ground_arguments` restricts tool parameters marked grounded
    (`agentlab.tools.schema.GROUNDED_KEY`: the search tools' query, `lookup`'s title) to the task, its names
    and the phrases the tools returned (a small model searches for words it made up), and a first calculation
    (the calculator's expression) to one the task writes out (a small model retypes it without a term).

    For these five, None (the default) means the setting for the run's model: when it is a small local one
    (`StrategyContext.small_model`) `min_tool_calls` is 1 if the run has tools, grounded answers, the
    restated task and grounded arguments are on and thoughts are off; for any other model, 0, off, off, off
    and on."""

    name = "react"

    def __init__(
        self,
        system_prompt: str = SYSTEM,
        answer_on_last_step: bool = True,
        min_tool_calls: int | None = None,
        answer_from_observations: bool | Literal["sentences", "phrases"] | None = None,
        restate_task: bool | None = None,
        thoughts: bool | None = None,
        ground_arguments: bool | None = None,
    ) -> None:
        super().__init__()
        if min_tool_calls is not None and min_tool_calls < 0:
            raise ValueError(f"min_tool_calls must be >= 0, not {min_tool_calls}")
        if answer_from_observations not in (None, True, False, "sentences", "phrases"):
            raise ValueError(
                "answer_from_observations must be True, False, 'sentences' or 'phrases', "
                f"not {answer_from_observations!r}"
            )
        self.answer_from_observations = answer_from_observations
        self.restate_task = restate_task
        self.thoughts = thoughts
        self.ground_arguments = ground_arguments
        self.system_prompt = system_prompt
        self.answer_on_last_step = answer_on_last_step
        self.min_tool_calls = min_tool_calls  # like tool_choice="required" until this many calls were made
        self.messages: list[dict[str, Any]] = []
        self._pending: list[dict[str, Any]] = []  # the last assistant turn, kept until observed

    def start(self, context: StrategyContext) -> None:
        """Begin a run; a restarted instance (BabyAGI's executor, task after task) starts afresh."""
        self.context = context
        small = context.small_model
        self._min_calls = (
            (int(small) if len(context.tools) else 0) if self.min_tool_calls is None else self.min_tool_calls
        )
        self._grounded = small if self.answer_from_observations is None else self.answer_from_observations
        self._restate = small if self.restate_task is None else self.restate_task
        self._thought = not small if self.thoughts is None else self.thoughts
        ground_arguments = small if self.ground_arguments is None else self.ground_arguments
        # Tools with grounded arguments, by name, each with its grounded parameters' marks.
        self._grounded_tools = {
            t.name: (t, marks) for t in context.tools if ground_arguments and (marks := grounded_markers(t.parameters))
        }
        self._tool_calls = 0
        self._observed = False
        self._answer_now = False
        self._pending = []
        self._step = 0
        self._observations: list[str] = []  # what tools returned, for grounded answers
        self._written: list[str] = []  # the model's own tool arguments (tools may echo them back)
        self._json_instructions_due = False  # set when switched to JSON without them in the system prompt
        self.format = context.decision_format
        system = self.system_prompt
        if context.instructions:
            system += "\n" + context.instructions
        final = context.output_schema
        if self.format != "tools":
            system += "\n" + decisions.json_instructions(context.tools, final, thought=self._thought)
        history = context.history if self.format == "tools" else as_text_turns(context.history)
        self.messages = [
            {"role": "system", "content": system},
            *history,
            {"role": "user", "content": context.task},
        ]
        # Computed once: the schema is part of every request's stable prefix. With native tools a plain-text
        # reply already ends the run, so final_answer is offered only where an answer must be forced or
        # typed (and on the forced last step, see _final_request).
        self._tool_schemas = context.tools.schemas()
        needs_final = self._min_calls > 0 or not decisions.is_text_answer(final)
        self._tools = [*self._tool_schemas, *([decisions.final_answer_tool(final)] if needs_final else [])]
        self._schema = decisions.decision_schema(context.tools, final_parameters=final, thought=self._thought)

    def switch_format(self, fmt: DecisionFormat) -> bool:
        """Ask for decisions in `fmt` from now on, keeping the conversation (the loop calls this when the
        endpoint keeps answering in another shape, or a fallback model takes another format)."""
        # A system prompt written for native tools does not say how to reply in JSON.
        self._json_instructions_due = fmt != "tools" and self.context.decision_format == "tools"
        self.format = fmt
        return True

    def next_step(self) -> ModelRequest | Conclusion:
        self._step += 1
        last = self.context.max_steps is not None and self._step >= self.context.max_steps
        if (last or self._answer_now) and self.answer_on_last_step and self._observed:
            return self._final_request()
        if self._json_instructions_due and self.format != "tools":
            instructions = decisions.json_instructions(self.context.tools, thought=self._thought)
            self.messages.append({"role": "user", "content": instructions})
            self._json_instructions_due = False
        grounded = self._grounded_final()  # read the observations once per step
        awaiting = self._awaiting_evidence(grounded)
        must_call = (self._tool_calls < self._min_calls or awaiting) and len(self.context.tools) > 0
        arguments = self._grounded_arguments()
        if self.format == "tools":
            choice = "required" if must_call else None
            tools = self._tools if grounded is None else [*self._tool_schemas, decisions.final_answer_tool(grounded)]
            if arguments:
                tools = [_with_parameters(schema, arguments) for schema in tools]
            return ModelRequest(messages=list(self.messages), tools=tools, tool_choice=choice)
        schema = self._schema if self.format == "json_schema" else None
        if schema is not None and (must_call or grounded is not None or arguments):
            schema = decisions.decision_schema(
                self.context.tools,
                allow_final=not must_call,  # no final answer offered: nothing to ground
                final_parameters=grounded or self.context.output_schema,
                thought=self._thought,
                tool_parameters=arguments,
            )
        return ModelRequest(messages=list(self.messages), response_schema=schema)

    def _grounded_arguments(self) -> dict[str, dict[str, Any]]:
        """The parameters of tools with grounded arguments (`GROUNDED_KEY`), their values restricted to the
        task, its names and what the tools returned so far (`grounded_queries`), by tool name; empty when the
        option is off."""
        if not self._grounded_tools:
            return {}
        task = self.context.asked
        queries = grounded_queries(task, self._observations)
        first = not self._observations
        return {
            name: grounded_tool_parameters(t.parameters, queries, task=task, first=first)
            for name, (t, _) in self._grounded_tools.items()
        }

    def _final_request(self) -> ModelRequest:
        messages = [*self.messages, {"role": "user", "content": ANSWER_NOW.format(task=self.context.asked)}]
        final = self._grounded_final() or self.context.output_schema
        if self.format == "tools":
            forced = {"type": "function", "function": {"name": decisions.FINAL}}
            return ModelRequest(
                messages=messages, tools=[*self._tool_schemas, decisions.final_answer_tool(final)], tool_choice=forced
            )
        final_only = decisions.decision_schema(
            self.context.tools, final_only=True, final_parameters=final, thought=self._thought
        )
        return ModelRequest(messages=messages, response_schema=final_only if self.format == "json_schema" else None)

    def _awaiting_evidence(self, grounded: dict[str, Any] | None) -> bool:
        """Grounded answers are on for this answer type and nothing observed can be copied yet (`grounded`,
        this step's `_grounded_final()`, is None: the search found nothing, a tool failed): the model is to
        look further, not to answer from nothing. The last step the budget allows still asks for an answer."""
        if grounded is not None or not self._grounded or not self._observed:
            return False
        final = self.context.output_schema
        return numeric_answer_type(final) is not None or decisions.is_string_answer(final)

    def _grounded_final(self) -> dict[str, Any] | None:
        """The final answer's parameters restricted to what the tools returned, when that option is on and
        there is something to copy from: observed sentences for a plain-text answer, observed numbers for a
        numeric one (`output_type=float` or `int`); else None (other typed answers are left alone)."""
        if not self._grounded:
            return None
        final = self.context.output_schema
        numeric = numeric_answer_type(final)
        if numeric is not None and final is not None:
            numbers = candidate_numbers(self._observations, integers=numeric == "integer")
            return grounded_number_parameters(final, numbers) if numbers else None
        if not decisions.is_string_answer(final):
            return None
        if self._grounded == "phrases":
            spans = answer_phrases(self._observations, self.context.asked, written=self._written)
        else:
            spans = candidate_sentences(self._observations, written=self._written)
        return grounded_parameters(spans) if spans else None

    def interpret(self, response: ModelResponse) -> ModelDecision:
        self._pending = [_assistant_turn(response)]
        return decisions.read_decision(response, self.format, self._step)

    def observe(self, observations: list[Observation]) -> None:
        self._observed = self._observed or bool(observations)
        self._tool_calls += sum(not o.repeated for o in observations)
        self._answer_now = any(o.repeated for o in observations)
        self._observations += [o.output.content for o in observations if o.output.ok]
        for o in observations:
            _, grounded = self._grounded_tools.get(o.call.name, (None, {}))
            # A grounded argument is a copy of the run's text, not the model's own (which tools may echo back).
            self._written += [str(value) for name, value in o.call.arguments.items() if name not in grounded]
        # Tool calls are answered by tool messages, whatever format was asked (a reply is read leniently).
        answered_by_tool_messages = any("tool_calls" in turn for turn in self._pending)
        self.messages += self._pending
        self._pending = []
        if answered_by_tool_messages:
            self.messages += [
                {"role": "tool", "tool_call_id": o.call.id, "content": o.output.content} for o in observations
            ]
        else:
            text = "\n".join(f"Observation: {o.output.content}" for o in observations)
            if self._restate:
                text += "\n" + RESTATED.format(task=self.context.asked)
            self.messages.append({"role": "user", "content": text})

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        self.messages += rejection_turns(response, error)
        self._pending = []


def _with_parameters(schema: dict[str, Any], parameters: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A native tool schema with its parameters replaced when `parameters` has them for its name."""
    function = schema["function"]
    if function["name"] not in parameters:
        return schema
    return {**schema, "function": {**function, "parameters": parameters[function["name"]]}}


def _assistant_turn(response: ModelResponse) -> dict[str, Any]:
    turn: dict[str, Any] = {"role": "assistant", "content": response.content or ""}
    if response.tool_calls:
        turn["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in response.tool_calls
        ]
    return turn


def rejection_turns(response: ModelResponse, error: DecisionError) -> list[dict[str, Any]]:
    """The unusable reply and why it was rejected, so the next request can repair it."""
    if response.tool_calls:
        # Every tool call must be answered before the conversation can go on.
        return [
            _assistant_turn(response),
            *({"role": "tool", "tool_call_id": c.id, "content": f"Error: {error}"} for c in response.tool_calls),
        ]
    return [_assistant_turn(response), {"role": "user", "content": f"Error: {error}"}]
