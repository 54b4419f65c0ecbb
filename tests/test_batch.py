"""`agentlab batch`: one agent per JSONL line over a scripted OpenAI-compatible server (real HTTP), results
appended as they finish, resumed after a partial results file; one run on a small local Ray instance."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentlab.batch import BatchConfig, BatchTask, ResultLog, read_tasks, run_batch
from agentlab.cli import main


def arithmetic(body: dict[str, Any], index: int) -> dict[str, Any]:
    """Calls the calculator on "What is <expr>?", then answers the tool's result as plain text."""
    results = [m["content"] for m in body["messages"] if m["role"] == "tool"]
    if results:
        return {"content": results[-1]}
    question = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    expression = re.search(r"What is (.+)\?", question).group(1)
    return {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


def write_tasks(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def results_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


TASKS = [
    {"task": "What is 2+3?", "id": "a"},
    json.dumps("What is 4*5?"),  # a bare string: known by its line number
    {"task": "What is 7-1?", "id": "c"},
]


def batch_args(srv: Any, tasks: Path, out: Path, *extra: str) -> list[str]:
    return ["batch", str(tasks), "-o", str(out), "--base-url", srv.base_url, "--model", "scripted", *extra]


def test_every_line_runs_and_its_result_carries_the_trace_id(tmp_path, capsys, scripted_server):
    srv = scripted_server(arithmetic)
    tasks, out = write_tasks(tmp_path / "tasks.jsonl", TASKS), tmp_path / "results.jsonl"
    code = main(batch_args(srv, tasks, out, "--concurrency", "2", "--trace-dir", str(tmp_path / "traces")))
    assert code == 0
    results = {r["id"]: r for r in results_of(out)}
    assert sorted(results) == ["a", "c", "line-2"]
    assert {i: r["answer"] for i, r in results.items()} == {"a": "5", "line-2": "20", "c": "6"}
    assert all(r["status"] == "done" and r["steps"] == 2 for r in results.values())
    assert len({r["run_id"] for r in results.values()}) == 3 and all(r["run_id"] for r in results.values())
    assert results["line-2"]["line"] == 2
    # Each task's trace file is that run's events, under the run id its result reports.
    trace = [json.loads(line) for line in (tmp_path / "traces" / "a.jsonl").read_text().splitlines()]
    assert {e["run_id"] for e in trace} == {results["a"]["run_id"]}
    assert srv.consumed == 6
    err = capsys.readouterr()
    assert err.out == ""  # stdout stays free
    assert "3 tasks (0 already done): done 3" in err.err


def test_rerun_skips_finished_lines_and_ignores_a_line_cut_short(tmp_path, capsys, scripted_server):
    srv = scripted_server(arithmetic)
    tasks, out = write_tasks(tmp_path / "tasks.jsonl", TASKS), tmp_path / "results.jsonl"
    finished = {"id": "a", "line": 1, "status": "done", "answer": "5", "run_id": "earlier"}
    out.write_text(json.dumps(finished) + "\n" + '{"id": "c", "sta')  # killed while writing c's result
    assert main(batch_args(srv, tasks, out)) == 0
    assert srv.consumed == 4  # only line-2 and c ran
    results = results_of_lenient(out)
    assert sorted(r["id"] for r in results) == ["a", "c", "line-2"]  # each once: the cut-short line is no result
    assert results[0]["run_id"] == "earlier"
    assert "3 tasks (1 already done): done 3" in capsys.readouterr().err
    # A third run has nothing left to do.
    assert main(batch_args(srv, tasks, out)) == 0
    assert srv.consumed == 4


def results_of_lenient(path: Path) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def test_per_task_options_override_the_batch(tmp_path, scripted_server):
    srv = scripted_server(arithmetic)
    tasks = write_tasks(
        tmp_path / "tasks.jsonl",
        [{"task": "What is 1+1?", "id": "short", "options": {"max_steps": 1}}, {"task": "What is 2+2?", "id": "full"}],
    )
    out = tmp_path / "results.jsonl"
    assert main(batch_args(srv, tasks, out)) == 1  # not every task is done
    results = {r["id"]: r for r in results_of(out)}
    assert results["short"]["status"] == "max_steps" and results["short"]["run_id"]
    assert results["full"]["status"] == "done" and results["full"]["answer"] == "4"


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"task": "What is 1+1?"', {"task": "What is 2+2?"}], "line 1: not JSON"),
        ([{"id": "x"}], 'line 1: expected "task"'),
        ([{"task": "t", "id": "x"}, {"task": "u", "id": "x"}], "line 2: id 'x' is used by an earlier line"),
        ([{"task": "t", "options": {"temperature": 1}}], "unknown options ['temperature']"),
        ([{"task": "t", "options": {"strategy": "nope"}}], "unknown strategy 'nope'"),
    ],
)
def test_bad_tasks_file_is_refused_before_anything_runs(tmp_path, capsys, scripted_server, lines, message):
    srv = scripted_server(arithmetic)
    tasks, out = write_tasks(tmp_path / "tasks.jsonl", lines), tmp_path / "results.jsonl"
    assert main(batch_args(srv, tasks, out)) == 2
    assert message in capsys.readouterr().err
    assert srv.consumed == 0 and not out.exists()


def test_a_task_that_cannot_build_its_agent_is_an_error_result(tmp_path, scripted_server):
    srv = scripted_server(arithmetic)
    tasks = read_tasks(write_tasks(tmp_path / "tasks.jsonl", [{"task": "What is 1+1?", "id": "t"}]))
    log = ResultLog(tmp_path / "results.jsonl")
    config = BatchConfig(tools="no_such_tool", base_url=srv.base_url, model="scripted")
    run_batch(config, tasks, log)
    [result] = results_of(tmp_path / "results.jsonl")
    assert result["status"] == "error" and "no_such_tool" in result["error"] and result["run_id"] is None
    # An error is retried only when asked.
    assert log.pending(tasks) == [] and log.pending(tasks, retry_errors=True) == tasks


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (extra [scale])")
def test_tasks_run_as_ray_tasks(tmp_path, scripted_server):
    import ray

    srv = scripted_server(arithmetic)
    tasks = [BatchTask(str(n), n, f"What is {n}*{n}?") for n in range(1, 4)]
    log = ResultLog(tmp_path / "results.jsonl")
    config = BatchConfig(base_url=srv.base_url, model="scripted")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}},
    )
    try:
        run_batch(config, tasks, log, executor="ray")
    finally:
        ray.shutdown()
    results = {r["id"]: r for r in results_of(tmp_path / "results.jsonl")}
    assert {i: (r["status"], r["answer"]) for i, r in results.items()} == {
        "1": ("done", "1"),
        "2": ("done", "4"),
        "3": ("done", "9"),
    }
    assert srv.consumed == 6  # every task really ran, in the workers, against the server
