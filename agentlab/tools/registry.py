"""The set of tools offered to a model in one run, looked up by name."""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from agentlab.tools.function_tool import ApprovalCallback, BaseTool, tool
from agentlab.tools.output import ToolOutput


class ToolRegistry:
    """Tools by unique name. Plain functions are wrapped with `@tool` on the way in.

    `max_output_chars` is the output cap for tools that do not set their own.
    """

    def __init__(
        self,
        tools: Iterable[BaseTool[..., Any] | Callable[..., Any]] = (),
        *,
        max_output_chars: int | None = None,
    ) -> None:
        self.max_output_chars = max_output_chars
        self._tools: dict[str, BaseTool[..., Any]] = {}
        for item in tools:
            self.add(item)

    def add(self, item: BaseTool[..., Any] | Callable[..., Any]) -> BaseTool[..., Any]:
        """Add a tool (a plain function is wrapped with `@tool`); raise ValueError on a duplicate name."""
        wrapped = item if isinstance(item, BaseTool) else tool(item)
        if wrapped.name in self._tools:
            raise ValueError(f"duplicate tool name {wrapped.name!r}: each tool in a registry needs a unique name")
        self._tools[wrapped.name] = wrapped
        return wrapped

    def names(self) -> list[str]:
        """The tools' names, in the order they were added."""
        return list(self._tools)

    def get(self, name: str) -> BaseTool[..., Any]:
        """The tool called `name`; KeyError listing the available names otherwise."""
        try:
            return self._tools[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; available: {', '.join(self._tools) or 'none'}") from None

    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI `tools=[...]` list."""
        return [item.schema() for item in self._tools.values()]

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[BaseTool[..., Any]]:
        return iter(self._tools.values())

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __repr__(self) -> str:
        return f"ToolRegistry({self.names()!r})"

    async def invoke(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None,
        approve: ApprovalCallback | None = None,
        *,
        context: Any = None,
    ) -> ToolOutput:
        """Invoke a tool by name; an unknown name is an observation for the model, not an exception.

        `context` is the run's `RunContext`, handed to tools whose first parameter asks for it.
        """
        started = time.perf_counter()
        selected = self._tools.get(name)
        if selected is None:
            available = ", ".join(self._tools) or "none"
            close = difflib.get_close_matches(name, list(self._tools), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            return ToolOutput(
                ok=False,
                content=f"Error: unknown tool '{name}'.{hint} Available tools: {available}.",
                error="unknown_tool",
                duration=time.perf_counter() - started,
            )
        return await selected.invoke(arguments, approve, max_output_chars=self.max_output_chars, context=context)
