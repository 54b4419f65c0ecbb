"""`agentlab chat` and `agentlab run --output-schema`, run as real subprocesses against a scripted server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from toolbox import call

from agentlab.commands.output_schema import SchemaError, schema_validator, type_from_schema
from agentlab.run.output import ModelRetry, OutputSpec
from agentlab.testing import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]


def agentlab(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_"))} | (env or {})
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "agentlab.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def recalling(body: dict[str, Any], index: int) -> dict[str, Any]:
    """Answers "what is my X?" from the earlier user turns the request carries; anything else is noted."""
    *earlier, question = [m["content"] for m in body["messages"] if m["role"] == "user"]
    facts = dict(re.findall(r"[Mm]y (\w+) is (\w+)", " ".join(earlier)))
    asked = re.search(r"what is my (\w+)\?", question, re.IGNORECASE)
    return call("final_answer", answer=facts.get(asked.group(1), "unknown") if asked else "Noted.")


def answers(output: str) -> list[str]:
    return [line.removeprefix("agent> ") for line in output.splitlines() if line.startswith("agent> ")]


def test_chat_keeps_history_across_turns_until_exit() -> None:
    with ScriptedServer(recalling) as srv:
        proc = agentlab(
            "chat",
            "--base-url",
            srv.base_url,
            "--model",
            "scripted",
            stdin="My name is Ada.\n\nWhat is my name?\n/exit\nWhat is my name?\n",
        )
        requests = len(srv.requests)
    assert proc.returncode == 0, proc.stderr
    assert answers(proc.stdout) == ["Noted.", "Ada"]
    assert requests == 2  # the blank line is skipped and nothing after /exit is sent


def test_chat_with_a_session_goes_on_after_a_restart(tmp_path: Path) -> None:
    store = str(tmp_path / "chats.db")
    with ScriptedServer(recalling) as srv:
        options = ["--session", "ada", "--store", store, "--base-url", srv.base_url, "--model", "scripted"]
        first = agentlab("chat", *options, stdin="My name is Ada.\nMy city is Paris.\n")
        second = agentlab("chat", *options, stdin="What is my name?\nWhat is my city?\n")
        other = agentlab("chat", *options[:1], "bob", *options[2:], stdin="What is my name?\n")
    assert first.returncode == second.returncode == other.returncode == 0, first.stderr + second.stderr
    assert answers(first.stdout) == ["Noted.", "Noted."]
    assert "going on after 4 messages" in second.stdout
    assert answers(second.stdout) == ["Ada", "Paris"]
    assert answers(other.stdout) == ["unknown"]  # another session in the same file starts empty


def test_chat_shows_tool_calls_and_a_stopped_turn_fails_the_exit_code() -> None:
    script = [call("calculator", expression="6*7"), call("final_answer", answer="42"), {"status": 500}]
    with ScriptedServer(script) as srv:
        proc = agentlab("chat", "--base-url", srv.base_url, "--model", "scripted", stdin="6 times 7?\nAgain?\n")
    assert "→ calculator" in proc.stdout and "← 42" in proc.stdout and answers(proc.stdout) == ["42"]
    assert "agent stopped: error" in proc.stdout and proc.returncode == 1


INVOICE_SCHEMA = {
    "title": "Invoice",
    "type": "object",
    "properties": {
        "customer": {"type": "string", "pattern": "^[A-Z]+$"},
        "total": {"type": "number", "minimum": 0},
        "paid": {"type": "boolean"},
        "items": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["customer", "total", "paid"],
    "additionalProperties": False,
}


def test_run_with_an_output_schema_prints_the_validated_object(tmp_path: Path) -> None:
    schema = tmp_path / "invoice.json"
    schema.write_text(json.dumps(INVOICE_SCHEMA))
    script = [
        call("final_answer", customer="acme", total=37.5, paid=False),  # breaks the pattern: jsonschema says so
        call("final_answer", customer="ACME", total=37.5, paid=False),
    ]
    with ScriptedServer(script) as srv:
        proc = agentlab(
            "run", "Invoice ACME", "--output-schema", str(schema), "--json", "--base-url", srv.base_url, "--model", "m"
        )
        first, repair = srv.requests
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "done"
    assert summary["output"] == {"customer": "ACME", "total": 37.5, "paid": False}  # "items" was left out
    final_tool = next(t for t in first["tools"] if t["function"]["name"] == "final_answer")
    assert set(final_tool["function"]["parameters"]["properties"]) == {"customer", "total", "paid", "items"}
    assert "does not match" in json.dumps(repair["messages"][-1])


def test_a_bad_schema_file_is_a_usage_error(tmp_path: Path) -> None:
    schema = tmp_path / "bad.json"
    schema.write_text("{not json")
    proc = agentlab("run", "x", "--output-schema", str(schema), "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert proc.returncode == 2 and "is not JSON" in proc.stderr and not proc.stdout


def test_the_type_built_from_a_schema_validates_like_it() -> None:
    spec = OutputSpec.for_type(type_from_schema(INVOICE_SCHEMA))
    assert spec.parameters["required"] == ["customer", "total", "paid"]
    value = spec.validate({"customer": "ACME", "total": 1, "paid": True, "items": ["a"]})
    assert value.model_dump() == {"customer": "ACME", "total": 1.0, "paid": True, "items": ["a"]}
    enum_type = type_from_schema({"enum": ["red", "green"]})
    assert OutputSpec.for_type(enum_type).validate({"answer": "red"}) == "red"
    with pytest.raises(SchemaError, match="unsupported type"):
        type_from_schema({"type": "tuple"})


def test_the_schema_validator_refuses_what_the_type_lets_through() -> None:
    check = schema_validator(INVOICE_SCHEMA)
    assert check is not None  # jsonschema is installed with the mcp extra
    value = OutputSpec.for_type(type_from_schema(INVOICE_SCHEMA)).validate({"customer": "ACME", "total": -1, "paid": 1})
    with pytest.raises(ModelRetry, match="total: -1"):
        check(value)


def test_chat_hides_secrets_and_control_sequences_from_the_console() -> None:
    secret = "hunter2-secret-value-0042"
    hostile = f"key {secret} sk-abcdefghijklmnop \x1b[31mred\x1b]0;pwned\x07 [bold]markup[/bold]"
    script = [call("calculator", expression="6*7"), call("final_answer", answer=hostile)]
    with ScriptedServer(script) as srv:
        proc = agentlab(
            "chat", "--base-url", srv.base_url, "--model", "scripted", stdin="hi\n", env={"MY_SERVICE_TOKEN": secret}
        )
    assert proc.returncode == 0, proc.stderr
    assert secret not in proc.stdout and "sk-abcdefghijklmnop" not in proc.stdout
    assert "\x1b" not in proc.stdout and "\x07" not in proc.stdout
    assert answers(proc.stdout) == ["key [redacted] [redacted] \\x1b[31mred\\x1b]0;pwned\\x07 [bold]markup[/bold]"]
