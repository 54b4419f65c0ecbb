"""Serve agentlab tools to any MCP client, over stdio or streamable HTTP.

Calls go through `ToolRegistry.invoke`, so MCP clients get the same argument validation, timeouts and
output caps as agents do, and a failing tool answers with `isError` instead of breaking the session.
Tools that require approval are refused: an MCP server has no one to ask.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from agentlab.mcp.client import require_mcp
from agentlab.tools import ToolRegistry

if TYPE_CHECKING:
    from mcp.server import Server

DEFAULT_SERVER_NAME = "agentlab"


def build_server(tools: Iterable[Any] | ToolRegistry, name: str = DEFAULT_SERVER_NAME) -> Server[Any]:
    """A low-level MCP `Server` that lists and calls `tools` (agentlab tools or plain functions)."""
    require_mcp()
    from mcp import types
    from mcp.server import Server

    from agentlab import __version__

    registry = tools if isinstance(tools, ToolRegistry) else ToolRegistry(tools)
    listing = [types.Tool(name=t.name, description=t.description or None, input_schema=t.parameters) for t in registry]
    schemas = {t.name: t.parameters for t in registry}

    async def list_tools(_ctx: Any, _params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=listing)

    async def call_tool(_ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        output = await registry.invoke(params.name, params.arguments or {})
        return types.CallToolResult(content=[types.TextContent(text=output.content)], is_error=not output.ok)

    return Server(
        name,
        version=__version__,
        get_tool_input_schema=schemas.get,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


async def serve_stdio(tools: Iterable[Any] | ToolRegistry, name: str = DEFAULT_SERVER_NAME) -> None:
    """Serve over this process's stdin/stdout until the client closes stdin."""
    server = build_server(tools, name)
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


async def serve_http(
    tools: Iterable[Any] | ToolRegistry,
    port: int = 8000,
    *,
    host: str = "127.0.0.1",
    name: str = DEFAULT_SERVER_NAME,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve streamable HTTP at ``http://HOST:PORT/mcp`` until cancelled; port 0 picks a free port.

    `on_ready` gets the endpoint URL once the socket listens (with the real port).
    """
    server = build_server(tools, name)
    import uvicorn

    app = server.streamable_http_app(host=host)
    # Bind here rather than in uvicorn so port 0 works and the real port is known before serving.
    listener = socket.create_server((host, port))
    url = f"http://{host}:{listener.getsockname()[1]}/mcp"
    http = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(http.serve(sockets=[listener]))
    try:
        while not http.started and not serving.done():
            await asyncio.sleep(0.02)
        if http.started and on_ready is not None:
            on_ready(url)
        await serving
    finally:
        if not serving.done():
            serving.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await serving
        listener.close()
