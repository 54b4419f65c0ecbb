"""PAL (program-aided language models): the model writes `solution()`, the sandbox runs it, and the
returned value is the answer. Errors go back to the model for a bounded number of repairs; with
`samples > 1`, several programs vote (self-consistency)."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import TYPE_CHECKING, Any

from agentlab._arithmetic_shape import EXPRESSION_OVER_NAMES, NAME, NUMBER, OPERATOR, chain_of, runnable
from agentlab.events import ToolCall
from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.run.conversation import with_history
from agentlab.strategies.base import (
    Conclusion,
    DecisionError,
    ModelDecision,
    Observation,
    StrategyBase,
    StrategyContext,
    StrategyFailed,
)

if TYPE_CHECKING:
    from agentlab.sandbox import Sandbox
    from agentlab.tools import Tool
    from agentlab.tools.builtin.python import SandboxRunner

SYSTEM = (
    "Solve the problem by writing a Python program. Define solution() that computes the answer step by "
    "step with named variables and returns it as a number or a short string. Standard library only."
)
EXAMPLE_QUESTION = "Olivia has $23. She bought five bagels for $3 each. How much money does she have left?"
EXAMPLE_PROGRAM = (
    "def solution():\n    money_initial = 23\n    bagels = 5\n    bagel_cost = 3\n"
    "    money_spent = bagels * bagel_cost\n    return money_initial - money_spent\n"
)
PROGRAM_SCHEMA = {
    "type": "object",
    "properties": {"program": {"type": "string", "contentMediaType": "text/x-python"}},  # code: keeps newlines
    "required": ["program"],
}
# A small model's program, as a grammar: `def solution():`, named variables assigned one per line, and a
# return, each value an arithmetic expression over names and numbers. SmolLM2 left to a free code string
# wrote prose, half a function or a program that ran past the token limit; with free lines it closed its
# "JSON" inside the code (`return x}`), returned again and again, cut an expression off at the line's
# length bound (`return 2*2*`), returned tuples (`return a, b, c,`) and wrote comments. Now it can only
# write the shape PAL asks for, and the grammar budget (`agentlab.models.grammar`) raises the token limit to
# what the largest such program needs, so the object always closes. The newlines are real ones (read with
# `strict=False`).


def _program_schema(pattern: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"program": {"type": "string", "pattern": pattern}},
        "required": ["program"],
    }


SMALL_PROGRAM_SCHEMA = _program_schema(
    f"^def solution[(][)]:(\\n    {NAME} = {EXPRESSION_OVER_NAMES}){{0,8}}\\n    return {EXPRESSION_OVER_NAMES}$"
)
# A repair on a small model keeps the failed program's variables, in their order, and lets each line use only
# the names assigned above it, in parenthesised groups that close: SmolLM2's programs that failed used a name
# never assigned (or assigned later), or left a parenthesis open, and its repairs wrote them again.
_ASSIGNED = re.compile(r"^    ([a-z_][a-z0-9_]*) = ", re.MULTILINE)


def repair_schema(program: str) -> dict[str, Any]:
    """The program schema for repairing `program` on a small model: its assignments' names, in order, each
    line's value arithmetic over numbers and the names above it, and a return over all of them."""
    names = _ASSIGNED.findall(program)
    lines = "".join(f"\\n    {name} = {_expression_over(names[:i])}" for i, name in enumerate(names))
    return _program_schema(f"^def solution[(][)]:{lines}\\n    return {_expression_over(names)}$")


def _expression_over(names: list[str]) -> str:
    """Up to four terms, each a number, one of `names` or a parenthesised group of up to four of them."""
    operand = f"({'|'.join([*dict.fromkeys(names), NUMBER])})"
    group = f"[(]{operand}({OPERATOR}{operand}){{1,3}}[)]"
    return chain_of(f"-?({operand}|{group})")


RUNNER = "run_solution"
_RETURN = re.compile(r"^(\s*return )(?!=)(.*)$")  # not `return = 5`, a keyword used as a name


def _runnable_program(program: str) -> str:
    """A shaped program with its keywords-as-names renamed (`runnable`), header and returns left as they are."""
    header, *lines = program.split("\n")
    kept = [(m.group(1) + runnable(m.group(2))) if (m := _RETURN.match(line)) else runnable(line) for line in lines]
    return "\n".join([header, *kept])


