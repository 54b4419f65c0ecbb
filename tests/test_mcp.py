"""MCP both ways, with real server processes: the `mcp` package's MCPServer over stdio and streamable
HTTP consumed as agentlab tools, and `agentlab mcp-serve` consumed by the official `mcp` client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from toolbox import model_for

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from agentlab import Agent
from agentlab.mcp import MCPTool, mcp_tools
from agentlab.testing import ScriptedServer

PYTHON = sys.executable

# An MCP server written with the official SDK; `--http` serves streamable HTTP on a free port and prints it.
SERVER_SOURCE = textwrap.dedent(
    '''
    import asyncio, os, socket, sys

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError

    server = MCPServer("demo", log_level="WARNING")


    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b


    @server.tool(name="text.shout")
    def shout(text: str) -> str:
        """Upper-case a text."""
        return text.upper()


    @server.tool()
    def whoami() -> int:
        """This server's process id."""
        return os.getpid()


    @server.tool()
    def refuse(reason: str) -> str:
        """Always fails."""
        raise ToolError(f"refused: {reason}")


    @server.tool()
    async def nap(seconds: float) -> str:
        """Sleep."""
        await asyncio.sleep(seconds)
        return "rested"


    @server.tool()
    def die() -> str:
        """Kill this server."""
        os._exit(3)


    async def serve_http() -> None:
        import uvicorn

        listener = socket.create_server(("127.0.0.1", 0))
        print(listener.getsockname()[1], flush=True)
        config = uvicorn.Config(server.streamable_http_app(), log_level="warning")
        await uvicorn.Server(config).serve(sockets=[listener])


    if __name__ == "__main__":
        if "--http" in sys.argv:
            asyncio.run(serve_http())
        else:
            server.run()
    '''
)

# Tools that `agentlab mcp-serve` loads from a file.
AGENTLAB_TOOLS_SOURCE = textwrap.dedent(
    '''
    from agentlab import tool


    @tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers.

        Args:
            a: The first factor.
            b: The second factor.
        """
        return a * b


    @tool
    def explode(reason: str) -> str:
        """Always fails.

        Args:
            reason: Why.
        """
        raise RuntimeError(f"boom: {reason}")


    @tool(requires_approval=True)
    def delete_everything() -> str:
        """Needs a human's approval."""
        return "deleted"


    TOOLS = [multiply, explode, delete_everything]
    '''
)


@pytest.fixture
def server_script(tmp_path: Path) -> Path:
    path = tmp_path / "demo_server.py"
    path.write_text(SERVER_SOURCE)
    return path


@pytest.fixture
def http_server(server_script: Path) -> Iterator[str]:
    process = subprocess.Popen([PYTHON, str(server_script), "--http"], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        process.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def by_name(tools: list[MCPTool]) -> dict[str, MCPTool]:
    return {t.name: t for t in tools}


async def test_stdio_server_tools_become_agentlab_tools_and_the_process_is_gone_after_exit(server_script: Path):
    async with mcp_tools(stdio=[PYTHON, str(server_script)]) as tools:
        named = by_name(tools)
        assert set(named) == {"add", "text_shout", "whoami", "refuse", "nap", "die"}
        add = named["add"]
        assert add.description == "Add two integers."
        assert add.parameters["properties"] == {"a": {"type": "integer"}, "b": {"type": "integer"}}
        assert sorted(add.parameters["required"]) == ["a", "b"]
        assert add.schema()["function"]["name"] == "add"
        # The model sees a name OpenAI accepts; the server is still called by its own name.
        assert named["text_shout"].server_name == "text.shout"
        assert (await named["text_shout"].invoke({"text": "hi"})).content == "HI"

        result = await add.invoke('{"a": 2, "b": 40}')
        assert result.ok and result.content == "42"
        pid = int((await named["whoami"].invoke({})).content)
        assert pid != os.getpid() and alive(pid)
    assert not alive(pid)
    closed = await add.invoke({"a": 1, "b": 1})
    assert not closed.ok and "closed" in closed.content


async def test_failures_are_observations(server_script: Path):
    async with mcp_tools(stdio=[PYTHON, str(server_script)], timeout=0.5) as tools:
        named = by_name(tools)
        bad = await named["add"].invoke({"a": "two"})
        assert not bad.ok and bad.error == "invalid_arguments"
        assert "'b'" in bad.content and "'a'" in bad.content and "integer" in bad.content
        refused = await named["refuse"].invoke({"reason": "no"})
        assert not refused.ok and refused.error == "exception" and "refused: no" in refused.content
        slow = await named["nap"].invoke({"seconds": 5})
        assert not slow.ok and slow.error == "timeout"
        # The session survives a timed-out call.
        assert (await named["add"].invoke({"a": 1, "b": 2})).content == "3"
        pid = int((await named["whoami"].invoke({})).content)
        dead = await named["die"].invoke({})
        assert not dead.ok
        after = await named["add"].invoke({"a": 1, "b": 2})
        assert not after.ok and after.error in ("exception", "timeout")
    assert not alive(pid)


async def test_concurrent_calls_share_one_session(server_script: Path):
    async with mcp_tools(stdio=[PYTHON, str(server_script)], include=["add"], prefix="calc_") as tools:
        assert [t.name for t in tools] == ["calc_add"]
        outputs = await asyncio.gather(*(tools[0].invoke({"a": i, "b": 1000}) for i in range(20)))
    assert [o.content for o in outputs] == [str(i + 1000) for i in range(20)]


async def test_streamable_http_server(http_server: str):
    async with mcp_tools(url=http_server, headers={"X-Test": "1"}) as tools:
        named = by_name(tools)
        assert (await named["add"].invoke({"a": 20, "b": 22})).content == "42"
        assert not (await named["refuse"].invoke({"reason": "x"})).ok
    async with mcp_tools(url=http_server) as tools:
        assert (await by_name(tools)["add"].invoke({"a": 1, "b": 1})).content == "2"


async def test_bad_arguments_fail_fast(server_script: Path):
    with pytest.raises(ValueError, match="exactly one"):
        async with mcp_tools():
            pass
    with pytest.raises(ValueError, match="no tool named"):
        async with mcp_tools(stdio=[PYTHON, str(server_script)], include=["nope"]):
            pass


async def test_agent_calls_an_mcp_tool_end_to_end(server_script: Path):
    script = [
        {"tool_calls": [{"name": "text_shout", "arguments": {"text": "mcp works"}}]},
        {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "MCP WORKS"}}]},
    ]
    with ScriptedServer(script) as srv:
        model = model_for(srv)
        async with mcp_tools(stdio=[PYTHON, str(server_script)]) as tools:
            result = await Agent(model=model, tools=tools).arun("Shout 'mcp works'.")
        second = srv.requests[1]
    assert result.status == "done" and result.answer == "MCP WORKS"
    tool_results = [e for e in result.events if e.kind == "tool_result"]
    assert len(tool_results) == 1 and tool_results[0].ok and tool_results[0].output == "MCP WORKS"
    offered = {t["function"]["name"]: t["function"] for t in srv.requests[0]["tools"]}
    assert offered["text_shout"]["parameters"]["properties"] == {"text": {"type": "string"}}
    assert any(m["role"] == "tool" and m["content"] == "MCP WORKS" for m in second["messages"])


# --- agentlab tools served over MCP, consumed by the official client -----------------------------------------


@pytest.fixture
def tools_file(tmp_path: Path) -> Path:
    path = tmp_path / "served_tools.py"
    path.write_text(AGENTLAB_TOOLS_SOURCE)
    return path


async def check_served_tools(client) -> None:
    listing = {t.name: t for t in (await client.list_tools()).tools}
    assert set(listing) == {"multiply", "explode", "delete_everything"}
    assert listing["multiply"].description == "Multiply two integers."
    first = listing["multiply"].input_schema["properties"]["a"]
    assert first == {"type": "integer", "description": "The first factor."}
    product = await client.call_tool("multiply", {"a": 6, "b": 7})
    assert not product.is_error and product.content[0].text == "42"
    failed = await client.call_tool("explode", {"reason": "test"})
    assert failed.is_error and "boom: test" in failed.content[0].text
    invalid = await client.call_tool("multiply", {"a": 6})
    assert invalid.is_error and "missing required argument" in invalid.content[0].text
    denied = await client.call_tool("delete_everything", {})
    assert denied.is_error and "Denied" in denied.content[0].text


async def test_mcp_serve_over_stdio(tools_file: Path):
    from mcp import Client, StdioServerParameters

    command = StdioServerParameters(command=PYTHON, args=["-m", "agentlab.cli", "mcp-serve", f"{tools_file}:TOOLS"])
    async with Client(command) as client:
        await check_served_tools(client)


async def test_mcp_serve_over_http_round_trips_through_mcp_tools(tools_file: Path):
    from mcp import Client

    process = await asyncio.create_subprocess_exec(
        PYTHON,
        "-m",
        "agentlab.cli",
        "mcp-serve",
        f"{tools_file}:TOOLS",
        "--http",
        "0",
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert "3 tools at http://127.0.0.1:" in line
        url = line.split(" at ")[1].strip()
        async with Client(url) as client:
            await check_served_tools(client)
        async with mcp_tools(url=url) as tools:
            assert (await by_name(tools)["multiply"].invoke({"a": 3, "b": 4})).content == "12"
    finally:
        process.terminate()
        await process.wait()


async def test_the_callers_exception_comes_out_unwrapped(server_script: Path):
    with pytest.raises(KeyError, match="mine"):
        async with mcp_tools(stdio=[PYTHON, str(server_script)]) as tools:
            pid = int((await by_name(tools)["whoami"].invoke({})).content)
            raise KeyError("mine")
    assert not alive(pid)
