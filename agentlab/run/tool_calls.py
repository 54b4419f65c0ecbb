"""A step's tool calls: planned (recorded, waiting for approval, or to run), run concurrently within the
run's deadline, and reported as events as each finishes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

from agentlab import events as ev
from agentlab.events import ToolCall
from agentlab.run.context import RunContext
from agentlab.run.conversation import messages_from_events
from agentlab.run.guardrails import screen_tool_output
from agentlab.run.replay import denied
from agentlab.run.state import RunState
from agentlab.strategies.base import Observation
from agentlab.tools import ApprovalCallback, ToolOutput
from agentlab.tools.function_tool import BaseTool

WAIT = object()
"""A tool call's plan: it waits for a person's approval (the run pauses)."""


async def run_tool_calls(
    run: RunState, calls: list[ToolCall], observations: list[Observation], approve: ApprovalCallback | None
) -> AsyncIterator[ev.Event]:
    """Run the step's tool calls concurrently, reporting each as it finishes; the events of sub-agents
    the tools start (`as_tool`) pass through as they happen, and their usage counts as this run's. A call
    that waits for a person's approval pauses the run; else `observations` gets every call's output."""
    run.count_tool_calls(calls)
    finished: asyncio.Queue[ev.Event | tuple[int, ToolOutput | BaseException]] = asyncio.Queue()
    context = tool_context(run, finished.put_nowait)
    plans = {i: plan_call(run, i, call, approve) for i, call in enumerate(calls)}
    pending = [call for i, call in enumerate(calls) if plans[i] is WAIT]
    ready = {i: plan for i, plan in plans.items() if plan is not WAIT}

    async def invoke(index: int, call: ToolCall) -> None:
        plan = ready[index]
        try:
            if isinstance(plan, ToolOutput):  # recorded, refused or interrupted: not run (again)
                finished.put_nowait((index, plan))
                return
            approver = cast("ApprovalCallback | None", plan)  # what is left after outputs and WAIT
            invocation = run.tools.invoke(call.name, call.arguments, approve=approver, context=context)
            finished.put_nowait((index, await run.within(invocation)))
        except BaseException as error:  # re-raised by the consumer: a budget stop ends the run
            finished.put_nowait((index, error))

    for index in ready:
        yield ev.ToolStarted(run.step, calls[index])
    tasks = [asyncio.create_task(invoke(i, calls[i])) for i in ready]
    # By position, not by call id: a server may give two calls of one step the same id.
    outputs: dict[int, ToolOutput] = {}
    try:
        while len(outputs) < len(ready):
            item = await finished.get()
            if isinstance(item, ev.Event):
                if isinstance(item, ev.RunFinished) and item.run_id != run.id:
                    run.sub_steps += item.steps  # every sub-run's, however deep: each step is a model call
                if isinstance(item, ev.RunFinished) and item.parent_run_id == run.id:
                    run.usage += item.usage
                    if run.cost is not None or item.cost is not None:
                        run.cost = (run.cost or 0.0) + (item.cost or 0.0)
                yield item
                continue
            index, output = item
            if isinstance(output, BaseException):
                raise output
            outputs[index] = output
            yield ev.ToolResult(run.step, calls[index], output.ok, output.content, output.duration)
            screen_tool_output(calls[index], output, run.step, run.emit)  # Blocked when its guard tripped
    finally:
        for task in tasks:
            task.cancel()
    if pending:
        run.pause(pending)
        return
    observations += [Observation(c, outputs[i]) for i, c in enumerate(calls)]


def plan_call(
    run: RunState, position: int, call: ToolCall, approve: ApprovalCallback | None
) -> ToolOutput | ApprovalCallback | object | None:
    """How a call of this step goes: its output when it is not to run (recorded by the run being resumed,
    interrupted by a crash, or denied by a person), `WAIT` when it waits for a person's approval (no
    `approve` callback and no decision given to `resume`), else the approver to run it with."""
    tool = run.tools.get(call.name) if call.name in run.tools else None
    if run.replay is not None:
        recorded = run.replay.outcome(run.step, position, call, bool(tool and getattr(tool, "idempotent", False)))
        if recorded is not None:
            return recorded
    if not isinstance(tool, BaseTool) or not tool.requires_approval or approve is not None:
        return approve
    decision = run.replay.approvals.get(call.id) if run.replay is not None else None
    if decision is None:
        return WAIT
    return _approved if decision else denied(call)


def _approved(name: str, arguments: dict[str, Any]) -> bool:
    """The approver of a call a person approved through `Agent.resume`."""
    return True


def tool_context(run: RunState, emit: Callable[[ev.Event], None]) -> RunContext[Any]:
    """The run's context as the step's tools see it: where the run stands and what it has left."""
    context = run.context
    context.step, context.usage, context.emit, context.deadline = run.step, run.usage, emit, run.deadline
    context.steps_left = None if run.max_steps is None else max(0, run.max_steps - run.step - run.sub_steps)
    context.count_tool_call = run.count_nested_tool_call
    context.tokens_left = None if run.max_tokens is None else max(0, run.max_tokens - run.usage.total_tokens)
    if any(tool.context_parameter for tool in run.tools):
        context.messages = messages_from_events(run.events, run.id)
    return context
