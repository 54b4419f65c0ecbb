"""Model Context Protocol both ways: MCP servers' tools as agentlab tools, agentlab tools as an MCP server.

Needs the optional `mcp` package (`pip install 'agentlab[mcp]'`); it is imported only when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports

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


__getattr__ = lazy_exports(__name__, _LAZY)
