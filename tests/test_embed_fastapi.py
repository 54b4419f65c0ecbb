"""The FastAPI embedding example over real HTTP: uvicorn on 127.0.0.1, the scripted server as the model,
many concurrent requests in one process, and the SSE stream of a run's events."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the web extra is not installed")
httpx2 = pytest.importorskip("httpx2")

from toolbox import model_for  # noqa: E402

from agentlab import tool  # noqa: E402
from agentlab.testing import ScriptedServer  # noqa: E402
from agentlab.tools.builtin import calculator  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "embed_fastapi.py"
CONCURRENT = 20


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("embed_fastapi", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()


def reply(body: dict[str, Any], index: int) -> dict[str, Any]:
    """The model: square the number in the task with the calculator (meeting the others first if it can),
    then answer from the tool results it got back, so a mixed-up conversation gives a wrong answer."""
    messages = body["messages"]
    task = next(m["content"] for m in messages if m["role"] == "user")
    number = int(re.search(r"\d+", task).group())  # type: ignore[union-attr]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if not results:
        calls = [{"name": "calculator", "arguments": {"expression": f"{number} * {number}"}}]
        if any(t["function"]["name"] == "meet" for t in body.get("tools", [])):
            calls.append({"name": "meet", "arguments": {}})
        return {"content": f"Squaring {number}.", "tool_calls": calls}
    return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": f"{number}^2 = {' '.join(results)}"}}]}


class Meeting:
    """A tool that returns only once `size` runs are inside it at the same time: proof that the app
    serves the requests concurrently, without measuring time."""

    def __init__(self, size: int) -> None:
        self.size, self.arrived = size, 0
        self.everyone: asyncio.Event | None = None

    async def meet(self) -> str:
        """Wait for the other runs."""
        self.everyone = self.everyone or asyncio.Event()
        self.arrived += 1
        if self.arrived >= self.size:
            self.everyone.set()
        await asyncio.wait_for(self.everyone.wait(), 20)
        return f"(met {self.size})"


def model_factory(srv: ScriptedServer) -> Any:
    return lambda: model_for(srv)


async def test_concurrent_runs_each_get_their_own_answer():
    example = load_example()
    meeting = Meeting(CONCURRENT)
    meet = tool(name="meet")(meeting.meet)
    with ScriptedServer(reply, latency=0.05) as srv:
        app = example.create_app(model_factory(srv), tools_factory=lambda: [calculator, meet])
        with serve(app) as url:
            async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
                responses = await asyncio.gather(
                    *(client.post("/run", json={"task": f"What is {n} squared?"}) for n in range(1, CONCURRENT + 1))
                )
    for n, response in enumerate(responses, start=1):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "done" and body["steps"] == 2
        assert body["answer"] == f"{n}^2 = {n * n} (met {CONCURRENT})"
    assert not srv.failures


async def test_bad_requests_are_rejected_clearly():
    example = load_example()
    with ScriptedServer(reply) as srv, serve(example.create_app(model_factory(srv))) as url:
        async with httpx2.AsyncClient(base_url=url, timeout=30) as client:
            empty = await client.post("/run", json={"task": ""})
            unknown = await client.post("/stream", json={"task": "What is 2 squared?", "strategy": "nope"})
    assert empty.status_code == 422
    assert unknown.status_code == 422 and "unknown strategy 'nope'" in unknown.text
    assert srv.consumed == 0


async def read_sse(client: Any, task: str) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    name, data = None, None
    async with client.stream("POST", "/stream", json={"task": task}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                data = json.loads(line[len("data: ") :])
            elif line == "" and name is not None:
                events.append((name, data))  # type: ignore[arg-type]
                name, data = None, None
    return events


async def test_sse_streams_each_runs_events_in_order():
    example = load_example()
    with ScriptedServer(reply, latency=0.05) as srv, serve(example.create_app(model_factory(srv))) as url:
        async with httpx2.AsyncClient(base_url=url, timeout=60) as client:
            streams = await asyncio.gather(*(read_sse(client, f"What is {n} squared?") for n in (3, 4, 5)))
    expected = [
        "run_started",
        "model_call",
        "decision",
        "tool_started",
        "tool_result",
        "model_call",
        "decision",
        "final",
        "run_finished",
    ]
    for n, events in zip((3, 4, 5), streams, strict=True):
        assert [name for name, _ in events] == expected
        assert all(data["kind"] == name for name, data in events)
        assert events[0][1]["task"] == f"What is {n} squared?"
        assert events[2][1]["thought"] == f"Squaring {n}."
        assert events[4][1]["output"] == str(n * n)
        assert events[-1][1]["status"] == "done" and events[-1][1]["answer"] == f"{n}^2 = {n * n}"
        times = [data["time"] for _, data in events]
        assert times == sorted(times)
