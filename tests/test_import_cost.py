"""What the public import loads: the heavy dependencies wait until a run needs them (no timings asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from toolbox import loaded_by

# Each of these is loaded by the first use of what needs it, never by `from agentlab import ...`.
DEFERRED = ("pydantic", "pydantic_core", "openai", "httpx", "tenacity", "sqlite3", "llama_cpp", "ddgs")


def fresh_interpreter(code: str) -> object:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_public_import_loads_none_of_the_heavy_dependencies() -> None:
    assert loaded_by("from agentlab import Agent, tool, OpenAIModel", DEFERRED) == []


def test_the_first_tool_loads_pydantic_and_still_validates_its_arguments() -> None:
    outcome = fresh_interpreter(
        "import asyncio, json, sys\n"
        "from agentlab import tool\n"
        "before = 'pydantic' in sys.modules\n"
        "@tool\n"
        "def add(a: int, b: int) -> int:\n"
        "    return a + b\n"
        "bad = asyncio.run(add.invoke({'a': 'x', 'b': 2}))\n"
        'good = asyncio.run(add.invoke(\'{"a": "3", "b": 2}\'))\n'
        "print(json.dumps([before, 'pydantic' in sys.modules, bad.error, bad.content, good.content]))"
    )
    assert isinstance(outcome, list)
    before, after, error, bad, good = outcome
    assert before is False and after is True
    assert error == "invalid_arguments"
    assert "invalid arguments for tool 'add'" in bad and "'a'" in bad
    assert good == "5"


def test_short_answer_is_built_once_and_limits_the_answer() -> None:
    from agentlab.run import output
    from agentlab.run.output import OutputSpec, ShortAnswer

    assert output.ShortAnswer is ShortAnswer  # later lookups get the same object
    spec = OutputSpec.for_type(ShortAnswer)
    assert spec.parameters["properties"]["answer"]["maxLength"] == 200
    assert spec.is_text
