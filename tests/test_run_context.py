"""RunContext injection: a tool whose first parameter asks for the run's context gets it; the model never sees it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentlab import RunContext
from agentlab.events import Usage
from agentlab.tools import Tool, ToolRegistry, tool
from agentlab.tools.schema import RUN_CONTEXT_MARKER, is_run_context_annotation


@dataclass
class Deps:
    db: dict[str, str]
    user_id: str


@tool
def lookup_customer(ctx: RunContext[Deps], name: str) -> str:
    """Find a customer.

    Args:
        name: The customer's name.
    """
    return f"{ctx.deps.db[name]} (asked by {ctx.deps.user_id} at step {ctx.step})"


@tool
async def whoami(ctx: RunContext[Deps]) -> str:
    """Who is asking."""
    await asyncio.sleep(0)
    return f"{ctx.deps.user_id} in run {ctx.run_id} after {ctx.usage.total_tokens} tokens"


@tool
def plain_context(ctx: RunContext, /, n: int) -> str:  # type: ignore[type-arg]
    """Unparameterised and positional-only."""
    return f"{ctx.run_id}:{n}"


@tool
def keyword_context(*, ctx: RunContext[Deps], n: int) -> str:
    """Keyword-only context."""
    return f"{ctx.deps.user_id}:{n}"


def make_context(step: int = 3) -> RunContext[Deps]:
    return RunContext(
        deps=Deps(db={"ACME": "ACME Corp, 1 Road"}, user_id="user-42"),
        run_id="run-1",
        step=step,
        usage=Usage(10, 5),
        messages=[{"role": "user", "content": "hi"}],
    )


def test_run_context_carries_what_a_tool_may_know() -> None:
    ctx = make_context()
    assert (ctx.run_id, ctx.step, ctx.usage.total_tokens, ctx.parent_run_id) == ("run-1", 3, 15, None)
    assert ctx.messages == [{"role": "user", "content": "hi"}]
    bare: RunContext[None] = RunContext(deps=None, run_id="r")
    assert (bare.step, bare.usage, bare.messages) == (0, Usage(), [])
    assert getattr(RunContext, RUN_CONTEXT_MARKER) is True
    assert is_run_context_annotation(RunContext) and is_run_context_annotation(RunContext[Deps])
    assert not is_run_context_annotation(Deps) and not is_run_context_annotation(int)


def test_context_parameter_is_never_in_the_schema_or_args_model() -> None:
    assert lookup_customer.context_parameter == "ctx"
    assert lookup_customer.parameters == {
        "type": "object",
        "properties": {"name": {"type": "string", "description": "The customer's name."}},
        "required": ["name"],
        "additionalProperties": False,
    }
    assert set(lookup_customer.args_model.model_fields) == {"name"}
    assert whoami.parameters["properties"] == {}
    assert plain_context.parameters["required"] == ["n"]
    assert keyword_context.parameters["required"] == ["n"]


def test_deps_reach_a_sync_tool_through_the_registry() -> None:
    registry = ToolRegistry([lookup_customer, whoami])
    out = asyncio.run(registry.invoke("lookup_customer", {"name": "ACME"}, context=make_context()))
    assert out.ok, out.content
    assert out.content == "ACME Corp, 1 Road (asked by user-42 at step 3)"


def test_deps_reach_an_async_tool_and_other_parameter_kinds() -> None:
    registry = ToolRegistry([whoami, plain_context, keyword_context])
    ctx = make_context()
    assert asyncio.run(registry.invoke("whoami", "{}", context=ctx)).content == "user-42 in run run-1 after 15 tokens"
    assert asyncio.run(registry.invoke("plain_context", {"n": 2}, context=ctx)).content == "run-1:2"
    assert asyncio.run(registry.invoke("keyword_context", {"n": 4}, context=ctx)).content == "user-42:4"


def test_a_context_tool_without_a_context_is_an_observation_not_a_crash() -> None:
    out = asyncio.run(ToolRegistry([lookup_customer]).invoke("lookup_customer", {"name": "ACME"}))
    assert not out.ok
    assert out.error == "missing_context"
    assert "lookup_customer" in out.content and "needs a RunContext" in out.content


def test_the_model_cannot_smuggle_a_context_argument() -> None:
    out = asyncio.run(lookup_customer.invoke({"name": "ACME", "ctx": {"deps": 1}}, context=make_context()))
    assert out.error == "invalid_arguments"
    assert "'ctx': unexpected argument" in out.content


def test_tools_without_context_ignore_one() -> None:
    @tool
    def double(x: int) -> int:
        """Double it."""
        return 2 * x

    assert double.context_parameter is None
    assert asyncio.run(double.invoke({"x": 4}, context=make_context())).content == "8"
    assert asyncio.run(double.invoke({"x": 4})).content == "8"


def test_a_context_parameter_that_is_not_first_is_a_clear_error() -> None:
    def late(name: str, ctx: RunContext[Deps]) -> str:
        return name

    with pytest.raises(TypeError, match="'ctx': a RunContext parameter must be the tool function's first"):
        Tool(late)


def test_string_annotations_with_deps_imported_only_for_type_checking(tmp_path: Path) -> None:
    """Under `from __future__ import annotations` the Deps type may exist only for the type checker."""
    module = tmp_path / "app_tools.py"
    module.write_text(
        textwrap.dedent(
            '''
            from __future__ import annotations

            import asyncio
            from typing import TYPE_CHECKING

            from agentlab import RunContext, ToolRegistry, tool

            if TYPE_CHECKING:
                from app_deps import Deps  # does not exist at run time


            @tool
            def greet(ctx: RunContext[Deps], greeting: str = "Hello") -> str:
                """Greet the current user."""
                return f"{greeting}, {ctx.deps['name']}"


            ctx = RunContext(deps={"name": "Ada"}, run_id="r1")
            out = asyncio.run(ToolRegistry([greet]).invoke("greet", {"greeting": "Hi"}, context=ctx))
            print(sorted(greet.parameters["properties"]), out.content)
            '''
        )
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}  # this checkout's agentlab, not an installed one
    done = subprocess.run([sys.executable, str(module)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['greeting'] Hi, Ada"


def test_string_annotation_resolved_from_local_names() -> None:
    """This file uses `from __future__ import annotations`; a Deps class local to a function resolves too."""

    @dataclass
    class LocalDeps:
        value: int

    @tool
    def read(ctx: RunContext[LocalDeps], add: int) -> int:
        """Read the value."""
        return ctx.deps.value + add

    assert read.context_parameter == "ctx"
    ctx: RunContext[Any] = RunContext(deps=LocalDeps(40), run_id="r")
    assert asyncio.run(read.invoke({"add": 2}, context=ctx)).content == "42"
