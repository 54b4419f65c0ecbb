"""The @tool decorator, Tool.invoke and ToolRegistry."""

from __future__ import annotations

import asyncio
import contextvars
import json
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from pydantic import BaseModel
from toolbox import add, loaded_by  # the decorator's sample: its docstring is the description and schema asserted below

from agentlab.tools import Tool, ToolOutput, ToolRegistry, tool
from agentlab.tools.running import ToolThreads, tool_threads


@tool(name="fetch_page", timeout=5.0, requires_approval=True, max_output_chars=100)
async def fetch(url: str, retries: int = 2) -> str:
    """Fetch a web page.

    Longer explanation that is still part of the description.

    Args:
        url: The address to fetch.
        retries: How often to retry
            when the server fails.

    Returns:
        The page text.
    """
    return f"page at {url} ({retries} retries)"


# --- schema ----------------------------------------------------------------------------------------


def test_bare_decorator_builds_name_description_and_schema() -> None:
    assert isinstance(add, Tool)
    assert add.name == "add"
    assert add.description == "Add two integers."
    assert add.parameters == {
        "type": "object",
        "properties": {
            "a": {"type": "integer", "description": "The first number."},
            "b": {"type": "integer", "description": "The second number."},
        },
        "required": ["a", "b"],
        "additionalProperties": False,
    }
    assert add.schema() == {
        "type": "function",
        "function": {"name": "add", "description": "Add two integers.", "parameters": add.parameters},
    }
    assert issubclass(add.args_model, BaseModel)


def test_decorator_options_defaults_and_multiline_arg_descriptions() -> None:
    assert fetch.name == "fetch_page"
    assert fetch.timeout == 5.0 and fetch.requires_approval and fetch.max_output_chars == 100
    assert fetch.description == ("Fetch a web page.\n\nLonger explanation that is still part of the description.")
    props = fetch.parameters["properties"]
    assert fetch.parameters["required"] == ["url"]  # a default makes the parameter optional
    assert props["retries"] == {
        "type": "integer",
        "default": 2,
        "description": "How often to retry when the server fails.",
    }
    assert "title" not in json.dumps(fetch.parameters)


def test_explicit_description_and_title_named_parameter_survive_cleanup() -> None:
    @tool(description="Find a page.")
    def find(title: str, tags: list[str] | None = None) -> str:
        return title

    assert find.description == "Find a page."
    props = find.parameters["properties"]
    assert set(props) == {"title", "tags"}  # a parameter called "title" is not schema noise
    assert props["title"] == {"type": "string"}
    assert find.parameters["required"] == ["title"]


def test_nested_pydantic_argument_arrives_as_model() -> None:
    class Point(BaseModel):
        x: float
        y: float

    @tool
    def norm(point: Point) -> float:
        """Length of a vector."""
        assert isinstance(point, Point)
        return (point.x**2 + point.y**2) ** 0.5

    out = asyncio.run(norm.invoke({"point": {"x": 3, "y": 4}}))
    assert out.ok and out.content == "5.0"
    assert "$defs" in norm.parameters


def test_awkward_parameter_names_keep_their_names() -> None:
    @tool
    def odd(schema: str, json: int = 1) -> str:
        """Parameters that shadow pydantic BaseModel attributes."""
        return f"{schema}-{json}"

    assert set(odd.parameters["properties"]) == {"schema", "json"}
    out = asyncio.run(odd.invoke({"schema": "s", "json": 2}))
    assert out.ok and out.content == "s-2"


def test_decorated_function_is_still_directly_callable() -> None:
    assert add(2, 3) == 5
    assert add(a=2, b=3) == 5
    assert add.__name__ == "add"
    assert asyncio.run(fetch("x")) == "page at x (2 retries)"


# --- invoke ----------------------------------------------------------------------------------------


async def test_invoke_with_dict_and_json_string() -> None:
    out = await add.invoke({"a": 2, "b": 3})
    assert out == ToolOutput(ok=True, content="5", error=None, duration=out.duration)
    assert out.duration >= 0
    assert (await add.invoke('{"a": 2, "b": 40}')).content == "42"


async def test_malformed_json_is_reported_to_the_model() -> None:
    out = await add.invoke('{"a": 2, "b": ')
    assert not out.ok and out.error == "invalid_arguments"
    assert "not valid JSON" in out.content
    assert "a (integer, required)" in out.content

    not_object = await add.invoke("[1, 2]")
    assert not_object.error == "invalid_arguments" and "JSON object" in not_object.content


async def test_validation_error_names_the_bad_argument_and_parameters() -> None:
    out = await add.invoke({"a": "two", "b": 3})
    assert not out.ok and out.error == "invalid_arguments"
    assert "'a'" in out.content and "integer" in out.content and "'two'" in out.content
    assert "Parameters: a (integer, required), b (integer, required)" in out.content
    assert "Traceback" not in out.content and "errors.pydantic.dev" not in out.content

    missing = await add.invoke({"a": 1})
    assert "'b': missing required argument" in missing.content

    extra = await add.invoke({"a": 1, "b": 2, "c": 3})
    assert "'c': unexpected argument" in extra.content


