"""agentlab: small, fast, safe tool-using LLM agents with pluggable reasoning strategies.

Public names are loaded on first use so `import agentlab` stays fast.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlab.agent import Agent, RunResult
    from agentlab.models import LocalModel, Model, OpenAIModel
    from agentlab.tools import Tool, ToolRegistry, tool

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "agentlab.agent",
    "RunResult": "agentlab.agent",
    "Model": "agentlab.models",
    "OpenAIModel": "agentlab.models",
    "LocalModel": "agentlab.models",
    "tool": "agentlab.tools",
    "Tool": "agentlab.tools",
    "ToolRegistry": "agentlab.tools",
}

__all__ = ["Agent", "LocalModel", "Model", "OpenAIModel", "RunResult", "Tool", "ToolRegistry", "__version__", "tool"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlab' has no attribute {name!r}")
    return getattr(import_module(module), name)
