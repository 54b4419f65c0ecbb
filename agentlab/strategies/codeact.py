"""CodeAct: each step the model writes a short Python snippet instead of a JSON tool call.

The agent's tools are plain functions inside the snippet, and variables persist from step to step: one
sandbox worker is kept for the whole run (no state survives it). A call such as ``search("x")`` in the
snippet travels to this process over the sandbox's JSON channel, where the run's ToolRegistry validates
the arguments against the tool's schema, asks for approval and applies the timeout; only the JSON result
goes back. The tool's own code never runs in the sandbox. ``final_answer(value)`` ends the run.

The snippet itself runs through the ``run_code`` tool this strategy adds to the run (like PAL's runner),
so every step shows up in the trace as a tool call with its observation: printed output, the results of
the calls it made, and errors with a short traceback.
"""

from __future__ import annotations

import inspect
import json
import keyword
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from agentlab._arithmetic_shape import NAME, NUMBER, chain_of, runnable, term_of
from agentlab.decisions import MAX_THOUGHT_CHARS, object_request, read_structured, structured_request
from agentlab.events import ToolCall
from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.models.grammar import CODE
from agentlab.run.conversation import with_history
from agentlab.strategies.base import (
    Conclusion,
    DecisionError,
    ModelDecision,
    Observation,
    StrategyContext,
    StrategyFailed,
)
from agentlab.strategies.grounding import task_expressions
from agentlab.strategies.react import RESTATED
from agentlab.tools.function_tool import BaseTool, Tool

if TYPE_CHECKING:
    from agentlab.sandbox import Sandbox, SandboxSession, SnippetResult
    from agentlab.tools import ApprovalCallback, ToolRegistry

RUNNER = "run_code"
MAX_CODE_CHARS = 2000
# Names the snippet already has (the sandbox's own) or that would shadow something it needs.
_UNEXPOSABLE = frozenset({"final_answer", "ToolError", "print", RUNNER})
_SHOWN_RESULT_CHARS = 300

SYSTEM = (
    "You solve the task by writing short Python snippets, one per step. The snippet runs in a sandbox "
    "where these functions are available:\n{functions}\n"
    "- final_answer(value): end with the answer (short).\n"
    "Variables persist from step to step. print() what you need to see: you get back the printed output, "
    "the results of the function calls and any error. Standard library only; no files or network."
)
EXAMPLE = "price = get_price('apple')\nprint(price)"
LAST_STEP = "This is the last step: call final_answer(...) with your best answer now."
# A small model's snippet, as a grammar (PAL's program has one too): one line, either a variable assigned a
# call of one of the tools or arithmetic, or final_answer(...). Its operands are numbers and the variables
# earlier snippets assigned (no name that would be a NameError); a call's arguments (up to three) are such
# operands or short single-quoted text without quotes, backslashes or braces. The value assigned is printed
# after the line runs, and a keyword used as a name is renamed (`runnable`). SmolLM2 given a free code string
# wrote the prompt's example and then a sentence after it (`print(price) returns the price ...`), a
# SyntaxError it then repeated until the run stalled; given lines over any names, it used names nothing had
# assigned (`price = get_price_with_variable_3 + 103`).
_TEXT = "'[A-Za-z0-9 ,.?!:;%$_()+*/=<>&#@-]{0,60}'"
_ASSIGNMENT = re.compile(r"^([a-z_][a-z0-9_]*) = ")


def snippet_schema(
    tool_names: Sequence[str],
    known: Sequence[str] = (),
    *,
    final_only: bool = False,
    calculations: Sequence[str] = (),
) -> dict[str, Any]:
    """The `CodeStep` schema of a small model: no thought, and the code as one line of the shape above,
    calling only `tool_names` (Python identifiers, as `exposable` ensures) over the `known` variables;
    `final_only`: the final_answer(...) line alone, of one of the `known` variables when there are any;
    `calculations`: the arithmetic is one of these, copied."""
    operand = "|".join([*known, NUMBER])
    expression = chain_of(term_of(operand))
    if calculations:
        expression = "|".join(_literal(calculation) for calculation in calculations)
    argument = f"({_TEXT}|{operand})"
    call = f"({'|'.join(tool_names)})[(]({argument}(, {argument}){{0,2}})?[)]" if tool_names else None
    value = f"{call}|{expression}" if call else expression
    final = f"final_answer[(]({_TEXT}|{expression})[)]"
    if final_only and known:  # the answer is one of the values the run computed, not a number made up
        final = f"final_answer[(]({'|'.join(known)})[)]"
    code = {"type": "string", "pattern": f"^({final})$" if final_only else f"^({NAME} = ({value})|{final})$"}
    return {"type": "object", "properties": {"code": code}, "required": ["code"]}


