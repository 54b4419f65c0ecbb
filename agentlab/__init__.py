"""agentlab: small, fast, safe tool-using LLM agents with pluggable reasoning strategies.

Public names are loaded on first use so `import agentlab` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports

if TYPE_CHECKING:
    from agentlab.agent import Agent, RunResult
    from agentlab.models import FallbackModel, LocalModel, Model, OpenAIModel
    from agentlab.run import ModelRetry, RunContext
    from agentlab.run.limits import Price
    from agentlab.store.sessions import InMemorySession, Session, SQLiteSession
    from agentlab.tools import Tool, ToolRegistry, tool
    from agentlab.tools.guard import GuardrailTripped

__version__ = "0.1.0"

_EXPORTS = {
    "Agent": "agentlab.agent",
    "RunResult": "agentlab.agent",
    "Model": "agentlab.models",
    "OpenAIModel": "agentlab.models",
    "FallbackModel": "agentlab.models",
    "LocalModel": "agentlab.models",
    "tool": "agentlab.tools",
    "Tool": "agentlab.tools",
    "ToolRegistry": "agentlab.tools",
    "RunContext": "agentlab.run.context",
    "ModelRetry": "agentlab.run.output",
    "GuardrailTripped": "agentlab.tools.guard",
    "Price": "agentlab.run.limits",
    "Session": "agentlab.store.sessions",
    "SQLiteSession": "agentlab.store.sessions",
    "InMemorySession": "agentlab.store.sessions",
}

__all__ = [
    "Agent",
    "FallbackModel",
    "GuardrailTripped",
    "InMemorySession",
    "LocalModel",
    "Model",
    "ModelRetry",
    "OpenAIModel",
    "Price",
    "RunContext",
    "RunResult",
    "SQLiteSession",
    "Session",
    "Tool",
    "ToolRegistry",
    "__version__",
    "tool",
]


__getattr__ = lazy_exports(__name__, _EXPORTS)
