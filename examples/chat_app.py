"""A chat app with agentlab inside: conversations kept per session, and a typed endpoint.

    POST   /chat               {"session_id": "user-42", "message": "Hi, I'm Ada"} → {"answer", "status", ...}
    GET    /chat/{session_id}  → the session's conversation (OpenAI chat format)
    DELETE /chat/{session_id}  → forget it
    POST   /invoice            {"text": "Invoice for ACME, 3 items at 12.50, unpaid"} → an Invoice object

Each session's conversation lives in a SQLite file (`SQLiteSession`), so it survives a restart and several
worker processes can share it; the turns of one session are taken one at a time in this process (two at once
would both continue the same history). `/invoice` asks the agent for an `Invoice` (`output_type=Invoice`):
what comes back is validated, and the model repaired it first if its answer did not fit.

    pip install 'agentlab[web]'
    python examples/chat_app.py --port 8000 --store chats.db   # the embedded model, or AGENTLAB_BASE_URL/AGENTLAB_MODEL
    curl -s localhost:8000/chat -H 'content-type: application/json' -d '{"session_id": "u1", "message": "Hi, I am Ada"}'
    curl -s localhost:8000/invoice -H 'content-type: application/json' -d '{"text": "ACME, 3 items at 12.50, unpaid"}'
"""

from __future__ import annotations

import argparse
import asyncio
import re
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from agentlab import Agent, Model, SQLiteSession
from agentlab.tools.builtin import calculator

SESSION_ID = r"^[A-Za-z0-9_.:-]{1,100}$"


class ChatRequest(BaseModel):
    session_id: str = Field(pattern=SESSION_ID)
    message: str = Field(min_length=1, max_length=20_000)


class ChatResponse(BaseModel):
    answer: str | None
    status: str
    run_id: str
    error: str | None = None


class InvoiceRequest(BaseModel):
    text: str = Field(min_length=1, max_length=20_000)


class Invoice(BaseModel):
    customer: str
    total: float
    paid: bool


def default_tools() -> Sequence[Any]:
    return [calculator]


def create_app(
    model_factory: Callable[[], Model],
    store: str | Path = "chats.db",
    tools_factory: Callable[[], Sequence[Any]] = default_tools,
    *,
    max_steps: int = 8,
    max_seconds: float | None = 120.0,
) -> FastAPI:
    """The app. `model_factory` is called once per request (a shared OpenAIModel is safe to return)."""
    app = FastAPI(title="agentlab chat", summary="Chat with an agent; typed answers.")
    # One lock per session in use: a session's turns run one after another; the lock goes when no turn holds it.
    turns: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def new_agent(**options: Any) -> Agent:
        return Agent(
            model=model_factory(), tools=tools_factory(), max_steps=max_steps, max_seconds=max_seconds, **options
        )

    @app.post("/chat")
    async def chat(request: ChatRequest) -> ChatResponse:
        lock = turns.get(request.session_id) or turns.setdefault(request.session_id, asyncio.Lock())
        async with lock:
            session = SQLiteSession(store, session_id=request.session_id)
            result = await new_agent().arun(request.message, session=session)
        return ChatResponse(answer=result.answer, status=result.status, run_id=result.run_id, error=result.error)

    @app.get("/chat/{session_id}")
    async def history(session_id: str) -> list[dict[str, Any]]:
        return SQLiteSession(store, session_id=_checked(session_id)).load()

    @app.delete("/chat/{session_id}", status_code=204)
    async def forget(session_id: str) -> None:
        SQLiteSession(store, session_id=_checked(session_id)).clear()

    @app.post("/invoice")
    async def invoice(request: InvoiceRequest) -> Invoice:
        result = await new_agent(output_type=Invoice).arun(request.text)
        if result.status != "done":  # the model could not give a valid invoice within the budgets
            raise HTTPException(502, detail={"status": result.status, "error": result.error, "run_id": result.run_id})
        return result.output

    return app


def _checked(session_id: str) -> str:
    if not re.fullmatch(SESSION_ID, session_id):
        raise HTTPException(422, detail=f"a session id matches {SESSION_ID}")
    return session_id


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from agentlab.models import default_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--store", default="chats.db", help="the SQLite file that keeps the sessions")
    args = parser.parse_args(argv)
    model = default_model()  # one model for all requests: the embedded one is loaded once
    uvicorn.run(create_app(lambda: model, args.store), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
