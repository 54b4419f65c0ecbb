"""Integration against llama-cpp-python's own OpenAI-compatible server serving the embedded GGUF: a real,
quirky peer (it rejects OpenAI's `json_schema` response format and never shows `tool` messages to the
model with chatml-function-calling), spoken to through `OpenAIModel`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel
from toolbox import add

from agentlab import Agent, OpenAIModel, RunContext, tool
from agentlab import events as ev
from agentlab.run.conversation import as_text_turns

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(local_model, tmp_path_factory) -> Iterator[str]:
    pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
    port = free_port()
    log = (tmp_path_factory.mktemp("llama") / "server.log").open("w+")  # a file: a full pipe would block it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(local_model.model_path),
            "--chat_format",
            "chatml-function-calling",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "4096",
            "--model_alias",
            "smollm2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OPENAI_API_KEY": ""},
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base_url}/models", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"llama_cpp.server did not start: {log.read()[-2000:]}") from None
                time.sleep(0.5)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


async def test_probing_finds_what_the_server_really_supports(llama_server):
    caps = await OpenAIModel(model="smollm2", base_url=llama_server, api_key="none").capabilities()
    # Its tool results never reach the model, so native tools are refused; its own response_format dialect
    # (json_object + schema) constrains output with a grammar.
    assert caps.native_tools is False
    assert (caps.json_schema, caps.schema_dialect) == (True, "json_object")
    assert caps.best_format() == "json_schema"


def test_agent_completes_a_tool_using_task_through_the_server(llama_server):
    model = OpenAIModel(model="smollm2", base_url=llama_server, api_key="none")
    result = Agent(model=model, tools=[add], max_steps=4).run("What is 2 + 3? Use the add tool.")
    kinds = [e.kind for e in result.events]
    assert result.status == "done", result.error
    assert "parse_error" not in kinds
    results = [e for e in result.events if isinstance(e, ev.ToolResult)]
    assert results and all(r.call.name == "add" and r.ok for r in results)
    assert result.usage.prompt_tokens > 0  # usage is accounted from the server's replies


def server_model(base_url: str) -> OpenAIModel:
    return OpenAIModel(model="smollm2", base_url=base_url, api_key="none")


class Invoice(BaseModel):
    customer: str
    total: float
    paid: bool


def test_a_pydantic_output_parses_through_the_server(llama_server):
    # The probe picks the server's json_object+schema dialect, so the final action is grammar-constrained.
    result = Agent(model=server_model(llama_server), output_type=Invoice, max_steps=2).run(
        "Invoice for ACME: 3 items at 12.50, unpaid."
    )
    assert result.status == "done", result.error
    assert isinstance(result.output, Invoice)
    assert result.events[-1].output == result.output.model_dump(mode="json")
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    assert calls and all(c.decision_format == "json_schema" for c in calls)


def test_an_int_output_parses_through_the_server(llama_server):
    result = Agent(model=server_model(llama_server), output_type=int, max_steps=2).run("How many legs has a dog?")
    assert result.status == "done", result.error
    assert type(result.output) is int and result.answer == str(result.output)


def test_a_second_turn_carries_the_first_through_the_server(llama_server):
    # The first turn's messages hold an assistant tool call and a tool result; this server answers HTTP 500 to
    # null or list content and never shows tool messages, so the history must reach it repaired, as text turns.
    agent = Agent(model=server_model(llama_server), tools=[add], max_steps=4)
    first = agent.run("What is 2 + 3? Use the add tool.")
    assert first.status == "done", first.error
    assert any(m.get("tool_calls") for m in first.messages)
    second = agent.run("Now add 10 to that.", history=first.messages)
    assert second.status == "done", second.error
    assert "model_fallback" not in [e.kind for e in second.events]
    first_call = next(e for e in second.events if isinstance(e, ev.ModelCall))
    # system + the first turn as text turns (tool calls as JSON decisions, results as user turns) + the new task
    assert first_call.messages == 1 + len(as_text_turns(first.messages)) + 1
    assert len(as_text_turns(first.messages)) > 1
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[len(first.messages)] == {"role": "user", "content": "Now add 10 to that."}


@dataclass
class Ledger:
    owner: str
    seen: list[str] = field(default_factory=list)


@tool
def balance(ctx: RunContext[Ledger], account: str) -> str:
    """Look up an account's balance.

    Args:
        account: The account's name.
    """
    ctx.deps.seen.append(account)
    return f"{account} holds 42 euros (asked by {ctx.deps.owner})"


def test_deps_reach_a_tool_through_the_server(llama_server):
    ledger = Ledger(owner="ada")
    result = Agent(model=server_model(llama_server), tools=[balance], max_steps=3).run(
        "What is the balance of the account 'savings'? Use the balance tool.", deps=ledger
    )
    assert result.status == "done", result.error
    outputs = [e.output for e in result.events if isinstance(e, ev.ToolResult) and e.call.name == "balance"]
    assert outputs and len(ledger.seen) == len(outputs)
    assert all("(asked by ada)" in out for out in outputs)


async def test_this_server_does_not_say_its_context_window(llama_server):
    # llama-cpp-python's server (unlike llama.cpp's own) has no /props, and its /v1/models entries carry no
    # max_model_len: the window is unknown here, and asking for it fails nothing (pass context_window=).
    model = OpenAIModel(model="smollm2", base_url=llama_server, api_key="none")
    assert await model.context_window() is None
    props = urllib.request.Request(llama_server.removesuffix("/v1") + "/props")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(props, timeout=10)
    assert missing.value.code == 404
