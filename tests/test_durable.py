"""Durable runs: the run store, approvals that wait (status `paused`), and resuming a run from its events,
over real HTTP against the scripted server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from toolbox import call, model_for

from agentlab import Agent, InMemorySession, tool
from agentlab.events import PendingCall
from agentlab.run.replay import ResumeError
from agentlab.store.runs import RunStore, RunStoreError


def two_calls(*calls: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    """A reply with several parallel tool calls, each with an id of its own."""
    return {"tool_calls": [{"id": f"c{i}", "name": n, "arguments": a} for i, (n, a) in enumerate(calls)]}


def effects_tools(log: list[str]) -> list[Any]:
    @tool(requires_approval=True)
    def delete_file(path: str) -> str:
        """Delete a file.

        Args:
            path: The file.
        """
        log.append(f"delete {path}")
        return f"deleted {path}"

    @tool
    def search(query: str) -> str:
        """Search.

        Args:
            query: What to look for.
        """
        log.append(f"search {query}")
        return f"results for {query}"

    return [delete_file, search]


def chat_requests(srv: Any) -> list[dict[str, Any]]:
    return list(srv.requests)


# --- the store ---------------------------------------------------------------------------------------


def test_store_keeps_every_event_of_a_run_in_order_and_lists_runs(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    srv = scripted_server([call("search", query="x"), {"content": "found"}])
    db = tmp_path / "runs.db"
    result = Agent(model_for(srv), tools=effects_tools(log), store=db).run("find x")

    assert result.status == "done"
    with RunStore(db) as store:
        kinds = [e["kind"] for e in store.events(result.run_id)]
        assert kinds == [e.kind for e in result.events]
        (summary,) = store.runs()
        assert (summary.run_id, summary.status, summary.steps, summary.task) == (result.run_id, "done", 2, "find x")
        assert summary.total_tokens == result.usage.total_tokens > 0
        with pytest.raises(RunStoreError, match="no run"):
            store.events("nope")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "runs.db"
    bad.write_text("not a database " * 100)
    with pytest.raises(RunStoreError, match="cannot be used as a run store"):
        RunStore(bad)


# --- approvals that wait -----------------------------------------------------------------------------


def test_a_call_needing_approval_pauses_the_run_and_resume_approves_one_and_denies_another(
    scripted_server: Any, tmp_path: Path
) -> None:
    log: list[str] = []
    srv = scripted_server(
        [
            two_calls(("delete_file", {"path": "a"}), ("search", {"query": "q"}), ("delete_file", {"path": "b"})),
            {"content": "cleaned up a, kept b"},
        ]
    )
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    paused = agent.run("clean up")

    assert paused.status == "paused"
    assert paused.pending == [
        PendingCall("c0", "delete_file", {"path": "a"}),
        PendingCall("c2", "delete_file", {"path": "b"}),
    ]
    assert log == ["search q"]  # the call that needs no approval ran; the others wait
    assert len(srv.requests) == 1

    done = agent.resume(paused.run_id, approvals={"c0": True, "c2": False})

    assert done.status == "done" and done.answer == "cleaned up a, kept b"
    assert log == ["search q", "delete a"]  # nothing ran twice, the denied call never ran
    assert len(srv.requests) == 2  # the recorded reply was replayed, not asked again
    tool_messages = {m["tool_call_id"]: m["content"] for m in srv.requests[1]["messages"] if m["role"] == "tool"}
    assert tool_messages["c0"] == "deleted a" and tool_messages["c1"] == "results for q"
    assert tool_messages["c2"].startswith("Denied: the user did not approve")
    assert done.run_id == paused.run_id and done.pending == []
    assert [e.kind for e in done.events].count("run_started") == 1
    with RunStore(tmp_path / "runs.db") as store:
        kinds = [e["kind"] for e in store.events(paused.run_id)]
    assert kinds.count("tool_started") == 3 and kinds.count("model_call") == 2
    assert kinds.index("paused") < kinds.index("resumed") < len(kinds) - 1 and kinds[-1] == "run_finished"


def test_a_call_left_out_of_the_approvals_keeps_waiting(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    srv = scripted_server(
        [two_calls(("delete_file", {"path": "a"}), ("delete_file", {"path": "b"})), {"content": "ok"}]
    )
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    first = agent.run("clean up")
    second = agent.resume(first.run_id, approvals={"c0": True})

    assert second.status == "paused" and second.pending == [PendingCall("c1", "delete_file", {"path": "b"})]
    assert log == ["delete a"]
    third = agent.resume(first.run_id, approvals={"c1": True})
    assert third.status == "done" and log == ["delete a", "delete b"] and len(srv.requests) == 2


def test_only_true_approves_and_an_unknown_call_id_is_refused(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    paused = agent.run("clean up")

    with pytest.raises(TypeError, match="approve with True"):
        agent.resume(paused.run_id, approvals={"c0": "false"})  # as a web form would send it
    with pytest.raises(ResumeError, match="no tool call 'c9'"):
        agent.resume(paused.run_id, approvals={"c9": True})
    assert log == [] and len(srv.requests) == 1
    # Neither refusal touched the run: it still waits, and a real decision goes on with it.
    assert agent.resume(paused.run_id, approvals={"c0": True}).status == "done" and log == ["delete a"]


def test_an_approve_callback_answering_no_bool_denies(scripted_server: Any) -> None:
    log: list[str] = []
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    result = Agent(model_for(srv), tools=effects_tools(log), approve=lambda name, arguments: "deny").run("clean up")

    denied = next(e for e in result.events if e.kind == "tool_result")
    assert result.status == "done" and log == [] and not denied.ok
    assert "Denied" in denied.output and "approve with True" in denied.output


def test_an_async_approve_callback_decides_without_pausing(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    asked: list[dict[str, Any]] = []

    async def approve(name: str, arguments: dict[str, Any]) -> bool:
        await asyncio.sleep(0)
        asked.append(arguments)
        return arguments["path"] == "a"

    srv = scripted_server(
        [two_calls(("delete_file", {"path": "a"}), ("delete_file", {"path": "b"})), {"content": "ok"}]
    )
    result = Agent(model_for(srv), tools=effects_tools(log), approve=approve).run("clean up")

    assert result.status == "done" and log == ["delete a"] and asked == [{"path": "a"}, {"path": "b"}]


def test_resume_refuses_a_finished_run_an_unknown_one_and_an_agent_without_store(
    scripted_server: Any, tmp_path: Path
) -> None:
    srv = scripted_server([{"content": "done"}])
    agent = Agent(model_for(srv), store=tmp_path / "runs.db")
    finished = agent.run("hi")
    with pytest.raises(ResumeError, match="already ended"):
        agent.resume(finished.run_id)
    with pytest.raises(RunStoreError, match="no run"):
        agent.resume("unknown")
    with pytest.raises(ValueError, match="store="):
        Agent(model_for(srv)).resume(finished.run_id)


def test_resume_with_another_strategy_is_refused(scripted_server: Any, tmp_path: Path) -> None:
    srv = scripted_server([two_calls(("delete_file", {"path": "a"}))])
    db = tmp_path / "runs.db"
    paused = Agent(model_for(srv), tools=effects_tools([]), store=db).run("x")
    with pytest.raises(ResumeError, match="strategy"):
        Agent(model_for(srv), tools=effects_tools([]), store=db, strategy="pal").resume(paused.run_id)


def test_resume_with_other_tools_is_refused_and_the_run_still_waits(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    db = tmp_path / "runs.db"
    paused = Agent(model_for(srv), tools=effects_tools(log), store=db).run("x")
    without_delete = [t for t in effects_tools(log) if t.name != "delete_file"]
    with pytest.raises(ResumeError, match="had the tools delete_file, search, this agent search"):
        Agent(model_for(srv), tools=without_delete, store=db).resume(paused.run_id, approvals={"c0": True})
    resumed = Agent(model_for(srv), tools=effects_tools(log), store=db).resume(paused.run_id, approvals={"c0": True})
    assert resumed.status == "done" and log == ["delete a"]


# --- resume after a crash ----------------------------------------------------------------------------


def interrupted_store(tmp_path: Path, srv: Any, tools: list[Any]) -> tuple[Path, str]:
    """A run whose record stops after a tool call started (as if the process died inside the tool)."""
    db = tmp_path / "runs.db"
    result = Agent(model_for(srv), tools=tools, store=db).run("look")
    with RunStore(db) as store:
        rows = store.events(result.run_id)
    cut = next(i for i, row in enumerate(rows) if row["kind"] == "tool_started") + 1
    crashed = tmp_path / "crashed.db"
    with RunStore(crashed) as store:
        for row in rows[:cut]:
            store.append(row)
    return crashed, result.run_id


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_call_that_started_without_a_result_runs_again_only_when_idempotent(
    scripted_server: Any, tmp_path: Path, idempotent: bool
) -> None:
    log: list[str] = []

    @tool(idempotent=idempotent)
    def lookup(key: str) -> str:
        """Look a key up.

        Args:
            key: The key.
        """
        log.append(key)
        return f"value of {key}"

    srv = scripted_server([call("lookup", key="k"), {"content": "first"}, {"content": "resumed"}])
    db, run_id = interrupted_store(tmp_path, srv, [lookup])
    log.clear()

    result = Agent(model_for(srv), tools=[lookup], store=db).resume(run_id)

    assert result.status == "done" and result.answer == "resumed"
    assert log == (["k"] if idempotent else [])
    sent = next(m for m in srv.requests[-1]["messages"] if m["role"] == "tool")["content"]
    assert (sent == "value of k") if idempotent else sent.startswith("Interrupted:")
    assert len(srv.requests) == 3  # the first reply came from the record


def test_the_trace_of_a_resumed_run_is_one_run_with_its_messages(scripted_server: Any, tmp_path: Path) -> None:
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    agent = Agent(model_for(srv), tools=effects_tools([]), store=tmp_path / "runs.db")
    done = agent.resume(agent.run("clean").run_id, approvals={"c0": True})
    roles = [m["role"] for m in done.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert json.dumps(done.trace)  # JSON-ready


# --- a web app: the run pauses in one request and goes on in another ---------------------------------


class Decisions(BaseModel):
    """A person's decisions on a paused run's calls, by call id."""

    approve: list[str] = []
    deny: list[str] = []


def test_a_web_endpoint_returns_paused_and_a_second_request_decides(scripted_server: Any, tmp_path: Path) -> None:
    pytest.importorskip("fastapi", reason="the web extra is not installed")
    uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed")
    import socket
    import threading
    import time
    import urllib.request

    from fastapi import FastAPI

    log: list[str] = []
    srv = scripted_server(
        [two_calls(("delete_file", {"path": "a"}), ("delete_file", {"path": "b"})), {"content": "deleted a only"}]
    )
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    app = FastAPI()

    def reply(result: Any) -> dict[str, Any]:
        pending = [{"id": p.id, "name": p.name, "arguments": p.arguments} for p in result.pending]
        return {"run_id": result.run_id, "status": result.status, "answer": result.answer, "pending": pending}

    @app.post("/runs")
    async def start(task: dict[str, str]) -> dict[str, Any]:
        return reply(await agent.arun(task["task"]))

    @app.post("/runs/{run_id}/decisions")
    async def decide(run_id: str, decisions: Decisions) -> dict[str, Any]:
        approvals = {**dict.fromkeys(decisions.approve, True), **dict.fromkeys(decisions.deny, False)}
        return reply(await agent.aresume(run_id, approvals))

    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive()
        time.sleep(0.02)
    base = f"http://127.0.0.1:{listener.getsockname()[1]}"

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    try:
        paused = post("/runs", {"task": "clean up"})
        assert paused["status"] == "paused" and log == []
        assert [(p["id"], p["arguments"]) for p in paused["pending"]] == [("c0", {"path": "a"}), ("c1", {"path": "b"})]
        done = post(f"/runs/{paused['run_id']}/decisions", {"approve": ["c0"], "deny": ["c1"]})
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()

    assert done == {"run_id": paused["run_id"], "status": "done", "answer": "deleted a only", "pending": []}
    assert log == ["delete a"]


def test_the_trace_viewer_marks_where_a_run_paused_and_where_it_resumed(scripted_server: Any, tmp_path: Path) -> None:
    from agentlab.viewer import write_html

    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    trace = tmp_path / "trace.jsonl"
    agent = Agent(model_for(srv), tools=effects_tools([]), store=tmp_path / "runs.db", trace=trace)
    agent.resume(agent.run("clean").run_id, approvals={"c0": False})
    write_html(trace, tmp_path / "trace.html")
    html = (tmp_path / "trace.html").read_text()

    assert 'class="ev paused"' in html and "delete_file (id c0)" in html
    assert 'class="ev resumed"' in html and "c0: denied" in html
    assert html.count('class="run"') == 1  # one run, paused and resumed, not two


def test_two_resumes_of_one_pause_at_once_run_the_approved_call_once(scripted_server: Any, tmp_path: Path) -> None:
    ran: list[int] = []

    @tool(requires_approval=True)
    async def transfer(amount: int) -> str:
        """Transfer money.

        Args:
            amount: How much.
        """
        ran.append(amount)
        await asyncio.sleep(0.1)
        return f"sent {amount}"

    srv = scripted_server([two_calls(("transfer", {"amount": 100})), {"content": "paid"}, {"content": "paid"}])
    paused = Agent(model_for(srv), tools=[transfer], store=tmp_path / "runs.db").run("pay")

    async def twice() -> list[Any]:
        agents = [Agent(model_for(srv), tools=[transfer], store=tmp_path / "runs.db") for _ in range(2)]
        resumes = [agent.aresume(paused.run_id, {"c0": True}) for agent in agents]
        return await asyncio.gather(*resumes, return_exceptions=True)

    outcomes = asyncio.run(twice())
    refused = [o for o in outcomes if isinstance(o, ResumeError)]
    finished = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(refused) == 1 and "already going on" in str(refused[0])
    assert [r.status for r in finished] == ["done"] and ran == [100] and len(srv.requests) == 2


def test_a_run_claimed_by_another_process_waits_until_that_process_dies(scripted_server: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    log: list[str] = []
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "ok"}])
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    paused = agent.run("clean up")
    # Another process going on with the run (another worker resuming it), then killed mid-way (kill -9).
    holder = (
        "import sys; from agentlab.store.runs import RunStore\n"
        "claim = RunStore(sys.argv[1]).claim(sys.argv[2]); print(claim is not None, flush=True); sys.stdin.read()"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", holder, str(tmp_path / "runs.db"), paused.run_id],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "True"
        with pytest.raises(ResumeError, match="already going on"):
            agent.resume(paused.run_id, approvals={"c0": True})
        assert log == []
    finally:
        worker.kill()
        worker.wait()

    assert agent.resume(paused.run_id, approvals={"c0": True}).status == "done" and log == ["delete a"]


def test_a_paused_turn_goes_into_the_session_when_the_resumed_run_ends(scripted_server: Any, tmp_path: Path) -> None:
    log: list[str] = []
    srv = scripted_server([two_calls(("delete_file", {"path": "a"})), {"content": "I deleted a"}, {"content": "b?"}])
    agent = Agent(model_for(srv), tools=effects_tools(log), store=tmp_path / "runs.db")
    session = InMemorySession()
    paused = agent.run("delete a", session=session)
    assert paused.status == "paused" and session.load() == []  # no made-up result for the waiting call

    agent.resume(paused.run_id, approvals={"c0": True}, session=session)
    turn = session.load()
    assert [m["role"] for m in turn] == ["user", "assistant", "tool", "assistant"]
    assert turn[2]["content"] == "deleted a" and turn[-1]["content"] == "I deleted a"
    agent.run("and b?", session=session)
    assert srv.requests[-1]["messages"][1:] == [*turn, {"role": "user", "content": "and b?"}]
