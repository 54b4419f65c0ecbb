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


def test_agent_option_puts_the_retrieved_demos_in_the_first_request_for_every_strategy():
    library = DemoLibrary()
    library.add("What is 17 plus 25?", ['Action: add {"a": 17, "b": 25}', "Observation: 42"], "42")
    library.add("What is 3 times 4?", ['Action: multiply {"a": 3, "b": 4}', "Observation: 12"], "12")
    with ScriptedServer([call("final_answer", answer="42")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], demos=library, demos_k=2).run("What is 19 plus 23?")
        system = srv.requests[0]["messages"][0]["content"]
    assert result.status == "done"
    assert PREAMBLE in system and "Task: What is 17 plus 25?" in system
    assert "multiply" not in system  # a demo calling a tool this agent lacks is left out
    with ScriptedServer([{"content": "done"}]) as srv:
        Agent(model=model_for(srv), tools=[add], strategy="critic", demos=library, max_rounds=0).run(
            "What is 19 plus 23?"
        )
        assert "Task: What is 17 plus 25?" in json.dumps(srv.requests[0]["messages"])


def test_the_built_in_demos_are_package_data_used_by_default_only_for_the_embedded_model():
    from agentlab.demos import builtin_library, resolve_demos
    from agentlab.models.local import LocalModel

    library = builtin_library()
    assert len(library) >= 10 and not library.problems
    assert {name for demo in library for name in demo.tool_names()} == {
        "calculator",
        "local_search",
        "lookup",
        "python",
    }
    found = library.retrieve("What is (37 - 112) * 6 + 15?", k=2, tools=["calculator"])
    assert len(found) == 2 and all(demo.tool_names() == {"calculator"} for demo in found)
    embedded = LocalModel(model_path="unused.gguf")  # nothing is loaded before the first call
    assert resolve_demos(None, embedded) is library and resolve_demos(False, embedded) is None
    with ScriptedServer([]) as srv:
        remote = model_for(srv)
        assert resolve_demos(None, remote) is None and resolve_demos(True, remote) is library
        assert Agent(model=remote, demos=False).demos is None


def test_no_demos_means_the_prompt_is_unchanged():
    with ScriptedServer([call("final_answer", answer="2")]) as srv:
        Agent(model=model_for(srv), tools=[add]).run("What is 1 plus 1?")
        assert PREAMBLE not in srv.requests[0]["messages"][0]["content"]


def test_tasks_of_the_same_shape_retrieve_each_other():
    # Only stopwords and numbers for BM25: the symbols decide which arithmetic example fits.
    library = DemoLibrary()
    library.add("What is 15% of 240?", ["Observation: 36"], "36")
    library.add("What is (48 + 17) * 3 - 20?", ["Observation: 175"], "175")
    library.add("What is 125 - 38 * 4 + 9?", ["Observation: -18"], "-18")
    assert [d.task for d in library.retrieve("What is (25 - 71) - 187 + 246?", k=1)] == ["What is (48 + 17) * 3 - 20?"]
    assert [d.task for d in library.retrieve("What is 58 - 133 * 2 + 9?", k=1)] == ["What is 125 - 38 * 4 + 9?"]
