"""PAL over the scripted server: programs written by the "model" run in the real sandbox."""

from __future__ import annotations

import json
from functools import partial

import pytest
import toolbox

from agentlab import Agent
from agentlab import events as ev
from agentlab.testing import ScriptedServer

PROGRAM = "def solution():\n    apples = 7\n    eaten = 3\n    return apples - eaten\n"
BROKEN = "def solution():\n    return undefined_name * 2\n"


model_for = partial(toolbox.model_for, api_key="k")


def fenced(program: str) -> dict:
    return {"content": f"Here is the program:\n```python\n{program}```"}


def test_program_computes_the_answer_in_the_sandbox():
    with ScriptedServer([fenced(PROGRAM)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("Tom has 7 apples and eats 3. How many are left?")
        first = srv.requests[0]
    assert (result.status, result.answer) == ("done", "4")
    assert first["messages"][-1]["content"].startswith("Tom has 7 apples")
    assert "def solution" in first["messages"][2]["content"]  # the few-shot example
    run = next(e for e in result.events if isinstance(e, ev.ToolResult))
    assert run.call.name == "run_solution" and run.ok
    started = result.events[0]
    assert isinstance(started, ev.RunStarted) and started.tools == ["run_solution"]  # the trace names PAL's tool
    assert started.tool_schemas[0]["function"]["name"] == "run_solution"


def test_a_typed_answer_that_the_program_returned_is_taken_as_it_is():
    # The program's value already is a float: restating it would be one more call, and a small model asked
    # to copy 4 can write another number.
    with ScriptedServer([fenced(PROGRAM)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal", output_type=float).run("7 apples, 3 eaten: how many?")
        asked = len(srv.requests)
    assert (result.status, result.output, asked) == ("done", 4.0, 1)
    # An answer that is not the type's JSON is still restated by the model.
    words = "def solution():\n    return 'four apples'\n"
    with ScriptedServer([fenced(words), {"content": json.dumps({"answer": 4})}]) as srv:
        result = Agent(model=model_for(srv), strategy="pal", output_type=float).run("7 apples, 3 eaten: how many?")
        asked = len(srv.requests)
    assert (result.status, result.output, asked) == ("done", 4.0, 2)


def test_failing_program_is_repaired():
    with ScriptedServer([fenced(BROKEN), fenced(PROGRAM)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("7 - 3?")
        repair = srv.requests[1]["messages"]
    assert (result.status, result.answer) == ("done", "4")
    assert "NameError" in repair[-1]["content"] and "Fix the program" in repair[-1]["content"]
    assert [e.ok for e in result.events if isinstance(e, ev.ToolResult)] == [False, True]


def test_a_program_that_returns_nothing_is_sent_back():
    no_return = "def solution():\n    apples = 7 - 3\n"
    with ScriptedServer([fenced(no_return), fenced(PROGRAM)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("7 - 3?")
        repair = srv.requests[1]["messages"][-1]["content"]
    assert (result.status, result.answer) == ("done", "4") and "returned None" in repair


def test_repairs_are_bounded():
    with ScriptedServer([fenced(BROKEN.replace("2", str(i))) for i in range(3, 6)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal", max_repairs=1).run("x")
    assert result.status == "error" and "repairs" in result.error and result.answer is None


def test_self_consistency_majority_vote():
    other = PROGRAM.replace("eaten = 3", "eaten = 2")
    script = [fenced(PROGRAM), fenced(other), fenced(PROGRAM)]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), strategy="pal", samples=3).run("7 - 3?")
        temperatures = [r.get("temperature") for r in srv.requests]
    assert (result.status, result.answer) == ("done", "4")
    vote = next(e for e in result.events if isinstance(e, ev.Note) and e.text == "self-consistency vote")
    assert vote.data["votes"] == {"4": 2, "5": 1}
    assert all(t and t > 0 for t in temperatures)
    # The repeated program is not run twice in the sandbox.
    assert len([e for e in result.events if isinstance(e, ev.ToolResult)]) == 2


def test_json_schema_programs_when_endpoint_constrains_output():
    script = [{"content": json.dumps({"program": PROGRAM})}]
    with ScriptedServer(script, native_tools=False, json_schema=True) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("7 - 3?")
        schema = srv.requests[0]["response_format"]["json_schema"]["schema"]
    assert (result.status, result.answer) == ("done", "4") and "program" in schema["properties"]


def test_model_written_code_cannot_read_host_secrets(monkeypatch):
    monkeypatch.setenv("AGENTLAB_TEST_SECRET", "hunter2-do-not-leak")
    leak = "import os\ndef solution():\n    return os.environ.get('AGENTLAB_TEST_SECRET', 'none')\n"
    with ScriptedServer([fenced(leak), fenced(PROGRAM)]) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("x")
    assert "hunter2" not in json.dumps(result.trace)
    assert result.status == "done"


@pytest.mark.parametrize("code", ["print(6 * 7)"])
async def test_python_tool_runs_code_in_the_sandbox(code):
    from agentlab.tools.builtin.python import python_tool

    out = await python_tool().invoke({"code": code})
    assert out.ok and out.content.strip() == "42"
    failed = await python_tool().invoke({"code": "open('/etc/shadow').read()"})
    assert not failed.ok and "root:" not in failed.content


def test_pal_math_example_runs_against_an_endpoint(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "gsm8k.jsonl"
    data.write_text(
        json.dumps({"question": "Tom has 7 apples and eats 3. How many are left?", "answer": "7 - 3 = 4\n#### 4"})
        + "\n"
    )
    root = Path(__file__).resolve().parents[1]
    with ScriptedServer([fenced(PROGRAM)]) as srv:
        env = {**os.environ, "AGENTLAB_BASE_URL": srv.base_url, "AGENTLAB_MODEL": "scripted"}
        proc = subprocess.run(
            [sys.executable, "examples/pal_math.py", "--n", "1", "--data", str(data)],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "1/1 correct" in proc.stdout


def test_a_small_models_program_is_assignments_of_arithmetic_and_a_return():
    import re

    from agentlab.strategies.pal import SMALL_PROGRAM_SCHEMA

    shape = re.compile(SMALL_PROGRAM_SCHEMA["properties"]["program"]["pattern"])
    assert shape.fullmatch(PROGRAM.rstrip("\n"))
    assert shape.fullmatch("def solution():\n    cost = (price + 2) * 3\n    return cost // 2 - 0.5")
    # What SmolLM2 wrote under free lines: an expression cut off at the line's bound, a tuple, a comment.
    for debris in ("return 2*2*", "return a, b, c,", "return total / 2  # 2 left", "x = 'five'\n    return x"):
        assert not shape.fullmatch(f"def solution():\n    {debris}"), debris


def test_a_small_models_program_that_names_a_variable_like_a_keyword_runs_with_it_renamed():
    from agentlab.models.base import ModelResponse
    from agentlab.strategies.base import StrategyContext
    from agentlab.strategies.pal import PAL
    from agentlab.tools import ToolRegistry

    # What SmolLM2 wrote: the shape lets `for` through as a name, Python would refuse it (SyntaxError).
    # `return = 1` too (SmolLM2 wrote `return = 5`): a line that assigns to `return` is not the return.
    program = "def solution():\n    total = 20\n    for = 18 * 3\n    return = 1\n    return total + for + return"
    pal = PAL()
    pal.start(StrategyContext("Sarah buys 20 pencils ...", ToolRegistry([]), "json_schema", small_model=True))
    pal.next_step()
    call = pal.interpret(ModelResponse(content=json.dumps({"program": program}))).tool_calls[0]
    renamed = "def solution():\n    total = 20\n    for_ = 18 * 3\n    return_ = 1\n    return total + for_ + return_"
    assert call.arguments["program"] == renamed
    namespace: dict = {}
    exec(renamed, namespace)  # the program as it runs: valid Python now
    assert namespace["solution"]() == 75
    other = PAL()  # another model's program is run as it was written
    other.start(StrategyContext("x", ToolRegistry([]), "json_schema"))
    other.next_step()
    assert other.interpret(ModelResponse(content=json.dumps({"program": program}))).tool_calls[0].arguments == {
        "program": program
    }


def test_a_small_models_repair_keeps_its_names_and_uses_only_those_assigned_above():
    import re

    from agentlab.models.base import ModelResponse
    from agentlab.strategies.base import Observation, StrategyContext
    from agentlab.strategies.pal import PAL, PROGRAM_SCHEMA, SMALL_PROGRAM_SCHEMA
    from agentlab.tools import ToolRegistry
    from agentlab.tools.output import ToolOutput

    def run(pal: PAL, program: str, ok: bool, output: str) -> None:
        decision = pal.interpret(ModelResponse(content=json.dumps({"program": program})))
        pal.observe([Observation(decision.tool_calls[0], ToolOutput(ok=ok, content=output))])

    task = "Tom has 7 apples and eats 3. How many are left?"
    # What SmolLM2 wrote: a name used before it is assigned.
    failed = "def solution():\n    eaten = apples - 3\n    apples = 7\n    return apples - eaten"
    error = "Error: CodeError: UnboundLocalError: cannot access local variable 'apples'"
    other = PAL()  # another model repairs with the free program string
    other.start(StrategyContext(task, ToolRegistry([]), "json_schema"))
    run(other, failed, False, error)
    assert other.next_step().response_schema is PROGRAM_SCHEMA
    pal = PAL(samples=2)
    pal.start(StrategyContext(task, ToolRegistry([]), "json_schema", small_model=True))
    assert pal.next_step().response_schema is SMALL_PROGRAM_SCHEMA
    run(pal, failed, False, error)
    repair = re.compile(pal.next_step().response_schema["properties"]["program"]["pattern"])
    assert repair.fullmatch("def solution():\n    eaten = 3\n    apples = 7 + eaten\n    return (apples - eaten) * 2")
    for wrong in (
        failed,  # "apples" is not assigned above its use
        "def solution():\n    eaten = 3\n    apples = 7\n    return total",  # never assigned
        "def solution():\n    eaten = (3\n    apples = 7\n    return apples",  # a parenthesis left open
        "def solution():\n    apples = 7\n    eaten = 3\n    return apples - eaten",  # other names, other order
    ):
        assert not repair.fullmatch(wrong), wrong
    # Once a program runs, the next sample is free to name its variables again.
    run(pal, "def solution():\n    eaten = 3\n    apples = 7\n    return apples - eaten", True, "4")
    assert pal.next_step().response_schema is SMALL_PROGRAM_SCHEMA


@pytest.mark.parametrize("returned", ["10 ** 5000", "object()", "'y' * 10_000_000"])
def test_a_value_the_sandbox_can_only_show_as_its_repr_is_no_answer(returned: str) -> None:
    program = {"content": f"```python\ndef solution():\n    return {returned}\n```"}
    fixed = {"content": "```python\ndef solution():\n    return 42\n```"}
    with ScriptedServer([program, fixed]) as srv:
        result = Agent(model=model_for(srv), strategy="pal").run("q")
    failed = next(e for e in result.events if e.kind == "tool_result")
    # Before, '<unrepresentable int>', '<object object at 0x...>' or a cut-off repr was the answer, `done`.
    assert not failed.ok and "not a number or a short text" in failed.output
    assert (result.status, result.answer) == ("done", "42")
