"""Decision formats shared by strategies: how a step's decision is asked for and read back, natively
(tool calls), as schema-constrained JSON, or as plain JSON text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from agentlab._text import scrub_data
from agentlab.events import ToolCall
from agentlab.models.base import Capabilities, DecisionFormat, ModelRequest, ModelResponse

ReplyShape = Literal["tools", "json"]

if TYPE_CHECKING:
    from pydantic import BaseModel

    from agentlab.tools import ToolRegistry
    from agentlab.tools.function_tool import BaseTool

    ShapeT = TypeVar("ShapeT", bound=BaseModel)


class DecisionError(ValueError):
    """The model's reply is not a usable decision; the message is written for the model to fix it."""


@dataclass
class ModelDecision:
    """One step's typed prediction: a thought, then tool calls, a final answer, or neither (keep going)."""

    thought: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    final_answer: str | None = None
    # The final-answer action's arguments as the model gave them; the loop validates them against the
    # run's output type. None when the answer came as plain text (or from a strategy, not the model).
    final_arguments: dict[str, Any] | None = None
    # The shape the reply came in, whatever was asked: "tools" (native tool calls) or "json" (a JSON
    # decision in the text); None for plain text or a strategy's own reading.
    read_as: ReplyShape | None = None


FINAL = "final_answer"
TEXT_ANSWER: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "minLength": 1, "description": "The final answer."}},
    "required": ["answer"],
}
"""The final action's parameters for a plain-text answer (the default output type, `str`)."""
MAX_THOUGHT_CHARS = 120  # a step needs a sentence; long thoughts cost a small local model seconds


