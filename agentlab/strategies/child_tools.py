"""Tools of the children a composite strategy makes one after another (vote's samples, BabyAGI's executors).

A child's tools may be bound to it: CodeAct's runner is its own sandbox session. The run's tools are fixed
when it starts, so the composite offers the first child's tools, and each call is run by the tool of that
name of the child at work when it comes. Without this, a later sample ran its code in the first sample's
session, sharing its variables, and failed once that session was closed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from agentlab.tools.function_tool import BaseTool

if TYPE_CHECKING:
    from agentlab.strategies.base import StrategyBase
    from agentlab.tools import ApprovalCallback, ToolOutput


def children_tools(first: StrategyBase, child_at_work: Callable[[], StrategyBase | None]) -> list[BaseTool[..., Any]]:
    """`first`'s tools, each call forwarded to the tool of that name of `child_at_work()` (`first` when None)."""
    own: dict[int, dict[str, BaseTool[..., Any]]] = {id(first): {tool.name: tool for tool in first.extra_tools()}}
    children = [first]  # kept while the run lasts, so that no id in `own` is reused by a later child

    def tool_at_work(name: str) -> BaseTool[..., Any]:
        child = child_at_work() or first
        if id(child) not in own:
            own[id(child)] = {tool.name: tool for tool in child.extra_tools()}
            children.append(child)
        return own[id(child)][name]

    return [_ChildTool(tool, tool_at_work) for tool in own[id(first)].values()]


class _ChildTool(BaseTool[..., Any]):
    """Offered as `template`; run by `tool_at_work(name)`, the tool of that name of the child at work."""

    def __init__(self, template: BaseTool[..., Any], tool_at_work: Callable[[str], BaseTool[..., Any]]) -> None:
        super().__init__(
            template.func,
            name=template.name,
            description=template.description,
            parameters=template.parameters,
            timeout=template.timeout,
            requires_approval=template.requires_approval,
            max_output_chars=template.max_output_chars,
            guard=template.guard,
            idempotent=template.idempotent,
            repeatable=template.repeatable,
        )
        self.context_parameter = template.context_parameter
        self._tool_at_work = tool_at_work

    async def invoke(
        self,
        arguments: Mapping[str, Any] | str | None,
        approve: ApprovalCallback | None = None,
        *,
        max_output_chars: int | None = None,
        context: Any = None,
    ) -> ToolOutput:
        tool = self._tool_at_work(self.name)
        return await tool.invoke(arguments, approve, max_output_chars=max_output_chars, context=context)
