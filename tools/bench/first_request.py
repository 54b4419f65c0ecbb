"""The first request each strategy sends, with one tool, in native-tools mode: its size as the scripted server
received it (the request body re-encoded as compact JSON, so the figure does not depend on how the client
spaces its JSON), and what it is made of."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tools.bench.episode import MODEL, add

STRATEGIES: tuple[str, ...] = ("react", "pal", "codeact", "critic", "camel", "babyagi")
TASK = "What is 2 + 3?"


@dataclass
class FirstRequest:
    strategy: str
    body: dict[str, Any] | None
    problem: str | None = None

    @property
    def size(self) -> int:
        return len(compact(self.body)) if self.body is not None else 0

    def part(self, name: str) -> int:
        if self.body is None:
            return 0
        if name == "tools":
            return len(compact(self.body.get("tools", [])))
        return sum(len(m.get("content") or "") for m in self.body["messages"] if m.get("role") == name)


def compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def measure(strategies: tuple[str, ...] = STRATEGIES) -> list[FirstRequest]:
    from agentlab import Agent
    from agentlab.models import OpenAIModel
    from agentlab.testing import ScriptedServer

    rows = []
    for name in strategies:
        # Every reply is a plain-text answer: only the first request matters here.
        with ScriptedServer(lambda body, index: {"content": "5"}) as server:
            model = OpenAIModel(model=MODEL, base_url=server.base_url, api_key="unused")
            agent = Agent(model=model, tools=[add], strategy=name, max_steps=3)
            result = agent.run(TASK)
            body = server.requests[0] if server.requests else None
            problem = None if body is not None else f"no request (status {result.status}: {result.error})"
            rows.append(FirstRequest(name, body, problem))
    return rows


def table(rows: list[FirstRequest]) -> list[str]:
    lines = [
        f"First request with one tool (`add`), native tools, task {TASK!r}; characters of compact JSON",
        "",
        "| strategy | request chars | system chars | user chars | tools chars | tools | tool_choice |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        if row.body is None:
            lines.append(f"| {row.strategy} | – | – | – | – | {row.problem} | |")
            continue
        names = ", ".join(t["function"]["name"] for t in row.body.get("tools", [])) or "none"
        choice = row.body.get("tool_choice", "")
        choice = choice if isinstance(choice, str) else compact(choice)
        lines.append(
            f"| {row.strategy} | {row.size} | {row.part('system')} | {row.part('user')} | {row.part('tools')} "
            f"| {names} | {choice} |"
        )
    return lines


def summary(rows: list[FirstRequest]) -> str:
    sizes = ", ".join(f"{row.strategy} {row.size}" for row in rows)
    return f"first-request: {sizes} characters (react target <= 600)"


def show(rows: list[FirstRequest], strategy: str) -> str:
    """One strategy's first request in full, pretty-printed."""
    row = next(row for row in rows if row.strategy == strategy)
    return json.dumps(row.body, indent=2, ensure_ascii=False)
