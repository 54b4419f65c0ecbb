"""examples/chat_app.py through FastAPI's TestClient, with the scripted server as the model over real HTTP:
sessions that keep a chat (also across an app restart), and the typed /invoice endpoint."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the web extra is not installed")

from fastapi.testclient import TestClient
from toolbox import call, model_for

from agentlab.testing import ScriptedServer

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "chat_app.py"


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("chat_app", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chat_app = load_example()


@contextmanager
def client(srv: ScriptedServer, store: Path) -> Iterator[TestClient]:
    model = model_for(srv)  # one model (and connection pool) for the app's requests
    with TestClient(chat_app.create_app(lambda: model, store)) as test_client:
        yield test_client


def recalling(body: dict[str, Any], index: int) -> dict[str, Any]:
    """Answers "what is my X?" from the earlier user turns in the request; anything else is noted."""
    *earlier, question = [m["content"] for m in body["messages"] if m["role"] == "user"]
    facts = dict(re.findall(r"[Mm]y (\w+) is (\w+)", " ".join(earlier)))
    asked = re.search(r"what is my (\w+)\?", question, re.IGNORECASE)
    return call("final_answer", answer=facts.get(asked.group(1), "unknown") if asked else "Noted.")


def say(test_client: TestClient, session_id: str, message: str) -> str:
    response = test_client.post("/chat", json={"session_id": session_id, "message": message})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "done" and body["run_id"]
    return body["answer"]


def test_sessions_keep_their_chats_apart_and_across_a_restart(tmp_path: Path) -> None:
    store = tmp_path / "chats.db"
    with ScriptedServer(recalling) as srv:
        with client(srv, store) as app:
            assert say(app, "ada", "My name is Ada.") == "Noted."
            assert say(app, "bob", "My name is Bob.") == "Noted."
            assert say(app, "ada", "What is my name?") == "Ada"
            assert say(app, "bob", "What is my name?") == "Bob"
        with client(srv, store) as app:  # a new app on the same file: the chat goes on
            assert say(app, "ada", "My city is Paris.") == "Noted."
            assert say(app, "ada", "What is my city?") == "Paris"
            history = app.get("/chat/ada").json()
            assert [m["content"] for m in history if m["role"] == "user"] == [
                "My name is Ada.",
                "What is my name?",
                "My city is Paris.",
                "What is my city?",
            ]
            assert app.delete("/chat/ada").status_code == 204
            assert app.get("/chat/ada").json() == []
            assert say(app, "ada", "What is my name?") == "unknown"


def test_bad_requests_are_clear_422s_and_store_nothing(tmp_path: Path) -> None:
    with ScriptedServer([]) as srv, client(srv, tmp_path / "chats.db") as app:
        assert app.post("/chat", json={"session_id": "ada", "message": ""}).status_code == 422
        assert app.post("/chat", json={"session_id": "no spaces", "message": "hi"}).status_code == 422
        assert app.get("/chat/bad%20id").status_code == 422
        assert app.get("/chat/ada").json() == []
        assert srv.requests == []


def test_invoice_endpoint_returns_a_validated_object_after_a_repair(tmp_path: Path) -> None:
    script = [
        call("final_answer", customer="ACME", total="3 x 12.50", paid=False),  # not a number: repaired
        call("final_answer", customer="ACME", total=37.5, paid=False),
    ]
    with ScriptedServer(script) as srv, client(srv, tmp_path / "chats.db") as app:
        response = app.post("/invoice", json={"text": "Invoice for ACME, 3 items at 12.50, unpaid"})
        final_tool = next(t for t in srv.requests[0]["tools"] if t["function"]["name"] == "final_answer")
    assert response.status_code == 200, response.text
    assert response.json() == {"customer": "ACME", "total": 37.5, "paid": False}
    assert set(final_tool["function"]["parameters"]["properties"]) == {"customer", "total", "paid"}


def test_an_invoice_the_model_cannot_give_is_a_502_with_the_reason(tmp_path: Path) -> None:
    bad = call("final_answer", customer="ACME", total="lots", paid=False)
    with ScriptedServer([bad, bad, bad]) as srv, client(srv, tmp_path / "chats.db") as app:
        response = app.post("/invoice", json={"text": "Invoice for ACME"})
    assert response.status_code == 502
    detail = response.json()["detail"]
    assert detail["status"] == "error" and "output type" in detail["error"] and detail["run_id"]
