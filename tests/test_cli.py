"""The `agentlab` command line, run as a real subprocess against a scripted server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentlab.testing import ScriptedServer

ROOT = Path(__file__).resolve().parents[1]


def agentlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "agentlab.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=full_env,
    )


def test_run_json_with_a_tool_from_a_file(tmp_path):
    tools_file = tmp_path / "mytools.py"
    tools_file.write_text(
        "from agentlab import tool\n\n"
        "@tool\ndef shout(text: str) -> str:\n"
        '    """Upper-case text.\n\n    Args:\n        text: Input.\n    """\n'
        "    return text.upper()\n"
    )
    script = [
        {"tool_calls": [{"name": "shout", "arguments": {"text": "hi"}}]},
        {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "HI"}}]},
    ]
    trace = tmp_path / "trace.jsonl"
    with ScriptedServer(script) as srv:
        proc = agentlab(
            "run",
            "shout hi",
            "--tools",
            f"{tools_file}:shout,calculator",
            "--base-url",
            srv.base_url,
            "--model",
            "scripted",
            "--json",
            "--trace",
            str(trace),
        )
        sent_tools = {t["function"]["name"] for t in srv.requests[0]["tools"]}
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["status"] == "done" and result["answer"] == "HI" and result["steps"] == 2
    assert sent_tools == {"shout", "calculator"}  # the answer comes as plain text: no final_answer tool
    assert [json.loads(line)["kind"] for line in trace.read_text().splitlines()][-1] == "run_finished"


def test_run_json_exit_code_is_nonzero_unless_done():
    with ScriptedServer(
        [{"tool_calls": [{"name": "calculator", "arguments": {"expression": f"{i}+1"}}]} for i in range(3)]
    ) as srv:
        proc = agentlab(
            "run",
            "loop",
            "--max-steps",
            "2",
            "--json",
            env={"AGENTLAB_BASE_URL": srv.base_url, "AGENTLAB_MODEL": "scripted"},
        )
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["status"] == "max_steps"


def test_run_renders_events_for_people():
    script = [{"tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]}, {"content": "391"}]
    with ScriptedServer(script) as srv:
        proc = agentlab("run", "17*23?", "--base-url", srv.base_url, "--model", "scripted")
    assert proc.returncode == 0, proc.stderr
    assert "calculator" in proc.stdout and "391" in proc.stdout and "done" in proc.stdout


def test_tools_lists_builtins():
    proc = agentlab("tools")
    assert proc.returncode == 0
    names = {line.split(":")[0] for line in proc.stdout.splitlines() if ":" in line}
    assert {"calculator", "web_search", "local_search", "lookup", "python"} <= names


def test_unknown_tool_is_a_clear_error():
    proc = agentlab("run", "x", "--tools", "nope", "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert proc.returncode != 0 and "unknown built-in tool 'nope'" in proc.stderr


def test_strategy_options_from_the_command_line():
    program = "def solution():\n    return 2 + 2\n"
    script = [{"content": f"```python\n{program}```"}] * 2
    with ScriptedServer(script) as srv:
        proc = agentlab(
            "run",
            "2+2?",
            "--strategy",
            "pal",
            "--option",
            "samples=2",
            "--option",
            "temperature=0.9",
            "--base-url",
            srv.base_url,
            "--model",
            "scripted",
            "--json",
        )
        temperatures = [r["temperature"] for r in srv.requests]
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["answer"] == "4" and temperatures == [0.9, 0.9]
    bad = agentlab("run", "x", "--option", "novalue", "--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_unknown_strategy_or_option_is_a_clear_error():
    endpoint = ("--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    unknown = agentlab("run", "x", "--strategy", "nope", *endpoint)
    assert unknown.returncode == 2 and "unknown strategy 'nope'" in unknown.stderr and "Traceback" not in unknown.stderr
    wrong = agentlab("run", "x", "--strategy", "pal", "--option", "no_such_option=1", *endpoint)
    assert wrong.returncode == 2 and "no_such_option" in wrong.stderr and "Traceback" not in wrong.stderr


def test_run_streams_the_model_text_once_unless_told_not_to():
    thought = "Let me work this out with the calculator."
    script = [
        {"content": thought, "tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
        {"content": "The product is 391."},
    ]
    with ScriptedServer(script) as srv:
        proc = agentlab("run", "17*23?", "--base-url", srv.base_url, "--model", "scripted")
        asked = [bool(body.get("stream")) for body in srv.requests]
    assert proc.returncode == 0, proc.stderr
    assert asked == [True, True]
    assert proc.stdout.count(thought) == 1 and proc.stdout.count("The product is 391.") == 1
    with ScriptedServer(script) as srv:
        proc = agentlab("run", "17*23?", "--base-url", srv.base_url, "--model", "scripted", "--no-stream")
        asked = [bool(body.get("stream")) for body in srv.requests]
    assert proc.returncode == 0, proc.stderr
    assert asked == [False, False] and proc.stdout.count("The product is 391.") == 1


SECRET = "hunter2-secret-value-0042"
# A model reply that echoes a credential and carries terminal control sequences (colour, window title, bell).
HOSTILE_REPLY = f"Key {SECRET} or Bearer abcdefgh12345678 or sk-abcdefghijklmnop. \x1b[31mred\x1b]0;pwned\x07 end"


def test_run_console_output_hides_secrets_and_control_sequences():
    script = [
        {"content": HOSTILE_REPLY, "tool_calls": [{"name": "calculator", "arguments": {"expression": "17*23"}}]},
        {"content": HOSTILE_REPLY},
    ]
    for flags in ([], ["--no-stream"]):
        with ScriptedServer(script) as srv:
            proc = agentlab(
                "run",
                "17*23?",
                "--base-url",
                srv.base_url,
                "--model",
                "scripted",
                *flags,
                env={"MY_TOKEN": SECRET, "COLUMNS": "300"},
            )
        assert proc.returncode == 0, proc.stderr
        shown = proc.stdout
        assert SECRET not in shown and "abcdefgh12345678" not in shown and "sk-abcdefghijklmnop" not in shown
        assert "\x1b" not in shown and "\x07" not in shown
        # Escaped, the sequences are still there to read; the rest of the text is intact.
        assert shown.count("Key [redacted] or Bearer [redacted] or [redacted]. \\x1b[31mred\\x1b]0;pwned\\x07 end") == 2


def test_a_store_that_is_not_sqlite_is_one_error_line(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"\x7fELF" + bytes(range(256)) * 8)
    endpoint = ("--base-url", "http://127.0.0.1:9/v1", "--model", "scripted")
    for command in (["run", "x", "--store", str(garbage)], ["chat", "--session", "s", "--store", str(garbage)]):
        proc = agentlab(*command, *endpoint)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.count("\n") == 1 and "not a database" in proc.stderr and "Traceback" not in proc.stderr
    assert garbage.read_bytes().startswith(b"\x7fELF")


def test_mcp_serve_refuses_a_port_out_of_range():
    proc = agentlab("mcp-serve", "calculator", "--http", "99999")
    assert (
        proc.returncode == 2 and proc.stderr == "agentlab mcp-serve: --http takes a port from 0 to 65535, got 99999\n"
    )


def interrupted(args: list[str], after: float, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `agentlab ARGS`, press Ctrl-C (SIGINT) after `after` seconds, and wait for it to end."""
    import signal
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_"))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentlab.cli", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=env,
        # Whatever started the tests may ignore SIGINT in children; the command gets the default, as in a shell.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.flush()
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ctrl_c_ends_run_and_chat_with_one_line(tmp_path):
    with ScriptedServer([{"content": "never seen"}] * 2, latency=30) as srv:
        endpoint = ["--base-url", srv.base_url, "--model", "scripted"]
        run = interrupted(["run", "17*23?", *endpoint], after=2.0)
        chat = interrupted(["chat", *endpoint], after=2.0, stdin="hello\n")
    assert (run.returncode, run.stderr) == (130, "agentlab: interrupted\n")
    assert (chat.returncode, chat.stderr) == (130, "agentlab chat: interrupted\n")


def test_ctrl_c_ends_a_batch_saying_how_far_it_got(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps({"task": "Say ok", "id": f"t{n}"}) + "\n" for n in range(4)))
    out = tmp_path / "results.jsonl"
    # The first task answers at once; every later request waits far longer than the test.
    script = [{"content": "ok"}] + [{"content": "ok", "delay": 30}] * 3
    with ScriptedServer(script) as srv:
        args = ["batch", str(tasks), "-o", str(out), "--base-url", srv.base_url, "--model", "scripted"]
        proc = interrupted([*args, "--concurrency", "1"], after=3.0)
    assert proc.returncode == 130
    assert proc.stderr.splitlines()[-1] == (
        "agentlab batch: interrupted; 1 of 4 tasks finished (rerun the same command to go on)"
    )
    assert "Traceback" not in proc.stderr
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["t0"]
