"""Guardrails of a run: checks on the task (input), the final answer (output) and each tool call (a tool's
own guard), each of which may pass, rewrite or trip.

The contract of a guard is `agentlab.tools.guard`'s: `guard(value)` returns None to pass, a replacement to
rewrite, or raises `GuardrailTripped("why")`; a guard that fails otherwise trips too (fail closed). A trip
ends the run with status `blocked`, a `Guardrail` event naming the guard and the reason, and that reason in
`RunFinished.error`; a blocked run never reports the answer a guard stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agentlab.events import Event, Guardrail, ToolCall
from agentlab.tools.guard import Guard, Verdict, check_guard, judge
from agentlab.tools.output import ToolOutput


class Blocked(Exception):
    """Ends a run as `blocked` (control flow, like a budget stop); the message says which guard and why."""


def check_guards(guards: Guard | Sequence[Guard] | None, what: str) -> list[Guard]:
    """The guards as a list: one callable, a sequence of them, or None; TypeError for anything else."""
    if guards is None:
        return []
    listed = [guards] if callable(guards) else list(guards) if isinstance(guards, Iterable) else [guards]
    for guard in listed:
        check_guard(guard, f"each of {what}")
    return listed


class Guardrails:
    """An agent's input and output guardrails, applied in order (each sees the previous one's rewrite)."""

    def __init__(self, input_guards: Sequence[Guard], output_guards: Sequence[Guard]) -> None:
        self.input = list(input_guards)
        self.output = list(output_guards)

    async def screen_task(self, task: str, emit: Callable[[Event], None]) -> str:
        """The task the run works on, after the input guardrails; `Blocked` when one trips."""
        for guard in self.input:
            verdict = await judge(guard, task)
            if verdict.action == "rewrote" and not isinstance(verdict.value, str):
                verdict = _unusable(verdict, task, "a str")
            _report(verdict, 0, "input", emit, jsonable=verdict.value)
            task = verdict.value
        return task

    async def screen_output(
        self,
        value: Any,
        step: int,
        emit: Callable[[Event], None],
        refit: Callable[[Any], Any],
        dump: Callable[[Any], Any],
    ) -> Any:
        """The output the run ends with, after the output guardrails: `value` is the validated output (the
        typed value, or the answer text); a rewrite goes through `refit` (validation into the output type)
        and is reported in its JSON form (`dump`). `Blocked` when a guard trips or its rewrite does not fit."""
        for guard in self.output:
            verdict = await judge(guard, value)
            if verdict.action == "rewrote":
                try:
                    verdict = Verdict(verdict.guard, "rewrote", refit(verdict.value))
                except Exception as misfit:
                    verdict = _unusable(verdict, value, f"a value of the output type ({misfit})")
            jsonable = dump(verdict.value) if verdict.action == "rewrote" else None
            _report(verdict, step, "output", emit, jsonable=jsonable)
            value = verdict.value
        return value


def screen_tool_output(call: ToolCall, output: ToolOutput, step: int, emit: Callable[[Event], None]) -> None:
    """Report what a tool's guard did to `call` (its verdict rides on the tool's output); `Blocked` when it
    tripped."""
    if output.verdict is not None:
        _report(output.verdict, step, "tool", emit, jsonable=output.verdict.value, tool=call.name)


def _unusable(verdict: Verdict, original: Any, wanted: str) -> Verdict:
    """A rewrite the run cannot use trips the guard: the run must not go on with something unchecked."""
    kind = type(verdict.value).__name__
    return Verdict(verdict.guard, "tripped", original, f"the guard's rewrite is unusable: it is a {kind}, not {wanted}")


def _report(
    verdict: Verdict,
    step: int,
    stage: Any,
    emit: Callable[[Event], None],
    *,
    jsonable: Any = None,
    tool: str | None = None,
) -> None:
    """Emit the `Guardrail` event of a rewrite or a trip; raise `Blocked` for a trip."""
    if verdict.action == "passed":
        return
    if verdict.action == "rewrote":
        emit(Guardrail(step, stage, verdict.guard, "rewrote", value=jsonable, tool=tool))
        return
    emit(Guardrail(step, stage, verdict.guard, "tripped", verdict.reason, tool=tool))
    where = f"the guard of tool '{tool}'" if tool else f"{stage} guardrail"
    raise Blocked(f"{where} '{verdict.guard}' tripped: {verdict.reason}")
