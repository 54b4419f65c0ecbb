"""`agentlab run --store`, `agentlab runs` and `agentlab resume`, as real subprocesses against a scripted server."""

from __future__ import annotations

import json
from pathlib import Path

from test_cli import agentlab

from agentlab.testing import ScriptedServer

TOOLS = (
    "from agentlab import tool\n\n"
    "@tool(requires_approval=True)\ndef remove(name: str) -> str:\n"
    '    """Remove a thing.\n\n    Args:\n        name: What.\n    """\n'
    "    return f'removed {name}'\n"
)


def test_a_paused_run_is_listed_and_resumed_from_the_command_line(tmp_path: Path) -> None:
    tools_file = tmp_path / "mytools.py"
    tools_file.write_text(TOOLS)
    store = str(tmp_path / "runs.db")
    calls = [
        {"id": "k1", "name": "remove", "arguments": {"name": "x"}},
        {"id": "k2", "name": "remove", "arguments": {"name": "y"}},
    ]
    script = [{"tool_calls": calls}, {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "removed x"}}]}]
    common = ("--tools", f"{tools_file}:remove", "--model", "scripted")
    with ScriptedServer(script) as srv:
        first = agentlab("run", "tidy up", *common, "--base-url", srv.base_url, "--store", store, "--json")
        paused = json.loads(first.stdout)
        listed = agentlab("runs", "--store", store, "--json")
        second = agentlab(
            "resume",
            paused["agent_run_id"],
            "--store",
            store,
            *common,
            "--base-url",
            srv.base_url,
            "--approve",
            "k1",
            "--deny",
            "k2",
            "--json",
        )
        asked = len(srv.requests)

    assert first.returncode == 0, first.stderr
    assert paused["status"] == "paused" and [p["id"] for p in paused["pending"]] == ["k1", "k2"]
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["run_id"] == paused["agent_run_id"] and row["status"] == "paused" and row["steps"] == 1
    assert second.returncode == 0, second.stderr
    done = json.loads(second.stdout)
    assert done["status"] == "done" and done["answer"] == "removed x" and done["pending"] == []
    assert asked == 2  # the first reply was replayed from the store


def test_the_run_id_is_printed_first_and_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    store = str(tmp_path / "runs.db")
    with ScriptedServer([{"tool_calls": [{"name": "final_answer", "arguments": {"answer": "4"}}]}]) as srv:
        shown = agentlab("run", "2+2", "--base-url", srv.base_url, "--model", "scripted", "--store", store)
    assert shown.returncode == 0, shown.stderr
    first_line = shown.stdout.splitlines()[0]
    assert first_line.startswith("run ") and len(first_line.split()[1]) == 32
    unknown = agentlab("resume", "nope", "--store", store)
    assert unknown.returncode == 2 and "no run 'nope'" in unknown.stderr
    clash = agentlab("resume", "x", "--store", store, "--approve", "a", "--deny", "a")
    assert clash.returncode == 2 and "approved and denied" in clash.stderr
