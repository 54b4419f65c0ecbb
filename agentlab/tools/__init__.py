"""Tools for agents: the `@tool` decorator, the registry that offers tools to a model, built-ins.

Importing this package stays light: search back-ends (bm25s, ddgs) load only when a search runs.
"""

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
from agentlab.tools.function_tool import DEFAULT_TIMEOUT, ApprovalCallback, Tool, tool
from agentlab.tools.output import DEFAULT_MAX_OUTPUT_CHARS, ToolErrorKind, ToolOutput
from agentlab.tools.registry import ToolRegistry

__all__ = [
    "DEFAULT_MAX_OUTPUT_CHARS",
    "DEFAULT_TIMEOUT",
    "ApprovalCallback",
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
    "search_tools",
    "tool",
    "web_search",
]
