"""`agentlab mcp-serve TOOLS`: offer agentlab tools to MCP clients (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "mcp-serve",
        help="serve tools over the Model Context Protocol",
        description="Serve agentlab tools to MCP clients: over stdio by default, or streamable HTTP on 127.0.0.1.",
    )
    parser.add_argument("tools", help="built-in names or MODULE_OR_FILE:NAME, comma-separated (as for `run --tools`)")
    parser.add_argument(
        "--http",
        type=int,
        metavar="PORT",
        help="serve streamable HTTP at http://127.0.0.1:PORT/mcp (0 picks a free port)",
    )
    parser.add_argument("--name", default="agentlab", help="the server name MCP clients see")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from agentlab.commands.sources import SourceError, load_tools
    from agentlab.mcp.client import MCPUnavailable, require_mcp
    from agentlab.mcp.server import serve_http, serve_stdio

    if args.http is not None and not 0 <= args.http <= 65535:
        print(f"agentlab mcp-serve: --http takes a port from 0 to 65535, got {args.http}", file=sys.stderr)
        return 2
    try:
        require_mcp()
    except MCPUnavailable as missing:
        print(f"agentlab: {missing}", file=sys.stderr)
        return 2
    try:
        tools = load_tools(args.tools)
    except SourceError as error:
        print(f"agentlab: {error}", file=sys.stderr)
        return 2
    if not tools:
        print("agentlab: no tools to serve", file=sys.stderr)
        return 2
    try:
        if args.http is None:
            asyncio.run(serve_stdio(tools, args.name))
        else:
            # stdout may be a pipe someone reads the URL from: say where we listen on stderr, flushed.
            def ready(url: str) -> None:
                print(f"agentlab mcp-serve: {len(tools)} tools at {url}", file=sys.stderr, flush=True)

            asyncio.run(serve_http(tools, args.http, name=args.name, on_ready=ready))
    except KeyboardInterrupt:
        pass
    except OSError as error:  # e.g. the port is taken
        print(f"agentlab: {error}", file=sys.stderr)
        return 1
    return 0