def _literal(text: str) -> str:
    """`text` as a pattern that matches only it: punctuation in classes (see `agentlab._arithmetic_shape`)."""
    return "".join(char if char.isalnum() or char == " " else f"[{char}]" for char in text)


class CodeStep(BaseModel):
    """One step: a short thought and the Python snippet to run."""

    thought: str = Field(default="", max_length=MAX_THOUGHT_CHARS)
    code: str = Field(min_length=1, max_length=MAX_CODE_CHARS, json_schema_extra=CODE)


class _RunnerTool(Tool[..., Any]):
    """``run_code``: its result is a :class:`_StepOutcome`, whose ``ok`` is the snippet's."""

    def _render(self, result: Any) -> tuple[bool, str]:
        if isinstance(result, _StepOutcome):
            return result.ok, result.text
        return super()._render(result)


class _StepOutcome:
    def __init__(self, ok: bool, text: str) -> None:
        self.ok, self.text = ok, text


def exposable(name: str) -> bool:
    """Whether a tool can be offered as a Python function of that name."""
    return name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_") and name not in _UNEXPOSABLE


def signature_line(tool: BaseTool[..., Any]) -> str:
    """``- name(param: type, ...): first line of the description``."""
    properties = tool.parameters.get("properties", {})
    params = ", ".join(f"{key}: {spec.get('type', 'any')}" for key, spec in properties.items())
    summary = tool.description.strip().split("\n", 1)[0]
    return f"- {tool.name}({params}): {summary}"


