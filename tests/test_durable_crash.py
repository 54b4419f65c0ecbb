"""Resume after kill -9: a ReAct run in a child process is killed with SIGKILL after its third tool result,
then resumed in another process; the scripted server's request log and the tool's own call log show that
no completed model request and no tool call was repeated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

from agentlab.store.runs import RunStore, RunStoreError
from agentlab.testing import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]
CALLS = 5

CHILD = textwrap.dedent(
    """
    import json, sys
    from agentlab import Agent, tool
    from agentlab.models import OpenAIModel

    url, db, calls_log, mode = sys.argv[1:5]

    @tool
    def record(n: int) -> str:
        '''Record a number (the test's own log of calls).

        Args:
            n: The number.
        '''
        with open(calls_log, "a") as log:
            log.write(f"{n}\\n")
        return f"recorded {n}"

    agent = Agent(OpenAIModel(base_url=url, model="scripted", api_key="test"), tools=[record], store=db, max_steps=20)
    if mode == "run":
        result = agent.run("record five numbers")
    else:
        result = agent.resume(mode)
    print(json.dumps({"status": result.status, "answer": result.answer, "run_id": result.run_id}))
    """
)


def tool_results_in(request: dict[str, Any]) -> int:
    return sum(1 for m in request["messages"] if m["role"] == "tool")


def make_script() -> Any:
    delayed: set[int] = set()

    def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
        done = tool_results_in(body)
        if done >= CALLS:
            return {"content": "recorded all five"}
        item: dict[str, Any] = {"tool_calls": [{"name": "record", "arguments": {"n": done + 1}}]}
        if done == 3 and done not in delayed:  # the first ask after the third result hangs: the kill lands here
            delayed.add(done)
            item["delay"] = 60
        return item

    return reply


def child(url: str, db: Path, calls_log: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, str(db), str(calls_log), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def wait_for_tool_results(db: Path, count: int, process: subprocess.Popen[str]) -> str:
    """The run id once the store holds `count` tool results (polling another process's WAL file)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if db.exists():
            try:
                with RunStore(db) as store:
                    for run in store.runs():
                        if [e["kind"] for e in store.events(run.run_id)].count("tool_result") >= count:
                            return run.run_id
            except RunStoreError:
                pass
        time.sleep(0.05)
    raise AssertionError("the child never reached its third tool result")


def test_a_run_killed_with_sigkill_resumes_in_another_process_without_repeating_anything(tmp_path: Path) -> None:
    db, calls_log = tmp_path / "runs.db", tmp_path / "calls.log"
    with ScriptedServer(make_script()) as server:
        first = child(server.base_url, db, calls_log, "run")
        try:
            run_id = wait_for_tool_results(db, 3, first)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=30)
        finally:
            if first.poll() is None:
                first.kill()
        assert first.returncode == -signal.SIGKILL
        assert calls_log.read_text().split() == ["1", "2", "3"]

        second = child(server.base_url, db, calls_log, run_id)
        out, err = second.communicate(timeout=180)
        assert second.returncode == 0, err
        result = json.loads(out.strip().splitlines()[-1])
        asked = [tool_results_in(request) for request in server.requests]

    assert result == {"status": "done", "answer": "recorded all five", "run_id": run_id}
    assert calls_log.read_text().split() == ["1", "2", "3", "4", "5"]  # every tool call ran exactly once
    # Each completed request was asked once; only the one the kill interrupted (after 3 results) may be asked
    # again, by the resumed process.
    assert asked in ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 3, 4, 5])
    with RunStore(db) as store:
        kinds = [e["kind"] for e in store.events(run_id)]
        assert kinds.count("run_started") == 1 and kinds.count("resumed") == 1
        assert kinds.count("tool_result") == CALLS and kinds[-1] == "run_finished"
        assert store.run(run_id).status == "done"
