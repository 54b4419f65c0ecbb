"""Tools for agents: the `@tool` decorator, the registry that offers tools to a model, built-ins.

Importing this package stays light: the built-in tools load on first use (`from agentlab import tool` does
not pay for the calculator's parser or the corpus reader), and search back-ends (bm25s, ddgs) only when a
search runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports
from agentlab.tools.function_tool import DEFAULT_TIMEOUT, ApprovalCallback, Tool, tool
from agentlab.tools.output import DEFAULT_MAX_OUTPUT_CHARS, ToolErrorKind, ToolOutput
from agentlab.tools.registry import ToolRegistry
from agentlab.tools.schema import GroundedMark, grounded

if TYPE_CHECKING:
    from agentlab.tools.builtin import (
        LocalCorpus,
        Passage,
        SearchUnavailable,
        builtin_tool_map,
        builtin_tools,
        calculator,
        default_corpus,
        search_tools,
        web_search,
    )

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT",
    "ApprovalCallback",
    "GroundedMark",
    "LocalCorpus",
    "Passage",
    "SearchUnavailable",
    "Tool",
    "ToolErrorKind",
    "ToolOutput",
    "ToolRegistry",
    "builtin_tool_map",
    "builtin_tools",
    "calculator",
    "default_corpus",
    "grounded",
    "search_tools",
    "tool",
    "web_search",
]

_BUILTINS = (
    "LocalCorpus",
    "Passage",
    "SearchUnavailable",
    "builtin_tool_map",
    "builtin_tools",
    "calculator",
    "default_corpus",
    "search_tools",
    "web_search",
)
__getattr__ = lazy_exports(__name__, dict.fromkeys(_BUILTINS, "agentlab.tools.builtin"))
