"""The README's "Embedding in apps" example, run as written (doctest-style) against the scripted server: the
model comes from AGENTLAB_BASE_URL/AGENTLAB_MODEL, and the test supplies the `Deps` and `db` the example uses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from toolbox import call

from agentlab.testing import ScriptedServer

README = Path(__file__).resolve().parents[1] / "README.md"


def embedding_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Embedding in apps", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 1, "the section has one python example"
    return blocks[0]


class CustomerDb:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def find(self, name: str) -> str:
        self.asked.append(name)
        return {"ACME": "ACME Corp"}.get(name, "nobody")


@dataclass
class Deps:
    db: CustomerDb


def model(body: dict[str, Any], index: int) -> dict[str, Any]:
    """Each agent of the example, told apart by its tools and instructions; every answer is drawn from what
    the request carries (a tool's result, an earlier turn), so a lost turn or result gives a wrong answer."""
    messages = body["messages"]
    tools = {t["function"]["name"]: t["function"] for t in body.get("tools", [])}
    results = [m["content"] for m in messages if m["role"] == "tool"]
    *earlier, task = [m["content"] for m in messages if m["role"] == "user"]
    final = tools.get("final_answer", {}).get("parameters", {}).get("properties", {})

    def answer(text: str) -> dict[str, Any]:
        # A plain-text agent is offered no final_answer tool in native mode: its answer is plain text.
        return call("final_answer", answer=text) if final else {"content": text}

    if "customer" in final:  # the invoice agent
        if task.startswith("Now mark it paid"):
            invoice = json.loads(
                next(m["content"] for m in messages if m["role"] == "assistant" and not m.get("tool_calls"))
            )
            return call("final_answer", **{**invoice, "paid": True})
        if not results:
            return call("lookup_customer", name="ACME")
        return call("final_answer", customer=results[-1], total=37.5, paid=False)
    if "research" in tools:  # the writer
        return call("research", input="ACME") if not results else answer(f"Report: {results[-1]}")
    if "You research." in messages[0]["content"]:
        return call("lookup_customer", name="ACME") if not results else answer(results[-1])
    names = re.findall(r"I'm (\w+)", " ".join(earlier))  # the chat agent
    return answer(names[-1] if task.startswith("What's my name") and names else "Hello!")


def test_the_readme_embedding_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the example writes chats.db
    db = CustomerDb()
    namespace: dict[str, Any] = {"Deps": Deps, "db": db, "__name__": "readme_example"}
    with ScriptedServer(model) as srv:
        monkeypatch.setenv("AGENTLAB_BASE_URL", srv.base_url)
        monkeypatch.setenv("AGENTLAB_MODEL", "scripted")
        monkeypatch.setenv("AGENTLAB_API_KEY", "test")
        exec(compile(embedding_example(), str(README), "exec"), namespace)
        assert not srv.failures
    r, r2, session, report = namespace["r"], namespace["r2"], namespace["session"], namespace["report"]
    Invoice = namespace["Invoice"]
    assert r.output == Invoice(customer="ACME Corp", total=37.5, paid=False)
    assert json.loads(r.answer) == r.output.model_dump()
    assert json.loads(json.dumps(r.messages)) == r.messages and r.messages[-1]["role"] == "assistant"
    assert r2.output == Invoice(customer="ACME Corp", total=37.5, paid=True)  # from the earlier turn
    assert [m["content"] for m in session.load() if m["role"] == "assistant"] == ["Hello!", "Ada"]
    assert report.answer == "Report: ACME Corp" and db.asked == ["ACME", "ACME"]
    assert any(e.parent_run_id == report.run_id and e.kind == "run_finished" for e in report.events)
    assert (tmp_path / "chats.db").exists()
