"""Demonstration retrieval: solved runs stored, retrieved for similar tasks, injected into the next prompt."""

from __future__ import annotations

import json
from pathlib import Path

import toolbox
from toolbox import add, model_for

from agentlab import Agent
from agentlab.demos import PREAMBLE, DemoLibrary
from agentlab.testing import ScriptedServer


def call(name: str, thought: str = "", /, **arguments: object) -> dict:
    return toolbox.call(name, thought, **arguments)  # always with a content: "" when no thought is given


def test_a_solved_run_becomes_a_demo_in_the_next_similar_runs_prompt(tmp_path: Path):
    path = tmp_path / "demos.jsonl"
    library = DemoLibrary(path)
    library.add("Name the capital of France.", ['Action: lookup {"title": "France"}'], "Paris")
    solved_task = "What is 17 plus 25?"
    with ScriptedServer([call("add", "I add the two numbers.", a=17, b=25), call("final_answer", answer="42")]) as srv:
        solved = Agent(model=model_for(srv), tools=[add]).run(solved_task)
    demo = library.add_from_result(solved_task, solved)
    assert demo is not None and demo.answer == "42"
    assert demo.trajectory == ("Thought: I add the two numbers.", 'Action: add {"a": 17, "b": 25}', "Observation: 42")

    with ScriptedServer([call("add", a=1, b=1), call("add", a=2, b=2)]) as srv:
        failed = Agent(model=model_for(srv), tools=[add], max_steps=2).run("What is 1 plus 1?")
    assert failed.status == "max_steps" and library.add_from_result("What is 1 plus 1?", failed) is None

    reopened = DemoLibrary(path)  # the file holds what was kept, in order
    assert [d.task for d in reopened] == ["Name the capital of France.", solved_task]
    new_task = "What is 19 plus 23?"
    assert [d.task for d in reopened.retrieve(new_task, k=2)] == [solved_task]  # France shares no term
    assert reopened.retrieve("Tell me a joke", k=2) == [] and reopened.as_instructions("Tell me a joke") is None

    instructions = reopened.as_instructions(new_task, k=2)
    with ScriptedServer([call("add", a=19, b=23), call("final_answer", answer="42")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], instructions=instructions).run(new_task)
        system = srv.requests[0]["messages"][0]
    assert result.status == "done"
    assert system["role"] == "system" and PREAMBLE in system["content"]
    assert (
        "Example 1\nTask: What is 17 plus 25?\nThought: I add the two numbers.\n"
        'Action: add {"a": 17, "b": 25}\nObservation: 42\nAnswer: 42'
    ) in system["content"]
    assert "capital of France" not in system["content"]


def test_library_is_compact_and_tolerates_a_damaged_file(tmp_path: Path):
    path = tmp_path / "demos.jsonl"
    library = DemoLibrary(path, max_trajectory_lines=6)
    long = library.add("count to ten", [f"Observation: {n}" for n in range(1, 11)], "10")
    assert long.trajectory == (
        "Observation: 1",
        "Observation: 2",
        "Observation: 3",
        "…",
        "Observation: 9",
        "Observation: 10",
    )
    assert library.add("count to ten", [f"Observation: {n}" for n in range(1, 11)], "10") is long  # no duplicate
    with path.open("a", encoding="utf-8") as file:
        file.write('{"task": "half a line\n')
    reopened = DemoLibrary(path)
    assert len(reopened) == 1 and reopened.problems and ":2: not a demo" in reopened.problems[0]
    reopened.add("count to five", ["Observation: 5"], "5")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["task"] == "count to five"  # the damaged line stays
