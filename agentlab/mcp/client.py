"""Use the tools of any MCP server (stdio or streamable HTTP) as agentlab tools.

`mcp_tools` connects, lists the server's tools and yields one `MCPTool` per server tool; leaving the
`async with` closes the session and, for stdio, stops the server process. The connection belongs to
the event loop that opened it: run agents that use these tools with `arun`/`astream` in that loop.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentlab.tools.function_tool import DEFAULT_TIMEOUT, BaseTool
from agentlab.tools.output import render_result
from agentlab.tools.schema import clean_json_schema, describe_parameters

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult
    from mcp.types import Tool as ServerTool

# What OpenAI-compatible endpoints accept as a function name; MCP allows more (dots, slashes).
_INVALID_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")
_MAX_NAME_LENGTH = 64
# A server that pages its tool list forever must not hang the connection.
_MAX_LIST_PAGES = 100


class MCPUnavailable(ImportError):
    """The optional `mcp` package is not installed."""


def require_mcp() -> None:
    """Raise `MCPUnavailable`, saying what to install, unless the `mcp` package is importable."""
    try:
        import mcp  # noqa: F401
    except ImportError as missing:
        raise MCPUnavailable("MCP support needs the 'mcp' package: pip install 'agentlab[mcp]'") from missing


class MCPTool(BaseTool[..., Any]):
    """One tool of an MCP server: the server's JSON Schema is offered to the model as is, arguments are
    checked against it here, and invoking calls the server. Failures become observations, like any tool."""

    def __init__(
        self,
        client: Client,
        server_tool: ServerTool,
        *,
        name: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        requires_approval: bool = False,
        max_output_chars: int | None = None,
    ) -> None:
        self.client = client
        self.server_name = server_tool.name
        self.closed = False
        # The server owns the schema (not a Python signature, as for `Tool`): offered to the model as is.
        super().__init__(
            self._call_server,
            name=name or openai_safe_name(server_tool.name),
            description=server_tool.description or "",
            parameters=_object_schema(server_tool.input_schema),
            timeout=timeout,
            requires_approval=requires_approval,
            max_output_chars=max_output_chars,
        )

    def __repr__(self) -> str:
        return f"MCPTool(name={self.name!r}, server_name={self.server_name!r})"

    def __call__(self, **arguments: Any) -> Any:
        """Call the server directly (a coroutine); `invoke` is the model-facing path."""
        return self._call_server(**arguments)

    async def _call_server(self, **arguments: Any) -> CallToolResult:
        if self.closed:
            raise RuntimeError(f"the MCP connection for tool '{self.name}' is closed")
        return await self.client.call_tool(self.server_name, arguments)

    def _prepare(self, parsed: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] | str:
        """The server owns the schema: check the arguments against it (jsonschema), pass them on as they are."""
        problem = self._schema_problem(parsed)
        return problem if problem is not None else ((), parsed, parsed)

    def _render(self, result: Any) -> tuple[bool, str]:
        text = result_text(result)
        if result.is_error:
            return False, text if text.startswith("Error") else f"Error: {text}"
        return True, text

    def _schema_problem(self, arguments: dict[str, Any]) -> str | None:
        """An explanation for the model when the arguments break the server's schema, else None."""
        import jsonschema

        validator_class = jsonschema.validators.validator_for(self.parameters, default=jsonschema.Draft202012Validator)
        try:
            errors = sorted(validator_class(self.parameters).iter_errors(arguments), key=lambda e: list(e.path))
        except jsonschema.SchemaError:
            return None  # the server's schema itself is broken: let the server judge the call
        if not errors:
            return None
        lines = []
        for error in errors[:5]:
            where = ".".join(str(part) for part in error.path) or "arguments"
            lines.append(f"- '{where}': {error.message[:200]}")
        return (
            f"Error: invalid arguments for tool '{self.name}':\n" + "\n".join(lines) + "\n"
            f"Parameters: {describe_parameters(self.parameters)}."
        )


def openai_safe_name(name: str) -> str:
    """The tool name as OpenAI-compatible endpoints accept it (letters, digits, _ and -; ≤ 64 chars)."""
    return _INVALID_NAME_CHARS.sub("_", name)[:_MAX_NAME_LENGTH] or "tool"