class CodeAct:
    """Options: ``sandbox`` (one is created for the run when None, and closed with it), ``timeout``
    (seconds of sandbox time per snippet; time spent in tools does not count), ``max_calls`` (tool calls
    per snippet), ``approve`` (asked before tools that need approval when the run's context has no
    approver; without either such tools are denied), ``ground_arguments`` (on a small model's shaped line:
    when the task writes out a calculation, the first line's arithmetic is one of the task's own, copied, as
    ReAct's first calculator call is; None: on for small models)."""

    name = "codeact"

    def __init__(
        self,
        sandbox: Sandbox | None = None,
        timeout: float = 10.0,
        max_calls: int = 20,
        approve: ApprovalCallback | None = None,
        ground_arguments: bool | None = None,
    ) -> None:
        self.sandbox = sandbox
        self.ground_arguments = ground_arguments
        self.timeout = timeout
        self.max_calls = max_calls
        self.approve = approve
        self.messages: list[dict[str, Any]] = []
        self.final: str | None = None
        self._owns_sandbox = sandbox is None
        self._session: SandboxSession | None = None
        self._fatal: str | None = None
        self._pending: list[dict[str, Any]] = []
        self._native_id: str | None = None
        self._step = 0
        self._notes: list[tuple[str, dict[str, Any]]] = []

    # -- the runner the loop calls ------------------------------------------------------------------

    def extra_tools(self) -> list[Tool[..., Any]]:
        """``run_code``: runs a snippet in this run's sandbox session; the loop adds it to the run's tools."""

        async def run_code(code: str) -> _StepOutcome:
            """Run a Python snippet in this run's sandbox session (variables persist between snippets).

            Args:
                code: Python source; the agent's tools are functions in it, final_answer(value) ends the run.
            """
            return await self._run(code)

        return [_RunnerTool(run_code, name=RUNNER, timeout=None)]

    async def _run(self, code: str) -> _StepOutcome:
        from agentlab.sandbox import SandboxUnavailable

        calls: list[str] = []
        try:
            session = self._open_session()
            result = await session.execute(code, lambda name, arguments: self._call(name, arguments, calls))
        except (SandboxUnavailable, RuntimeError) as error:
            self._fatal = f"the sandbox cannot run code: {error}"
            return _StepOutcome(False, f"Error: {self._fatal}")
        if result.final and result.value_is_repr:  # '<object object at 0x...>' is no answer
            shown = str(result.value)[:80]
            return _StepOutcome(False, f"Error: final_answer() got {shown}, which is no number, text, list or dict.")
        if result.final:
            self.final = result.value if isinstance(result.value, str) else json.dumps(result.value)
            self.close()
        return _StepOutcome(result.ok, observation(result, calls))

    def _open_session(self) -> SandboxSession:
        if self._session is None:
            if self.sandbox is None:
                from agentlab.sandbox import Sandbox

                self.sandbox = Sandbox(timeout=self.timeout, pool_size=0)
            functions = {t.name: list(t.parameters.get("properties", {})) for t in self._exposed()}
            self._session = self.sandbox.session(functions, timeout=self.timeout, max_calls=self.max_calls)
        return self._session

    async def _call(self, name: str, arguments: dict[str, Any], calls: list[str]) -> Any:
        """A call made by the snippet: through the registry (validation, approval, timeout), JSON back."""
        from agentlab.sandbox import CallRefused

        count = getattr(self.context.run_context, "count_tool_call", None)
        refusal = count() if count is not None else None
        if refusal is not None:  # each call counts against max_tool_calls, as the loop's own calls do
            calls.append(f"{name}(...) -> refused: {refusal}")
            raise CallRefused(f"Error: {refusal}; no tool can be called any more.")
        output = await self.tools.invoke(
            name, arguments, approve=self.context.approve or self.approve, context=self.context.run_context
        )
        shown = json.dumps(arguments, ensure_ascii=False)
        calls.append(f"{name}({shown}) -> {output.content[:_SHOWN_RESULT_CHARS]}")
        self._notes.append(
            ("sandbox tool call", {"tool": name, "arguments": arguments, "ok": output.ok, "content": output.content})
        )
        if not output.ok:
            raise CallRefused(output.content)
        return _as_value(self.tools.get(name), output.content)

    def _exposed(self) -> list[BaseTool[..., Any]]:
        return [t for t in self.tools if exposable(t.name)]

    def close(self) -> None:
        """Kill the run's sandbox worker (its variables die with it). Safe to call more than once; an instance
        used again (one given as BabyAGI's executor serves every task) opens a fresh session."""
        session, self._session = self._session, None
        if session is not None:
            session.close()
        if self._owns_sandbox and self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None

    # -- the strategy protocol ----------------------------------------------------------------------

    def start(self, context: StrategyContext) -> None:
        self.context = context
        self.tools: ToolRegistry = context.tools
        self.format = context.decision_format
        skipped = [t.name for t in context.tools if t.name != RUNNER and not exposable(t.name)]
        if skipped:
            self._notes.append(("tools not callable from code (names are not Python identifiers)", {"tools": skipped}))
        functions = "\n".join(signature_line(t) for t in self._exposed()) or "(none)"
        system = SYSTEM.format(functions=functions)
        if context.instructions:
            system += "\n" + context.instructions
        # On a small model a step is its code alone (a thought gets copied instead of the task, as in ReAct),
        # in the shape of `snippet_schema`.
        self._shaped = context.small_model and self.format == "json_schema"
        grounded = context.small_model if self.ground_arguments is None else self.ground_arguments
        self._calculations = task_expressions(context.asked) if self._shaped and grounded else []
        self._known: list[str] = []  # the variables the snippets that ran assigned (shaped snippets only)
        self._assigning: str | None = None
        self._answer_now = False
        first_line = EXAMPLE.split("\n")[0]
        example = {"code": first_line} if self._shaped else {"thought": "Look up the price first.", "code": EXAMPLE}
        system += "\nExample step: " + json.dumps(example)
        self.messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": with_history(context.task, context.history)},
        ]

    def next_step(self) -> ModelRequest | Conclusion:
        if self.final is not None:
            return Conclusion(self.final)
        if self._fatal is not None:
            self.close()
            raise StrategyFailed(self._fatal)
        self._step += 1
        messages = list(self.messages)
        last = self.context.max_steps is not None and self._step >= self.context.max_steps
        if last:
            messages.append({"role": "user", "content": LAST_STEP})
        if self._shaped:
            # Like ReAct's, a small model's repeated step (refused by the loop) or its last one gets only the answer.
            final_only = last or self._answer_now
            # The task's own calculation first: a small model retypes it without a term.
            first = self._calculations if not self._known else ()
            schema = snippet_schema(
                [t.name for t in self._exposed()], self._known, final_only=final_only, calculations=first
            )
            return object_request(messages, schema, self.format, name=RUNNER, description="One step: the line to run.")
        return structured_request(messages, CodeStep, self.format, name=RUNNER)

    def interpret(self, response: ModelResponse) -> ModelDecision:
        step = self._read(response)
        if self._shaped:  # the line as it will run: the conversation shows the names the next steps may use
            step.code = runnable(step.code)
        raw = response.tool_calls[0] if response.tool_calls else None
        self._native_id = raw.id if raw is not None else None
        call_id = raw.id if raw is not None else f"code{self._step}"
        if raw is not None:
            turn = {
                "role": "assistant",
                "content": response.content or "",
                "tool_calls": [
                    {"id": raw.id, "type": "function", "function": {"name": raw.name, "arguments": raw.arguments}}
                ],
            }
        else:
            turn = {"role": "assistant", "content": json.dumps(step.model_dump(), ensure_ascii=False)}
        self._pending = [turn]
        code = step.code
        if self._shaped:  # one line: run it, then show the value it assigned
            assigned = _ASSIGNMENT.match(code)
            self._assigning = assigned.group(1) if assigned else None
            code += f"\nprint({self._assigning})" if self._assigning else ""
        return ModelDecision(thought=step.thought, tool_calls=[ToolCall(call_id, RUNNER, {"code": code})])

    def _read(self, response: ModelResponse) -> CodeStep:
        """The step in whatever shape it came: the asked-for object, or a fenced code block in prose."""
        try:
            return read_structured(response, CodeStep)
        except DecisionError as error:
            fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", response.content or "", re.DOTALL)
            if fenced and fenced.group(1).strip() and not response.tool_calls:
                return CodeStep(code=fenced.group(1)[:MAX_CODE_CHARS])
            raise DecisionError(f'{error} Reply with {{"thought": "...", "code": "<python>"}}.') from error

    def observe(self, observations: list[Observation]) -> None:
        self.messages += self._pending
        self._pending = []
        self._answer_now = any(item.repeated for item in observations)
        for item in observations:
            if not item.output.ok:
                self._notes.append(("snippet failed", {"error": item.output.content[-500:]}))
            elif self._assigning and self._assigning not in self._known:
                self._known.append(self._assigning)
            if self._native_id is not None:
                self.messages.append({"role": "tool", "tool_call_id": self._native_id, "content": item.output.content})
            else:
                text = f"Observation:\n{item.output.content}"
                if self._shaped:  # as ReAct does for a small model: the task again, and when to answer
                    text += "\n" + RESTATED.format(task=self.context.asked)
                self.messages.append({"role": "user", "content": text})

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        from agentlab.strategies.react import rejection_turns

        self.messages += rejection_turns(response, error)
        self._pending = []

    def best_answer(self) -> str | None:
        self.close()  # called once the run is over, whatever ended it
        return self.final

    def notes(self) -> list[tuple[str, dict[str, Any]]]:
        drained, self._notes = self._notes, []
        return drained


def observation(result: SnippetResult, calls: list[str]) -> str:
    """What the model sees after a snippet: calls and their results, printed output, the error."""
    parts: list[str] = []
    if result.restarted:
        parts.append("Note: the sandbox was restarted; variables from earlier steps are gone.")
    if calls:
        parts.append("Calls:\n" + "\n".join(calls))
    if result.stdout:
        parts.append("Output:\n" + result.stdout.rstrip())
    if not result.ok:
        detail = result.stderr.strip()[-1500:] or result.error or "the snippet failed"
        if result.error and result.error not in detail:
            detail = f"{detail}\n{result.error}"
        parts.append("Error:\n" + detail)
    elif result.final:
        parts.append(f"final_answer({json.dumps(result.value, ensure_ascii=False)[:200]})")
    if not parts:
        parts.append("(no output: print() the values you need)")
    return "\n".join(parts)


def _as_value(tool: BaseTool[..., Any], content: str) -> Any:
    """A tool's result as JSON data for the snippet: text tools give text, others their decoded JSON."""
    returns = inspect.signature(tool.func).return_annotation
    if returns in (str, "str"):
        return content
    try:
        return json.loads(content)
    except ValueError:
        return content
