"""Built-in tools: calculator, web search, and search over a local corpus."""

from __future__ import annotations

from typing import Any

from agentlab.tools.builtin.arithmetic import calculator
from agentlab.tools.builtin.corpus import LocalCorpus
from agentlab.tools.builtin.corpus_files import Passage
from agentlab.tools.builtin.local_search import default_corpus, search_tools
from agentlab.tools.builtin.python import python_tool
from agentlab.tools.builtin.web import SearchUnavailable, web_search
from agentlab.tools.function_tool import Tool


def builtin_tools(corpus: LocalCorpus | None = None) -> list[Tool[..., Any]]:
    """The default tools (calculator, web_search), plus local_search/lookup when a corpus is given."""
    tools: list[Tool[..., Any]] = [calculator, web_search]
    if corpus is not None:
        tools.extend(search_tools(corpus))
    return tools


def builtin_tool_map(corpus: LocalCorpus | None = None) -> dict[str, Tool[..., Any]]:
    """Name -> tool for every built-in (python included), as `agentlab tools` lists them and `--tools` picks them.

    Includes local_search/lookup over `corpus`, by default this project's docs (`default_corpus()`,
    which only reads a few files; the search index is built on first use).
    """
    tools = builtin_tools(corpus if corpus is not None else default_corpus())
    return {item.name: item for item in [*tools, python_tool()]}


__all__ = [
    "LocalCorpus",
    "Passage",
    "SearchUnavailable",
    "builtin_tool_map",
    "builtin_tools",
    "calculator",
    "default_corpus",
    "python_tool",
    "search_tools",
    "web_search",
]
