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

import pytest
from toolbox import add

from agentlab import Agent, OpenAIModel
from agentlab import events as ev

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


async def test_this_server_does_not_say_its_context_window(llama_server):
    # llama-cpp-python's server (unlike llama.cpp's own) has no /props, and its /v1/models entries carry no
    # max_model_len: the window is unknown here, and asking for it fails nothing (pass context_window=).
    model = OpenAIModel(model="smollm2", base_url=llama_server, api_key="none")
    assert await model.context_window() is None
    props = urllib.request.Request(llama_server.removesuffix("/v1") + "/props")
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(props, timeout=10)
    assert missing.value.code == 404
