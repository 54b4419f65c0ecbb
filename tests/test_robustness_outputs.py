"""What leaves a run stays safe and never ends it: lone surrogates, unwritable traces, credentials in every
output (trace, OTel, viewer, export, `--json`, tool outputs), and bad `agentlab run` input.

Runs go over real HTTP to the scripted OpenAI-compatible server.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from toolbox import call, model_for

from agentlab import Agent, tool
from agentlab.events import RunWarning
from agentlab.export import export_openai_chat
from agentlab.testing import ScriptedServer
from agentlab.trace import read_trace
from agentlab.viewer import render_html

ROOT = Path(__file__).resolve().parents[1]
# Shorter than the 16 characters the trace redactor used to require; the tool-output redactor caught them.
SK_KEY = "sk-a1b2c3d4e5f6"  # 12 characters after "sk-"
BEARER_TOKEN = "t0k3n4b5c6d7e"  # 13 characters


@tool
def list_files() -> str:
    """List the files here."""
    return "report.txt\nbad-\udcff-name.txt"  # what os.listdir gives for a file name that is not UTF-8


@tool
def leak() -> str:
    """Return a config dump."""
    return f"key={SK_KEY} header: Authorization: Bearer {BEARER_TOKEN}"


def finish(answer: str = "ok") -> dict:
    return call("final_answer", answer=answer)


def assert_no_secret(text: str) -> None:
    assert SK_KEY not in text and BEARER_TOKEN not in text


# --- lone surrogates (issue 11, item 1) ---------------------------------------------------------------


def test_a_lone_surrogate_in_a_tool_output_reaches_neither_the_trace_writer_nor_the_next_request(tmp_path):
    path = tmp_path / "run.jsonl"
    with ScriptedServer([call("list_files"), finish("two files")]) as srv:
        result = Agent(model=model_for(srv), tools=[list_files], trace=path).run("List the files")
        tool_message = next(m for m in srv.requests[1]["messages"] if m["role"] == "tool")
    assert result.status == "done" and result.answer == "two files"
    assert "bad-\ufffd-name.txt" in tool_message["content"]
    events = read_trace(path)  # every line valid JSON
    assert [e["kind"] for e in events] == [e.kind for e in result.events]
    output = next(e["output"] for e in events if e["kind"] == "tool_result")
    assert "bad-\ufffd-name.txt" in output


def test_a_lone_surrogate_in_an_event_does_not_stop_the_trace(tmp_path):
    path = tmp_path / "run.jsonl"
    with ScriptedServer([finish("half an emoji: \ud83d")]) as srv:
        result = Agent(model=model_for(srv), tools=[], trace=path).run("Say something")
    assert result.status == "done"
    events = read_trace(path)
    assert events[-1]["kind"] == "run_finished" and events[-1]["answer"] == "half an emoji: \ufffd"


# --- unwritable traces (issue 11, item 2) -------------------------------------------------------------


@pytest.mark.parametrize("where", ["/dev/full", "parent-is-a-file"])
def test_an_unwritable_trace_is_reported_once_and_the_run_goes_on(tmp_path, where):
    if where == "/dev/full" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    path = Path("/dev/full") if where == "/dev/full" else blocker / "run.jsonl"
    with ScriptedServer([call("list_files"), finish("done anyway")]) as srv:
        result = Agent(model=model_for(srv), tools=[list_files], trace=path).run("List the files")
    assert result.status == "done" and result.answer == "done anyway"
    warnings = [e for e in result.events if isinstance(e, RunWarning)]
    assert len(warnings) == 1 and str(path) in warnings[0].text and warnings[0].kind == "warning"
    assert result.events[-1].kind == "run_finished"


async def test_an_unwritable_trace_does_not_end_arun_and_otel_records_the_warning(tmp_path):
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from agentlab.otel import OTelRecorder

    provider, memory = span_memory()
    recorder = OTelRecorder(provider)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    with ScriptedServer([finish("fine")]) as srv:
        agent = Agent(model=model_for(srv), tools=[], trace=blocker / "run.jsonl")
        result = await agent.arun("Say fine")
    for event in result.events:
        recorder.record(event)
    assert result.status == "done" and [e.kind for e in result.events].count("warning") == 1
    (run,) = [s for s in memory.get_finished_spans() if s.name.startswith("invoke_agent")]
    assert [e.name for e in run.events if e.name == "agentlab.warning"] == ["agentlab.warning"]


def test_an_unwritable_trace_is_one_line_from_the_cli(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file")
    with ScriptedServer([finish("4"), finish("4")]) as srv:
        endpoint = ("--base-url", srv.base_url, "--model", "scripted")
        as_json = agentlab("run", "2+2?", *endpoint, "--json", "--trace", str(blocker / "t.jsonl"))
        for_people = agentlab("run", "2+2?", *endpoint, "--trace", str(blocker / "t.jsonl"))
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["answer"] == "4"
    assert "Traceback" not in as_json.stderr and as_json.stderr.count("could not be written") == 1
    assert for_people.returncode == 0 and "Traceback" not in for_people.stderr
    assert " ".join(for_people.stdout.split()).count("could not be written") == 1  # rich wraps long lines


# --- credentials: one redactor, the stricter rules (issue 11, item 7) -----------------------------------


def leaky_run(tmp_path: Path) -> tuple[Path, list]:
    path = tmp_path / "run.jsonl"
    with ScriptedServer([call("leak"), finish(f"the key is {SK_KEY}, the token Bearer {BEARER_TOKEN}")]) as srv:
        result = Agent(model=model_for(srv), tools=[leak], trace=path).run(f"Use Bearer {BEARER_TOKEN}")
    return path, result.events


def test_short_credentials_are_redacted_from_tool_outputs_and_traces(tmp_path):
    path, events = leaky_run(tmp_path)
    observation = next(e.output for e in events if e.kind == "tool_result")
    assert_no_secret(observation)
    assert "[redacted]" in observation
    assert_no_secret(path.read_text())


def test_the_viewer_and_the_export_redact_traces_written_elsewhere(tmp_path):
    # A trace from an older agentlab (or another tool) that still holds short credentials.
    path = tmp_path / "old.jsonl"
    events = [
        {"kind": "run_started", "time": 1.0, "task": f"Use Bearer {BEARER_TOKEN}", "model": "m", "tools": []},
        {"kind": "final", "time": 2.0, "step": 1, "answer": f"key {SK_KEY}"},
        {"kind": "run_finished", "time": 3.0, "status": "done", "answer": f"key {SK_KEY}", "steps": 1},
    ]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    page = render_html(events)
    assert_no_secret(page)
    assert "[redacted]" in page
    out = io.StringIO()
    stats = export_openai_chat([path], out)
    assert stats.written == 1
    assert_no_secret(out.getvalue())
    assert "[redacted]" in out.getvalue()


def span_memory() -> tuple:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def test_otel_spans_redact_short_credentials(tmp_path):
    pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
    from agentlab.otel import OTelRecorder

    provider, memory = span_memory()
    recorder = OTelRecorder(provider, capture_content=True)
    _, events = leaky_run(tmp_path)
    for event in events:
        recorder.record(event)
    texts = [str(v) for span in memory.get_finished_spans() for v in span.attributes.values()]
    assert any("[redacted]" in t for t in texts)
    for text in texts:
        assert_no_secret(text)


@pytest.mark.parametrize(
    "text",
    [
        "sk-a1b2c3d4e",  # 12 characters in all
        SK_KEY,
        f"Authorization: Bearer {BEARER_TOKEN}",
        "bearer abcdefghijkl",  # 12 characters
        "API_KEY=x1",  # a named credential, however short
    ],
)
def test_the_one_redactor_catches_short_credentials(text):
    from agentlab._redact import redact

    redacted = redact(text, [])
    assert "[redacted]" in redacted
    assert not any(secret in redacted for secret in ("a1b2c3d4e", BEARER_TOKEN, "abcdefghijkl", "x1"))


def test_the_cli_json_summary_redacts_short_credentials():
    with ScriptedServer([finish(f"the key is {SK_KEY}, Bearer {BEARER_TOKEN}")]) as srv:
        proc = agentlab("run", "leak it", "--base-url", srv.base_url, "--model", "scripted", "--json")
    assert proc.returncode == 0, proc.stderr
    assert_no_secret(proc.stdout)
    assert "[redacted]" in json.loads(proc.stdout)["answer"]


# --- `agentlab run` input (issue 11, item 6) ------------------------------------------------------------


def agentlab(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "agentlab.cli", *args], capture_output=True, text=True, timeout=120, cwd=ROOT, env=env
    )


NO_SERVER = ("--base-url", "http://127.0.0.1:9/v1", "--model", "m")


def assert_usage_error(proc: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    # One line says what is wrong (argparse puts its usage, maybe wrapped, above it).
    said = [line for line in proc.stderr.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(said) == 1, proc.stderr
    for text in expected:
        assert text in said[0]


def test_run_tools_from_a_missing_file_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.py"
    assert_usage_error(agentlab("run", "x", "--tools", f"{missing}:thing", *NO_SERVER), "no such file")


def test_run_tools_from_a_file_with_a_syntax_error_is_a_one_line_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def oops(:\n    pass\n")
    assert_usage_error(agentlab("run", "x", "--tools", f"{broken}:oops", *NO_SERVER), "syntax error", "line 1")


def test_run_tools_naming_something_that_is_not_a_tool_is_a_one_line_error(tmp_path):
    module = tmp_path / "things.py"
    module.write_text("LIMIT = 3\n")
    assert_usage_error(agentlab("run", "x", "--tools", f"{module}:LIMIT", *NO_SERVER), "is not a tool")
    assert_usage_error(agentlab("run", "x", "--tools", f"{module}:missing", *NO_SERVER), "no attribute 'missing'")


@pytest.mark.parametrize("option", ["--max-steps", "--max-tokens", "--max-seconds"])
def test_negative_budgets_are_rejected(option):
    assert_usage_error(agentlab("run", "x", option, "-1", *NO_SERVER), option, "must not be negative")


def test_the_environments_secrets_are_read_again_when_it_changes(monkeypatch):
    # The redactor keeps the environment's secret values between calls; a variable set, changed or
    # removed afterwards must count from the next call on.
    from agentlab._redact import redact

    monkeypatch.delenv("LEAN_TEST_TOKEN", raising=False)
    assert redact("plain value-one-xyz") == "plain value-one-xyz"
    monkeypatch.setenv("LEAN_TEST_TOKEN", "value-one-xyz")
    assert redact("plain value-one-xyz") == "plain [redacted]"
    monkeypatch.setenv("LEAN_TEST_TOKEN", "value-two-xyz")
    assert redact("plain value-one-xyz value-two-xyz") == "plain value-one-xyz [redacted]"
    monkeypatch.delenv("LEAN_TEST_TOKEN")
    assert redact("plain value-two-xyz") == "plain value-two-xyz"
