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


def test_results_are_redacted_like_every_other_record_of_a_run(tmp_path, monkeypatch, scripted_server):
    secret = "hunter2-secret-value-0042"
    monkeypatch.setenv("AGENTLAB_API_KEY", secret)
    srv = scripted_server([{"content": f"Your key is {secret}, and mine is sk-abcdefghijklmnop."}])
    tasks, out = write_tasks(tmp_path / "tasks.jsonl", [{"task": "Echo my key", "id": "k"}]), tmp_path / "out.jsonl"
    assert main(batch_args(srv, tasks, out)) == 0
    # A task that fails to start reports an error that names the secret too.
    failing = read_tasks(write_tasks(tmp_path / "more.jsonl", [{"task": "t", "id": "e"}]))
    run_batch(
        BatchConfig(tools=f"no_such_tool_{secret}", base_url=srv.base_url, model="scripted"), failing, ResultLog(out)
    )
    text = out.read_text()
    assert secret not in text and "sk-abcdefghijklmnop" not in text
    results = {r["id"]: r for r in results_of(out)}
    assert results["k"]["answer"] == "Your key is [redacted], and mine is [redacted]."
    assert results["e"]["status"] == "error" and "[redacted]" in results["e"]["error"]


def test_trace_files_of_different_ids_never_collide_or_leave_the_folder(tmp_path, scripted_server):
    srv = scripted_server(lambda body, index: {"content": "ok"})
    ids = ["a/b", "a_b", "a b", "../../escape", ".hidden", "", "x" * 300]
    tasks = write_tasks(tmp_path / "tasks.jsonl", [{"task": "Say ok", "id": task_id} for task_id in ids])
    traces = tmp_path / "traces"
    assert main(batch_args(srv, tasks, tmp_path / "out.jsonl", "--trace-dir", str(traces))) == 0
    names = sorted(p.name for p in traces.iterdir())
    assert len(names) == len(ids) and not any(name.startswith(".") for name in names)
    assert "a_b.jsonl" in names  # a plain id keeps its own name
    assert all(len(name.encode()) < 255 for name in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "tasks.jsonl", "traces"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_steps": "x"}, "option 'max_steps' must be a whole number not below 0"),
        ({"max_steps": -3}, "option 'max_steps' must be a whole number not below 0"),
        ({"max_tokens": 2.5}, "option 'max_tokens' must be a whole number"),
        ({"max_seconds": True}, "option 'max_seconds' must be a number"),
        ({"strategy_options": [1]}, "option 'strategy_options' must be an object"),
        ({"strategy": 3}, "option 'strategy' must be a strategy name"),
        ({"instructions": ["be brief"]}, "option 'instructions' must be a string"),
    ],
)
def test_bad_option_values_are_refused_before_anything_runs(tmp_path, capsys, scripted_server, options, message):
    srv = scripted_server(arithmetic)
    lines = [{"task": "What is 1+1?", "id": "fine"}, {"task": "What is 2+2?", "options": options}]
    tasks, out = write_tasks(tmp_path / "tasks.jsonl", lines), tmp_path / "results.jsonl"
    assert main(batch_args(srv, tasks, out)) == 2
    err = capsys.readouterr().err
    assert f"line 2: {message}" in err and "Traceback" not in err
    assert srv.consumed == 0 and not out.exists()