async def test_lax_coercion_of_numeric_strings() -> None:
    # Models often quote numbers; accepting "2" for an int avoids a pointless retry.
    assert (await add.invoke({"a": "2", "b": 3})).content == "5"


async def test_exception_becomes_short_observation_without_secrets() -> None:
    @tool
    def broken(key: str) -> str:
        """Always fails."""
        raise ValueError(f"request failed: api_key={key} header Bearer abcdefghijklmnop")

    out = await broken.invoke({"key": "sk-verysecretvalue123"})
    assert not out.ok and out.error == "exception"
    assert out.content.startswith("Error: ValueError: request failed")
    assert "verysecret" not in out.content and "abcdefghijklmnop" not in out.content
    assert "Traceback" not in out.content


async def test_tool_calling_sys_exit_does_not_end_the_caller() -> None:
    @tool
    def quitter() -> str:
        raise SystemExit(3)

    out = await quitter.invoke({})
    assert out.error == "exception" and out.content == "Error: SystemExit: 3"


async def test_tool_raising_timeout_error_is_an_exception_not_a_timeout() -> None:
    @tool(timeout=None)
    def flaky() -> str:
        raise TimeoutError("upstream took too long")

    out = await flaky.invoke({})
    assert out.error == "exception" and "TimeoutError: upstream took too long" in out.content


async def test_sync_tool_timeout_returns_promptly_and_does_not_block_loop() -> None:
    release = threading.Event()

    @tool(timeout=0.3)
    def stuck() -> str:
        release.wait(10)
        return "late"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticking = asyncio.create_task(ticker())
    started = time.perf_counter()
    out = await stuck.invoke({})
    elapsed = time.perf_counter() - started
    ticking.cancel()
    release.set()
    assert out.error == "timeout" and not out.ok
    assert "timed out after 0.3 s" in out.content
    assert elapsed < 0.3 + 1.0
    assert ticks >= 5  # the loop kept running while the sync tool was stuck


async def test_async_tool_is_cancelled_at_timeout() -> None:
    cancelled = asyncio.Event()

    @tool(timeout=0.2)
    async def sleepy() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    started = time.perf_counter()
    out = await sleepy.invoke({})
    assert out.error == "timeout"
    assert time.perf_counter() - started < 0.2 + 1.0
    assert cancelled.is_set()


async def test_sync_tool_calls_reuse_a_thread_and_see_the_callers_context_variables() -> None:
    where = contextvars.ContextVar("where", default="unset")

    @tool
    def whoami() -> str:
        return f"{threading.get_ident()} {where.get()}"

    where.set("caller")
    first = (await whoami.invoke({})).content
    started = tool_threads().started
    second = (await whoami.invoke({})).content
    assert tool_threads().started == started  # the first call's thread was idle again: no new one
    assert first.endswith(" caller") and second.endswith(" caller")
    assert first.split()[0] != str(threading.get_ident())  # off the event loop's thread


async def test_a_sync_call_stuck_past_its_timeout_does_not_hold_up_the_next_calls() -> None:
    release = threading.Event()

    @tool(timeout=0.2)
    def stuck() -> str:
        release.wait(10)
        return "late"

    @tool
    def quick(n: int) -> int:
        return n * 2

    assert (await stuck.invoke({})).error == "timeout"
    try:
        # The stuck call still holds its thread; these run on others, several at once.
        outs = await asyncio.gather(*(quick.invoke({"n": n}) for n in range(12)))
    finally:
        release.set()
    assert [out.content for out in outs] == [str(n * 2) for n in range(12)]


def test_tool_threads_start_a_thread_only_when_none_is_idle() -> None:
    threads = ToolThreads(keep_idle=2)
    results: list[tuple[Any, BaseException | None]] = []
    heard = threading.Event()

    def done(result: Any, error: BaseException | None) -> None:
        results.append((result, error))
        heard.set()

    for value in range(3):  # one after another: the first thread serves them all
        heard.clear()
        threads.submit(lambda value=value: value, done)
        assert heard.wait(5)
    heard.clear()
    threads.submit(lambda: 1 / 0, done)
    assert heard.wait(5)
    assert [r for r, _ in results[:3]] == [0, 1, 2] and isinstance(results[3][1], ZeroDivisionError)
    assert threads.started == 1


