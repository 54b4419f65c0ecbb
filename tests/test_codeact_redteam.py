"""Red-team tests for CodeAct's tool channel: code in the sandbox trying to make the host do more than call
an exposed tool with valid arguments. Each test asserts the effect did not happen on the host."""

from __future__ import annotations

import asyncio
import os
import pickle
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import toolbox
from test_codeact import sandbox_children

from agentlab import Agent, tool
from agentlab import events as ev
from agentlab.sandbox import CallRefused, Sandbox
from agentlab.strategies.codeact import CodeAct
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, api_key="k")
# The channel is the worker's first free fd after start-up (fd 3: a dup of its stdout).
RAW = "import json\nchannel = open(3, 'wb', buffering=0, closefd=False)\n"


def recorder(effects: list[Any], *, requires_approval: bool = False):
    @tool(requires_approval=requires_approval)
    def record(text: str, times: int = 1) -> str:
        """Record a line on the host.

        Args:
            text: What to record.
            times: How many times.
        """
        effects.append(text * times)
        return "recorded"

    return record


def run_snippets(snippets: list[str], tools: list, **options: Any):
    script = [toolbox.call("run_code", thought="go", code=code) for code in snippets]
    with ScriptedServer(script) as srv:
        options.setdefault("strategy", "codeact")
        result = Agent(model=model_for(srv), tools=tools, max_steps=len(snippets), **options).run("red team")
    return result


def observations(result) -> list[str]:
    return [e.output for e in result.events if isinstance(e, ev.ToolResult)]


def test_forged_arguments_are_refused_and_the_tool_never_runs():
    effects: list[Any] = []
    forged = (
        "forged = ({'text': {'x': 1}}, {'text': 'a', 'times': 'many'}, {'txt': 'a'}, {'text': 'a', 'admin': True})\n"
        "for args in forged:\n"
        "    try:\n        record(**args)\n    except ToolError as e:\n        print('refused', str(e)[:50])\n"
        "try:\n    record('a', 2, 3)\nexcept TypeError as e:\n    print('type', e)\n"
        "try:\n    record(text=open)\nexcept TypeError as e:\n    print('json', e)\n"
        "final_answer('done')"
    )
    result = run_snippets([forged], [recorder(effects)])
    assert result.status == "done" and effects == []
    seen = observations(result)[0]
    assert seen.count("refused Error: invalid arguments for tool 'record'") == 4, seen
    assert "takes at most 2 positional arguments" in seen and "must be JSON values" in seen


def test_flooding_tool_calls_is_capped():
    effects: list[Any] = []
    flood = "for i in range(10_000):\n    record(text='x')"
    result = run_snippets([flood, "final_answer(len('ok'))"], [recorder(effects)], max_calls=5)
    assert len(effects) == 5  # the sixth call killed the worker instead of reaching the tool
    assert "more than 5 function calls" in observations(result)[0]
    assert "restarted" in observations(result)[1] and result.answer == "2"


def test_tools_needing_approval_are_denied_without_an_approver():
    effects: list[Any] = []
    code = "try:\n    record('x')\nexcept ToolError as e:\n    print(e)\nfinal_answer('end')"
    result = run_snippets([code], [recorder(effects, requires_approval=True)])
    assert effects == [] and "needs approval" in observations(result)[0]
    # Today the approver reaches CodeAct as its own option (StrategyContext does not carry the run's yet).
    asked: list[str] = []
    denying = CodeAct(approve=lambda name, args: asked.append(name) or False)
    allowed = run_snippets([code], [recorder(effects, requires_approval=True)], strategy=lambda: denying)
    assert effects == [] and asked == ["record"] and "did not approve" in observations(allowed)[0]


def test_the_runner_and_unlisted_names_are_not_callable_from_code():
    effects: list[Any] = []
    code = "print(run_code('final_answer(1)'))"
    result = run_snippets([code, "final_answer('x')"], [recorder(effects)])
    assert "NameError" in observations(result)[0] and result.answer == "x"