class PAL(StrategyBase):
    name = "pal"

    def __init__(
        self,
        samples: int = 1,
        max_repairs: int = 2,
        temperature: float = 0.7,
        sandbox: Sandbox | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.samples = max(1, samples)
        self.max_repairs = max_repairs
        self.temperature = temperature
        self.sandbox = sandbox
        self.timeout = timeout
        self.messages: list[dict[str, Any]] = []
        self.votes: list[str] = []
        self._runner: SandboxRunner | None = None  # made with the run's tools; its sandbox is PAL's to close

    def extra_tools(self) -> list[Tool[..., Any]]:
        """The sandbox runner PAL's decisions call; the loop adds it to this run's tools."""
        from agentlab.tools.builtin.python import CodeError, SandboxRunner
        from agentlab.tools.function_tool import tool

        runner = self._runner = SandboxRunner(self.sandbox, self.timeout)

        @tool(name=RUNNER, timeout=self.timeout + 10)
        async def run_solution(program: str) -> str:
            """Run a PAL program in the sandbox and return the value of solution().

            Args:
                program: Python source that defines solution().
            """
            result = await runner.run(program, call="solution")
            if result.value is None:
                raise CodeError("solution() returned None: end it with `return <the answer>`.")
            if result.value_is_repr:  # its repr is no answer: '<object object at 0x...>', a cut-off string
                raise CodeError(
                    f"solution() returned {str(result.value)[:80]}, which is not a number or a short text: "
                    "return the answer itself."
                )
            return json.dumps(result.value, ensure_ascii=False) if not isinstance(result.value, str) else result.value

        return [run_solution]

    def close(self) -> None:
        """Close the sandbox PAL created for its programs (its warm workers); one given to it stays open."""
        runner = self._runner
        if self.sandbox is None and runner is not None and runner.sandbox is not None:
            runner.sandbox.close()
            runner.sandbox = None  # created afresh if this instance runs again

    def start(self, context: StrategyContext) -> None:
        """Begin a run; a restarted instance starts afresh."""
        self.format = context.decision_format
        self.small_model = context.small_model
        self.votes = []
        self._results: dict[str, str] = {}  # program text -> value, so a repeated program is not re-run
        self._program = ""
        self._repair_schema: dict[str, Any] | None = None  # a small model's repair: its program's names, in scope
        self._repairs = 0
        self._step = 0
        as_json = self.format == "json_schema"
        example = self._as_reply(EXAMPLE_PROGRAM.rstrip("\n")) if as_json else f"```python\n{EXAMPLE_PROGRAM}```"
        system = SYSTEM + (' Reply with JSON {"program": "..."}.' if as_json else " Reply with one code block.")
        if context.instructions:
            system += "\n" + context.instructions
        self.messages = [
            {"role": "system", "content": system},
            {"role": "user", "content": EXAMPLE_QUESTION},
            {"role": "assistant", "content": example},
            {"role": "user", "content": with_history(context.task, context.history)},
        ]

    def next_step(self) -> ModelRequest | Conclusion:
        if len(self.votes) >= self.samples:
            answer, _ = Counter(self.votes).most_common(1)[0]
            if self.samples > 1:
                self.note("self-consistency vote", votes=dict(Counter(self.votes)), answer=answer)
            return Conclusion(answer)
        if self._repairs > self.max_repairs:
            raise StrategyFailed(f"the program still failed after {self.max_repairs} repairs")
        self._step += 1
        schema = None
        if self.format == "json_schema":
            schema = (self._repair_schema or SMALL_PROGRAM_SCHEMA) if self.small_model else PROGRAM_SCHEMA
        return ModelRequest(
            messages=list(self.messages),
            response_schema=schema,
            temperature=self.temperature if self.samples > 1 else None,
        )

    def interpret(self, response: ModelResponse) -> ModelDecision:
        program = self._program_of(response)
        if self.small_model and self.format == "json_schema":
            program = _runnable_program(program)
        self._program = program
        if program in self._results:
            self.votes.append(self._results[program])
            return ModelDecision(thought="(same program as before; reusing its result)")
        return ModelDecision(thought="", tool_calls=[ToolCall(f"pal{self._step}", RUNNER, {"program": program})])

    def _program_of(self, response: ModelResponse) -> str:
        text = (response.content or "").strip()
        if self.format == "json_schema":
            try:
                text = str(json.loads(text, strict=False)["program"])  # a shaped program has real newlines
            except (ValueError, KeyError, TypeError) as error:
                raise DecisionError('Reply with JSON {"program": "def solution(): ..."}.') from error
        fenced = re.search(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
        program = fenced.group(1) if fenced else text
        if "def solution" not in program:
            raise DecisionError("Write a Python function named solution() that returns the answer.")
        return program

    def observe(self, observations: list[Observation]) -> None:
        for observation in observations:
            if observation.output.ok:
                self._results[self._program] = observation.output.content
                self.votes.append(observation.output.content)
                self._repair_schema = None
                continue
            # Repairs continue the conversation; a fresh sample starts from the original prompt.
            self._repairs += 1
            self._repair_schema = repair_schema(self._program) if self.small_model else None
            self.note("program failed", error=observation.output.content[:500])
            self.messages += [
                {"role": "assistant", "content": self._as_reply(self._program)},
                {"role": "user", "content": f"{observation.output.content}\nFix the program."},
            ]

    def _as_reply(self, program: str) -> str:
        if self.format != "json_schema":
            return f"```python\n{program}```"
        if self.small_model:  # as the shaped grammar makes the model write it: real newlines
            return '{"program": "' + program + '"}'
        return json.dumps({"program": program})

    def reject(self, response: ModelResponse, error: DecisionError) -> None:
        self.messages += [
            {"role": "assistant", "content": response.content or ""},
            {"role": "user", "content": f"Error: {error}"},
        ]

    def best_answer(self) -> str | None:
        return Counter(self.votes).most_common(1)[0][0] if self.votes else None