def _object_schema(schema: Mapping[str, Any] | None) -> dict[str, Any]:
    cleaned: dict[str, Any] = clean_json_schema(dict(schema or {}))
    cleaned.pop("$schema", None)  # one more token per step, and no model needs it
    cleaned["type"] = "object"
    cleaned.setdefault("properties", {})
    return cleaned


def result_text(result: CallToolResult) -> str:
    """A tool result as text for the model: text blocks verbatim, other blocks named, structured data as JSON."""
    from mcp.types import AudioContent, EmbeddedResource, ImageContent, ResourceLink, TextContent

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent | AudioContent):
            parts.append(f"[{block.type} {block.mime_type}, {len(block.data) * 3 // 4} bytes]")
        elif isinstance(block, EmbeddedResource):
            resource = block.resource
            parts.append(getattr(resource, "text", None) or f"[binary resource {resource.uri}]")
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource {block.uri}]")
        else:
            parts.append(str(block))
    if not parts and result.structured_content is not None:
        parts.append(render_result(result.structured_content))
    return "\n".join(parts) if parts else "(no output)"


@asynccontextmanager
async def mcp_tools(
    *,
    stdio: Sequence[str] | None = None,
    url: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    headers: Mapping[str, str] | None = None,
    prefix: str = "",
    include: Sequence[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    requires_approval: bool = False,
) -> AsyncIterator[list[MCPTool]]:
    """Connect to an MCP server and yield its tools as agentlab tools.

    Give exactly one of `stdio` (the command that starts the server; `env` and `cwd` apply to it) or `url`
    (a streamable HTTP endpoint such as ``http://127.0.0.1:8000/mcp``; `headers` go with every request).
    `prefix` is put before every tool name (to keep two servers' tools apart); `include` keeps only the
    named server tools; `timeout` bounds each call.
    """
    if (stdio is None) == (url is None):
        raise ValueError("mcp_tools needs exactly one of stdio=[command, ...] or url='http://.../mcp'")
    require_mcp()
    from mcp import Client, StdioServerParameters

    if stdio is not None and (isinstance(stdio, str) or not stdio):
        raise ValueError("stdio must be a non-empty list: the command and its arguments")
    try:
        async with AsyncExitStack() as stack:
            if stdio is not None:
                params = StdioServerParameters(command=stdio[0], args=list(stdio[1:]), env=dict(env or {}), cwd=cwd)
                client = Client(params)
            elif headers:
                client = Client(await _http_transport(stack, str(url), headers))
            else:
                client = Client(str(url))
            await stack.enter_async_context(client)
            tools = await _select_tools(client, prefix, include, timeout, requires_approval)
            try:
                yield tools
            finally:
                for item in tools:
                    item.closed = True
    except BaseExceptionGroup as group:
        # The SDK's task groups wrap whatever is raised inside them, the caller's own errors included;
        # hand back the one real exception so `except ValueError:` around `async with` still works.
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


async def _select_tools(
    client: Client, prefix: str, include: Sequence[str] | None, timeout: float | None, requires_approval: bool
) -> list[MCPTool]:
    server_tools = await _list_all_tools(client)
    wanted = set(include) if include is not None else None
    if wanted is not None and (missing := wanted - {t.name for t in server_tools}):
        raise ValueError(f"the MCP server has no tool named {', '.join(sorted(missing))}")
    return [
        MCPTool(client, t, name=openai_safe_name(prefix + t.name), timeout=timeout, requires_approval=requires_approval)
        for t in server_tools
        if wanted is None or t.name in wanted
    ]


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for inner in group.exceptions:
        found.extend(_leaves(inner) if isinstance(inner, BaseExceptionGroup) else [inner])
    return found


async def _http_transport(stack: AsyncExitStack, url: str, headers: Mapping[str, str]) -> Any:
    """A streamable HTTP transport that sends `headers` (auth, say) with every request."""
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    # The MCP transports' own defaults: a server may hold a response stream open for minutes.
    http = httpx2.AsyncClient(headers=dict(headers), timeout=httpx2.Timeout(30.0, read=300.0))
    await stack.enter_async_context(http)
    return streamable_http_client(url, http_client=http)


async def _list_all_tools(client: Client) -> list[ServerTool]:
    tools: list[ServerTool] = []
    cursor: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools
