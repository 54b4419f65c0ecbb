"""Embedding agentlab in a web app: a FastAPI service that runs one agent per request.

    POST /run     {"task": "..."}  → the run's result as JSON (answer, status, steps, usage, duration, error)
    POST /stream  {"task": "...", "deltas": true}
                                   → the run's events as Server-Sent Events as they happen:
                                     `event: <kind>` and `data: <the event as JSON>`, ending with run_finished;
                                     with "deltas": true the model's text, tool-call pieces and the
                                     typed output so far arrive as they are generated (docs/streaming.md)
    GET  /chat                     → a small chat page (examples/static/chat.html) that shows the stream live

Every request builds its own Agent (and asks `model_factory` for a model), so concurrent requests share
nothing mutable; the app holds only its factories. Runs use `arun`/`astream` on the server's event loop,
so one process serves many requests at once while they wait on the model.

    pip install 'agentlab[web]'
    python examples/embed_fastapi.py --port 8000          # the embedded model, or AGENTLAB_BASE_URL/AGENTLAB_MODEL
    curl -s localhost:8000/run -H 'content-type: application/json' -d '{"task": "What is 17 * 23?"}'
    curl -sN localhost:8000/stream -H 'content-type: application/json' -d '{"task": "What is 17 * 23?"}'
    open http://localhost:8000/chat
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field, field_validator

from agentlab import Agent, Model
from agentlab import events as ev
from agentlab.tools.builtin import calculator


class RunRequest(BaseModel):
    task: str = Field(min_length=1, max_length=20_000)
    strategy: str = "react"
    max_steps: int = Field(default=8, ge=1, le=50)
    deltas: bool = False  # /stream only: also the pieces of replies as they arrive

    @field_validator("strategy")
    @classmethod
    def known_strategy(cls, name: str) -> str:
        from agentlab.strategies import STRATEGIES

        if name not in STRATEGIES:  # a clear 422 for the caller instead of a failed run
            raise ValueError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}")
        return name


class RunResponse(BaseModel):
    answer: str | None
    status: str
    steps: int
    prompt_tokens: int
    completion_tokens: int
    duration: float
    error: str | None = None


CHAT_PAGE = Path(__file__).resolve().parent / "static" / "chat.html"


def default_tools() -> Sequence[Any]:
    return [calculator]


def create_app(
    model_factory: Callable[[], Model],
    tools_factory: Callable[[], Sequence[Any]] = default_tools,
    *,
    max_seconds: float | None = 120.0,
    output_type: Any = str,
) -> FastAPI:
    """The app. `model_factory` is called once per request: return a fresh model, or a shared one whose
    client is safe to use concurrently (OpenAIModel is). `output_type` is the agents' typed output."""
    app = FastAPI(title="agentlab", summary="Tool-using agents over HTTP.")

    def new_agent(request: RunRequest) -> Agent:
        return Agent(
            model=model_factory(),
            tools=tools_factory(),
            strategy=request.strategy,
            max_steps=request.max_steps,
            max_seconds=max_seconds,
            output_type=output_type,
        )

    @app.post("/run")
    async def run(request: RunRequest) -> RunResponse:
        result = await new_agent(request).arun(request.task)
        return RunResponse(
            answer=result.answer,
            status=result.status,
            steps=result.steps,
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            duration=result.duration,
            error=result.error,
        )

    @app.post("/stream")
    async def stream(request: RunRequest) -> StreamingResponse:
        agent = new_agent(request)

        async def events() -> AsyncIterator[str]:
            # If the client goes away, Starlette cancels this generator and the run stops with it.
            async for event in agent.astream(request.task, deltas=request.deltas):
                yield sse(event)

        # X-Accel-Buffering: proxies such as nginx would otherwise hold events back until the run ends.
        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)

    @app.get("/chat", response_class=HTMLResponse)
    async def chat() -> HTMLResponse:
        return HTMLResponse(CHAT_PAGE.read_text(encoding="utf-8"))

    return app


def sse(event: ev.Event) -> str:
    """One Server-Sent Event: the event kind names it, its data is the event as one line of JSON."""
    return f"event: {event.kind}\ndata: {json.dumps(event.to_dict(), ensure_ascii=False, default=str)}\n\n"


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from agentlab.models import default_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    model = default_model()  # one model for all requests: the embedded one is loaded once
    uvicorn.run(create_app(lambda: model), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