# --- the raw channel: code that writes its own frames -----------------------------------------------------


async def host_calls(code: str, **session: Any) -> tuple[Any, list[tuple[str, dict]]]:
    """Run `code` in a session exposing `record(text)`; the handler logs what reached the host."""
    reached: list[tuple[str, dict]] = []

    async def handler(name: str, arguments: dict) -> Any:
        reached.append((name, arguments))
        if name != "record":
            raise CallRefused("unexpected")
        return "ok"

    with Sandbox(timeout=5, pool_size=0) as box:
        async with box.session({"record": ["text"]}, **session) as s:
            result = await s.execute(code, handler)
            after = await s.execute("print('alive' if 'channel' in dir() else 'fresh')", handler)
    return (result, after), reached


async def test_a_raw_call_of_a_function_that_is_not_exposed_is_refused():
    code = RAW + 'channel.write(b\'{"call": {"name": "shutdown", "arguments": {}}}\\n\')\nprint(open(0).readline())'
    (result, _), reached = await host_calls(code)
    assert reached == []  # the handler never saw it
    assert "not available in this sandbox" in result.stdout


@pytest.mark.parametrize(
    "frame",
    [
        b"not json at all\n",
        b"[1, 2, 3]\n",
        b'{"call": "record"}\n',
        b'{"call": {"name": "record", "arguments": {"text": "a"}, "extra": 1}}\n',
        b'{"call": {"name": "record", "arguments": ["a"]}}\n',
        b'{"result": {"ok": true, "value": 1}}\n',
        b'{"o": "x", "call": {"name": "record", "arguments": {"text": "a"}}}\n',
        b'{"o": 12}\n',
        b"\\xff\\xfe\\x00garbage\n",
    ],
)
async def test_malformed_frames_kill_the_worker(frame):
    code = RAW + f"channel.write({frame.decode()!r}.encode('latin-1'))\nwhile True:\n    pass"
    (result, after), reached = await host_calls(code)
    assert reached == [] and not result.ok
    assert result.error.startswith("SandboxError: malformed")
    assert after.restarted and after.stdout == "fresh\n"  # the old worker and its variables are gone


async def test_an_oversized_message_kills_the_worker_before_it_reaches_the_host():
    code = "record('x' * (3 << 20))"
    (result, after), reached = await host_calls(code)
    assert reached == [] and "exceeded" in result.error and after.restarted
    raw = RAW + "channel.write(b'{\"o\": \"' + b'y' * (3 << 20))\nwhile True:\n    pass"
    (result, _), reached = await host_calls(raw)
    assert reached == [] and "exceeded" in result.error and len(result.stdout) < 20_000


class _Dangerous:
    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


async def test_pickles_on_the_channel_are_never_loaded(tmp_path: Path):
    target = tmp_path / "pwned"
    payload = pickle.dumps(_Dangerous(str(target))) + b"\n"
    code = RAW + f"channel.write({payload!r})\nwhile True:\n    pass"
    (result, _), reached = await host_calls(code)
    assert not target.exists() and reached == []
    assert result.error.startswith("SandboxError: malformed")


async def test_forged_results_and_done_frames_cannot_run_host_code(tmp_path: Path):
    # The code can end its own snippet or claim a value (it could anyway); it cannot make the host act.
    code = RAW + 'channel.write(b\'{"done": {"ok": true, "final": true, "value": "\\\\"forged\\\\""}}\\n\')'
    (result, _), reached = await host_calls(code)
    assert reached == [] and result.final and result.value == "forged"


async def test_cancelling_a_snippet_kills_its_worker():
    async def handler(name: str, arguments: dict) -> Any:
        return None

    with Sandbox(timeout=30, pool_size=0) as box:
        async with box.session({}) as s:
            task = asyncio.create_task(s.execute("while True:\n    pass", handler))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert sandbox_children() == []