def final_answer_tool(parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The native `final_answer` tool; its parameters are the run's output schema (plain text by default)."""
    return {
        "type": "function",
        "function": {"name": FINAL, "description": "Give the final answer.", "parameters": parameters or TEXT_ANSWER},
    }


def is_text_answer(parameters: dict[str, Any] | None) -> bool:
    """True when the final action's parameters are the plain-text answer's (the default output type, `str`)."""
    return parameters is None or parameters == TEXT_ANSWER


def is_string_answer(parameters: dict[str, Any] | None) -> bool:
    """True when the final answer is one string `answer`: plain text, or a constrained string (a length
    bound, a pattern) that is still text."""
    if parameters is None:
        return True
    properties = parameters.get("properties", {})
    return set(properties) == {"answer"} and properties["answer"].get("type") == "string"


def decision_schema(
    tools: ToolRegistry,
    *,
    allow_final: bool = True,
    final_only: bool = False,
    final_parameters: dict[str, Any] | None = None,
    thought: bool = True,
    tool_parameters: Mapping[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One JSON object per step: a thought and one action whose arguments match the chosen tool (or the
    run's output schema for the final answer), so a grammar-constrained model can only produce calls and
    answers that validate. `thought=False` leaves the thought out: a small model writes a made-up answer
    there ("The answer is 125.") and then copies that instead of the task. `tool_parameters` replaces some
    tools' parameters (by name) in this schema, as grounded arguments do."""
    replaced = tool_parameters or {}
    variants = [] if final_only else [_action(t.name, replaced.get(t.name, t.parameters)) for t in tools]
    if allow_final or final_only:
        variants.append(_action(FINAL, final_parameters or TEXT_ANSWER))
    action = variants[0] if len(variants) == 1 else {"anyOf": variants}
    if not thought:
        return {"type": "object", "properties": {"action": action}, "required": ["action"]}
    return {
        "type": "object",
        "properties": {"thought": {"type": "string", "maxLength": MAX_THOUGHT_CHARS}, "action": action},
        "required": ["thought", "action"],
    }


def _action(name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"name": {"const": name}, "arguments": parameters},
        "required": ["name", "arguments"],
    }


def offer_tool(request: ModelRequest, tool: BaseTool[..., Any]) -> ModelRequest:
    """`request` with `tool` among the actions it offers, when it offers a choice of tools: a native tools
    list not forced to one function, or a decision schema with a tool besides the final answer. Other
    requests (a forced answer, a program, a structured object, plain JSON text) are returned as they are."""
    if request.tools and not isinstance(request.tool_choice, dict):
        if any(t.get("function", {}).get("name") == tool.name for t in request.tools):
            return request
        return replace(request, tools=[*request.tools, tool.schema()])
    action = (request.response_schema or {}).get("properties", {}).get("action", {})
    variants = action.get("anyOf", [action])
    names = [v.get("properties", {}).get("name", {}).get("const") for v in variants]
    if not any(name not in (None, FINAL) for name in names) or tool.name in names:
        return request
    offered = {"anyOf": [*variants, _action(tool.name, tool.parameters)]}
    schema = dict(request.response_schema or {})
    schema["properties"] = {**schema["properties"], "action": offered}
    return replace(request, response_schema=schema)


def json_instructions(
    tools: ToolRegistry, final_parameters: dict[str, Any] | None = None, *, thought: bool = True
) -> str:
    lines = ["Tools:"]
    for t in tools:
        params = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in t.parameters.get("properties", {}).items())
        summary = t.description.strip().split("\n", 1)[0]
        lines.append(f"- {t.name}({params}): {summary}")
    final = ", ".join(
        f"{k}: {v.get('type', 'any')}" for k, v in (final_parameters or TEXT_ANSWER).get("properties", {}).items()
    )
    lines.append(f"- {FINAL}({final}): Give the final answer.")
    shape = '{"action": {"name": "<tool>", "arguments": {...}}}'
    lines.append(
        "Reply with one JSON object only: " + (shape.replace("{", '{"thought": "...", ', 1) if thought else shape)
    )
    return "\n".join(lines)


def read_decision(response: ModelResponse, fmt: DecisionFormat, step: int) -> ModelDecision:
    """Read what came back, whatever was asked (be lenient in what you read): native tool calls are a
    decision in JSON mode too, and a JSON decision in the text is one in native mode too. Only a reply
    with neither is read by `fmt`'s rule: text ends the run in native mode, is an error in JSON mode."""
    if response.malformed:
        raise DecisionError(response.malformed)
    if response.tool_calls:
        return _read_native(response)
    if fmt == "tools":
        decision = _json_decision(response, step)
        return decision if decision is not None else _read_native(response)
    return _read_json(response, step)


def _json_decision(response: ModelResponse, step: int) -> ModelDecision | None:
    """The JSON decision in a text reply, or None when the text is not one (then it is an answer)."""
    text = (response.content or "").strip()
    if "{" not in text:
        return None
    try:
        data = json.loads(_json_span(text), strict=False)
    except ValueError:  # not JSON (or a number past Python's digit limit: see _loads_object)
        return None
    action = data.get("action") if isinstance(data, dict) else None
    if not isinstance(action, dict) or not isinstance(action.get("name"), str):
        return None
    return _read_json(response, step)


def _read_native(response: ModelResponse) -> ModelDecision:
    thought = (response.content or "").strip()
    if not response.tool_calls:
        if response.finish_reason == "length":
            raise DecisionError("Your reply was cut off. Be shorter.")
        if not thought:
            raise DecisionError(f"Empty reply. Call a tool or {FINAL}.")
        return ModelDecision(thought="", final_answer=thought)  # plain text ends the run, as on OpenAI
    if any(not raw.name for raw in response.tool_calls):
        raise DecisionError(f"A tool call had no name. Call a tool by its name, or {FINAL}.")
    others = [raw.name for raw in response.tool_calls if raw.name != FINAL]
    if others and len(others) < len(response.tool_calls):
        # Answering beside another call would end the run before that call ran: the answer would claim an
        # action (an email sent) that never happened. So neither runs, and the model is told the order.
        raise DecisionError(
            f"{FINAL} was called together with {', '.join(others)}. Call the other tools first; call {FINAL} "
            "alone, once you have their results."
        )
    calls = []
    for raw in response.tool_calls:
        arguments = _loads_object(raw.arguments or "{}", f"arguments of {raw.name}")
        if raw.name == FINAL:
            return final_decision(thought, arguments, read_as="tools")
        calls.append(ToolCall(id=raw.id, name=raw.name, arguments=arguments))
    return ModelDecision(thought=thought, tool_calls=calls, read_as="tools")


def _read_json(response: ModelResponse, step: int) -> ModelDecision:
    text = (response.content or "").strip()
    if not text:
        if response.finish_reason == "length":
            raise DecisionError("Your reply was cut off. Be shorter.")
        raise DecisionError("Empty reply. Reply with one JSON object.")
    data = _loads_object(_json_span(text), "your reply")
    action = data.get("action")
    if not isinstance(action, dict) or not isinstance(action.get("name"), str):
        raise DecisionError(
            'Missing "action" with a "name". Example: {"thought": "...", "action": '
            '{"name": "final_answer", "arguments": {"answer": "..."}}}'
        )
    arguments = action.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise DecisionError('"arguments" must be a JSON object.')
    thought = str(data.get("thought", "")).strip()
    if action["name"] == FINAL:
        return final_decision(thought, arguments, read_as="json")
    return ModelDecision(
        thought=thought, tool_calls=[ToolCall(f"step{step}", action["name"], arguments)], read_as="json"
    )


class FormatWatch:
    """Notices when replies keep coming in another shape than the one asked for (an endpoint whose probe
    said "no native tools" but that answers with tool calls, or the reverse) and names the format to
    switch to once `patience` replies in a row contradicted it."""

    def __init__(self, capabilities: Capabilities, patience: int = 2) -> None:
        self.capabilities = capabilities
        self.patience = patience
        self._contradictions = 0

    def observe(self, fmt: DecisionFormat, decision: ModelDecision) -> DecisionFormat | None:
        """The format to switch to after this decision, or None to keep `fmt`."""
        asked: ReplyShape = "tools" if fmt == "tools" else "json"
        if decision.read_as is None or decision.read_as == asked:
            self._contradictions = 0
            return None
        self._contradictions += 1
        if self._contradictions < self.patience:
            return None
        self._contradictions = 0
        if decision.read_as == "tools":
            return "tools"
        return "json_schema" if self.capabilities.json_schema else "json"


def final_decision(thought: str, arguments: dict[str, Any], read_as: ReplyShape | None = None) -> ModelDecision:
    """A final answer given through the final action: its text form and its arguments, to be validated
    against the run's output type by the loop."""
    answer = arguments.get("answer")
    if isinstance(answer, str):
        text = answer
    elif answer is None and set(arguments) != {"answer"}:
        text = json.dumps(arguments, ensure_ascii=False)  # an object output type: its fields are the arguments
    else:
        text = json.dumps(answer, ensure_ascii=False) if isinstance(answer, dict | list) else str(answer or "")
    return ModelDecision(thought=thought, final_answer=text, final_arguments=arguments, read_as=read_as)


def _json_span(text: str) -> str:
    """Models wrap JSON in prose or code fences; take the outermost object. A reply that already is
    JSON is kept whole: its strings may themselves contain fences."""
    if text.startswith("{") and text.endswith("}"):
        return text
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if start != -1 and end > start else text


def _loads_object(text: str, what: str) -> dict[str, Any]:
    try:
        # strict=False: grammar-constrained small models put raw newlines and tabs inside strings.
        # A `\ud800` escape in a JSON reply decodes to a lone surrogate, which no later write can encode.
        value = scrub_data(json.loads(text, strict=False))
    except json.JSONDecodeError as error:
        raise DecisionError(f"Invalid JSON in {what}: {error.msg} at char {error.pos}.") from error
    except ValueError as error:  # an integer of over 4300 digits, which Python refuses to convert
        raise DecisionError(f"Invalid JSON in {what}: a number has too many digits.") from error
    if not isinstance(value, dict):
        raise DecisionError(f"{what} must be a JSON object.")
    return value


# --- one JSON object of a given pydantic shape (a critique, an instruction, ...) ---------------------


def structured_request(
    messages: Sequence[dict[str, Any]], shape: type[BaseModel], fmt: DecisionFormat, *, name: str
) -> ModelRequest:
    """Ask for one JSON object of `shape`: a forced call of a tool named `name` (native), a
    `response_format` schema (json_schema), or the shape spelled out after the last message (json)."""
    return object_request(messages, shape.model_json_schema(), fmt, name=name, description=shape.__doc__ or name)


def object_request(
    messages: Sequence[dict[str, Any]], schema: dict[str, Any], fmt: DecisionFormat, *, name: str, description: str
) -> ModelRequest:
    """Ask for one JSON object matching the object schema `schema` (see `structured_request`)."""
    if fmt == "tools":
        tool = {
            "type": "function",
            "function": {"name": name, "description": description.strip(), "parameters": schema},
        }
        forced = {"type": "function", "function": {"name": name}}
        return ModelRequest(messages=list(messages), tools=[tool], tool_choice=forced, schema_name=name)
    if fmt == "json_schema":
        return ModelRequest(messages=list(messages), response_schema=schema, schema_name=name)
    hint = "Reply with one JSON object only: " + json_shape(schema)
    return ModelRequest(messages=[*messages, {"role": "user", "content": hint}], schema_name=name)


def json_shape(schema: dict[str, Any]) -> str:
    """A one-line example of an object schema, e.g. {"critique": "<string>", "correct": <true|false>}."""
    placeholders = {"string": '"<string>"', "boolean": "<true|false>", "integer": "<integer>", "number": "<number>"}
    fields = [
        f'"{key}": {placeholders.get(spec.get("type", ""), "<value>")}'
        for key, spec in schema.get("properties", {}).items()
    ]
    return "{" + ", ".join(fields) + "}"


def read_object(response: ModelResponse) -> dict[str, Any]:
    """The JSON object a reply to an `object_request` carries (as a tool call's arguments or as text)."""
    if response.malformed:
        raise DecisionError(response.malformed)
    if response.tool_calls:
        return _loads_object(response.tool_calls[0].arguments or "{}", "your reply")
    text = (response.content or "").strip()
    if response.finish_reason == "length":
        raise DecisionError("Your reply was cut off. Be shorter.")
    if not text:
        raise DecisionError("Empty reply. Reply with one JSON object.")
    return _loads_object(_json_span(text), "your reply")


def read_structured(response: ModelResponse, shape: type[ShapeT]) -> ShapeT:
    """The reply to a `structured_request` as an instance of `shape`; DecisionError says what to fix."""
    from pydantic import ValidationError

    data = read_object(response)
    try:
        return shape.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in error.errors()[:3])
        raise DecisionError(f"Reply does not match {json_shape(shape.model_json_schema())}: {problems}.") from error