def test_hung_sync_tool_does_not_hang_interpreter_shutdown(tmp_path: Any) -> None:
    script = tmp_path / "hang.py"
    script.write_text(
        "import asyncio, time\n"
        "from agentlab.tools import tool\n"
        "@tool(timeout=0.2)\n"
        "def hang() -> str:\n"
        "    time.sleep(60)\n"
        "    return 'never'\n"
        "print(asyncio.run(hang.invoke({})).error)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == "timeout", done.stderr
    assert time.perf_counter() - started < 15


async def test_output_rendering_of_structured_results() -> None:
    class Result(BaseModel):
        name: str
        score: float

    @tool
    def structured(kind: str) -> Any:
        """Returns different shapes."""
        return {
            "dict": {"a": [1, 2], "é": None},
            "model": Result(name="x", score=0.5),
            "list": [Result(name="y", score=1)],
            "none": None,
            "number": 3.5,
            "object": object,
        }[kind]

    async def render(kind: str) -> str:
        return (await structured.invoke({"kind": kind})).content

    assert json.loads(await render("dict")) == {"a": [1, 2], "é": None}
    assert json.loads(await render("model")) == {"name": "x", "score": 0.5}
    assert json.loads(await render("list")) == [{"name": "y", "score": 1.0}]
    assert await render("none") == "(no output)"
    assert await render("number") == "3.5"
    assert await render("object") == "<class 'object'>"


async def test_output_is_truncated_with_visible_marker() -> None:
    @tool(max_output_chars=50)
    def long_text() -> str:
        return "x" * 1284

    out = await long_text.invoke({})
    assert out.ok
    assert out.content.startswith("x" * 50)
    assert out.content.endswith("…[truncated 1234 chars]")

    @tool
    def medium() -> str:
        return "y" * 5000

    assert "…[truncated 1000 chars]" in (await medium.invoke({})).content  # default cap: 4000
    registry = ToolRegistry([medium], max_output_chars=100)
    assert "…[truncated 4900 chars]" in (await registry.invoke("medium", {})).content


# --- approval --------------------------------------------------------------------------------------


async def test_approval_required_tool_is_denied_without_callback() -> None:
    out = await fetch.invoke({"url": "https://example.org"})
    assert not out.ok and out.error == "denied"
    assert "Denied" in out.content and "fetch_page" in out.content


async def test_approval_callback_sees_validated_arguments_and_can_allow_or_deny() -> None:
    seen: list[tuple[str, dict[str, Any]]] = []

    def allow(name: str, arguments: dict[str, Any]) -> bool:
        seen.append((name, arguments))
        return True

    out = await fetch.invoke({"url": "u"}, approve=allow)
    assert out.ok and out.content == "page at u (2 retries)"
    assert seen == [("fetch_page", {"url": "u", "retries": 2})]

    denied = await fetch.invoke({"url": "u"}, approve=lambda name, arguments: False)
    assert denied.error == "denied" and "did not approve" in denied.content


async def test_async_approval_callback() -> None:
    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        return arguments["url"].startswith("https://")

    assert (await fetch.invoke({"url": "https://ok"}, approve=approve)).ok
    assert (await fetch.invoke({"url": "http://no"}, approve=approve)).error == "denied"


async def test_failing_approval_callback_denies() -> None:
    def broken(name: str, arguments: dict[str, Any]) -> bool:
        raise RuntimeError("prompt crashed")

    out = await fetch.invoke({"url": "https://ok"}, approve=broken)
    assert out.error == "denied" and "prompt crashed" in out.content


async def test_approval_is_not_asked_for_invalid_arguments() -> None:
    asked = []
    out = await fetch.invoke({}, approve=lambda *call: asked.append(call) or True)
    assert out.error == "invalid_arguments" and asked == []


# --- registry --------------------------------------------------------------------------------------


def plain_multiply(x: float, y: float = 2.0) -> float:
    """Multiply two numbers."""
    return x * y


async def test_registry_wraps_plain_functions_and_lists_tools() -> None:
    registry = ToolRegistry([add, plain_multiply])
    assert registry.names() == ["add", "plain_multiply"]
    assert len(registry) == 2
    assert [t.name for t in registry] == ["add", "plain_multiply"]
    assert "add" in registry
    assert isinstance(registry.get("plain_multiply"), Tool)
    assert [s["function"]["name"] for s in registry.schemas()] == ["add", "plain_multiply"]
    out = await registry.invoke("plain_multiply", '{"x": 3}')
    assert out.ok and out.content == "6.0"


def test_registry_rejects_duplicate_names() -> None:
    @tool(name="add")
    def another_add(a: int) -> int:
        return a

    with pytest.raises(ValueError, match="duplicate tool name 'add'"):
        ToolRegistry([add, another_add])


def test_registry_get_unknown_lists_available() -> None:
    registry = ToolRegistry([add])
    with pytest.raises(KeyError, match="available: add"):
        registry.get("nope")


async def test_registry_unknown_tool_is_an_observation() -> None:
    registry = ToolRegistry([add, plain_multiply])
    out = await registry.invoke("ad", {"a": 1})
    assert not out.ok and out.error == "unknown_tool"
    assert "unknown tool 'ad'" in out.content
    assert "add, plain_multiply" in out.content and "Did you mean 'add'?" in out.content


async def test_registry_passes_approval_through() -> None:
    registry = ToolRegistry([fetch])
    assert (await registry.invoke("fetch_page", {"url": "x"})).error == "denied"
    assert (await registry.invoke("fetch_page", {"url": "x"}, approve=lambda n, a: True)).ok


def test_importing_tools_does_not_load_search_backends() -> None:
    assert loaded_by("import agentlab.tools", ("bm25s", "ddgs", "numpy", "scipy")) == []
