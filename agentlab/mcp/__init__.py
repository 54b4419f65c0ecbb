"""Model Context Protocol both ways: MCP servers' tools as agentlab tools, agentlab tools as an MCP server.

Needs the optional `mcp` package (`pip install 'agentlab[mcp]'`); it is imported only when used.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlab.mcp.client import MCPTool, MCPUnavailable, mcp_tools
    from agentlab.mcp.server import build_server, serve_http, serve_stdio

__all__ = ["MCPTool", "MCPUnavailable", "build_server", "mcp_tools", "serve_http", "serve_stdio"]

_LAZY = {
    "MCPTool": "agentlab.mcp.client",
    "MCPUnavailable": "agentlab.mcp.client",
    "mcp_tools": "agentlab.mcp.client",
    "build_server": "agentlab.mcp.server",
    "serve_http": "agentlab.mcp.server",
    "serve_stdio": "agentlab.mcp.server",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)
