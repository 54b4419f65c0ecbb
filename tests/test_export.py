"""Trajectory export: agents run over the scripted server with `trace=`, the traces become OpenAI chat JSONL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import toolbox
from toolbox import add, model_for

from agentlab import Agent, tool
from agentlab.cli import main
from agentlab.export import export_openai_chat, split_runs
from agentlab.testing import ScriptedServer
from agentlab.trace import read_trace


@tool
def shout(text: str) -> str:
    """Upper-case a text.

    Args:
        text: What to shout.
    """
    return text.upper()


def call(*calls: tuple[str, dict], content: str | None = None) -> dict:
    item: dict = {"tool_calls": [{"name": name, "arguments": arguments} for name, arguments in calls]}
    if content is not None:
        item["content"] = content
    return item


def final(answer: str) -> dict:
    return call(("final_answer", {"answer": answer}))


def decide(name: str, **arguments: object) -> dict:
    return toolbox.decide(name, f"use {name}", **arguments)


def run_agent(script: list[dict], trace: Path, task: str, **options: object) -> str:
    native = options.pop("native_tools", True)
    with ScriptedServer(script, native_tools=native, json_schema=native) as srv:
        result = Agent(model=model_for(srv), tools=[add, shout], trace=trace, **options).run(task)  # type: ignore[arg-type]
    return result.status


def check_example(example: dict) -> list[dict]:
    """Assert the OpenAI chat fine-tuning structure; return the messages."""
    messages = example["messages"]
    roles = [m["role"] for m in messages]
    body = roles[1:] if roles[0] == "system" else roles
    assert body[0] == "user" and body[-1] == "assistant"
    assert isinstance(messages[-1]["content"], str) and "tool_calls" not in messages[-1]
    pending: list[str] = []
    for message in messages:
        if message["role"] == "assistant" and "tool_calls" in message:
            assert not pending, "every tool call is answered before the next assistant turn"
            for tool_call in message["tool_calls"]:
                assert tool_call["type"] == "function"
                assert isinstance(json.loads(tool_call["function"]["arguments"]), dict)
                pending.append(tool_call["id"])
        elif message["role"] == "tool":
            assert message["tool_call_id"] == pending.pop(0) and isinstance(message["content"], str)
    assert not pending
    ids = [c["id"] for m in messages for c in m.get("tool_calls", [])]
    assert len(ids) == len(set(ids))
    for schema in example.get("tools", []):
        assert schema["type"] == "function" and schema["function"]["parameters"]["type"] == "object"
    return messages


@pytest.fixture
def traces(tmp_path: Path) -> list[Path]:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    # Run 1 (done): a thought, two parallel calls, then the answer.
    assert (
        run_agent(
            [call(("add", {"a": 2, "b": 3}), ("shout", {"text": "hi"}), content="Both at once."), final("5 HI")],
            first,
            "Add 2 and 3, and shout hi.",
        )
        == "done"
    )
    # Run 2 (max_steps), appended to the same file.
    assert run_agent([call(("add", {"a": 1, "b": 1}))], first, "Count forever.", max_steps=1) == "max_steps"
    # Run 3 (done): repeats a call (the loop refuses to run it again), then answers.
    assert (
        run_agent(
            [call(("add", {"a": 4, "b": 4})), call(("add", {"a": 4, "b": 4})), final("8")], first, "What is 4 + 4?"
        )
        == "done"
    )
    # Run 4 (done) in JSON mode with a reply that cannot be parsed along the way.
    assert (
        run_agent(
            [decide("shout", text="json"), {"content": "not json at all"}, decide("final_answer", answer="JSON")],
            second,
            "Shout json.",
            native_tools=False,
        )
        == "done"
    )
    return [first, second]


def test_trace_files_split_into_runs(traces: list[Path]):
    runs = split_runs(read_trace(traces[0]))
    assert [r[0]["task"] for r in runs] == ["Add 2 and 3, and shout hi.", "Count forever.", "What is 4 + 4?"]
    assert [r[-1]["kind"] for r in runs] == ["run_finished"] * 3
    assert runs[0][0]["tool_schemas"][0]["function"]["name"] == "add"


def test_export_writes_successful_tool_use_trajectories(traces: list[Path], tmp_path: Path):
    out = tmp_path / "train.jsonl"
    assert main(["export", *map(str, traces), "--format", "openai-chat", "-o", str(out)]) == 0
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(examples) == 3  # the max_steps run is left out
    parallel, repeated, json_mode = (check_example(e) for e in examples)

    assert parallel[0] == {"role": "user", "content": "Add 2 and 3, and shout hi."}
    assert parallel[1]["content"] == "Both at once."
    assert [c["function"]["name"] for c in parallel[1]["tool_calls"]] == ["add", "shout"]
    assert json.loads(parallel[1]["tool_calls"][0]["function"]["arguments"]) == {"a": 2, "b": 3}
    assert [m["content"] for m in parallel[2:4]] == ["5", "HI"]
    assert parallel[-1] == {"role": "assistant", "content": "5 HI"}
    assert {t["function"]["name"] for t in examples[0]["tools"]} == {"add", "shout"}

    # The refused repeat is not in the data: one call, one result, the answer.
    assert [m["role"] for m in repeated] == ["user", "assistant", "tool", "assistant"]
    assert repeated[2]["content"] == "8" and repeated[3]["content"] == "8"

    # The unparsable reply is not in the data either.
    assert [m["role"] for m in json_mode] == ["user", "assistant", "tool", "assistant"]
    assert json_mode[1]["content"] == "use shout" and json_mode[2]["content"] == "JSON"
    assert all("not json" not in json.dumps(m) for m in json_mode)


def test_status_filter(traces: list[Path], tmp_path: Path):
    out = tmp_path / "partial.jsonl"
    assert main(["export", str(traces[0]), "--status", "max_steps", "-o", str(out)]) == 0
    assert out.read_text() == ""  # the run that hit max_steps has no final answer to learn from
    assert main(["export", str(traces[0]), "--status", "any", "--system", "Be brief.", "-o", str(out)]) == 0
    examples = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(examples) == 2
    assert all(check_example(e)[0] == {"role": "system", "content": "Be brief."} for e in examples)


def test_scorer_filter(traces: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    scorers = tmp_path / "scorers.py"
    scorers.write_text(
        "def answered_eight(events):\n"
        "    return events[-1]['answer'] == '8'\n"
        "def tool_calls(events):\n"
        "    return sum(e['kind'] == 'tool_result' for e in events)\n"
    )
    out = tmp_path / "scored.jsonl"
    assert main(["export", *map(str, traces), "--scorer", f"{scorers}:answered_eight", "-o", str(out)]) == 0
    assert [json.loads(line)["messages"][-1]["content"] for line in out.read_text().splitlines()] == ["8"]
    assert "exported 1 of 4 runs" in capsys.readouterr().err
    # A numeric score is compared with the threshold: only the run with two tool results reaches 2.
    assert (
        main(["export", *map(str, traces), "--scorer", f"{scorers}:tool_calls", "--threshold", "2", "-o", str(out)])
        == 0
    )
    assert [json.loads(line)["messages"][-1]["content"] for line in out.read_text().splitlines()] == ["5 HI"]


def test_library_call_and_bad_input(traces: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    import io

    buffer = io.StringIO()
    stats = export_openai_chat(traces, buffer, statuses=None, scorer=lambda events: 0.9, threshold=0.5)
    assert stats.runs == 4 and stats.written == 3 and stats.skipped == {"no final answer": 1}
    broken = tmp_path / "broken.jsonl"
    broken.write_text(traces[1].read_text() + "{not json\n" + traces[1].read_text())  # mid-file: not a crash
    assert main(["export", str(broken)]) == 2
    assert "agentlab export:" in capsys.readouterr().err
    assert main(["export", str(traces[0]), "--scorer", "no_such_module_here:f"]) != 0


def test_an_output_that_is_also_an_input_is_refused_and_left_intact(
    traces: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    before = traces[0].read_bytes()
    assert main(["export", str(traces[0]), "-o", str(traces[0])]) == 2
    err = capsys.readouterr().err
    assert "is also an input" in err and "Traceback" not in err
    link = tmp_path / "link.jsonl"
    link.symlink_to(traces[0])  # another name for the same file
    assert main(["export", str(traces[0]), "-o", str(link)]) == 2
    assert traces[0].read_bytes() == before


def test_a_failed_export_leaves_the_existing_output_as_it_was(
    traces: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "train.jsonl"
    assert main(["export", *map(str, traces), "-o", str(out)]) == 0
    before = out.read_bytes()
    assert before.count(b"\n") == 3
    capsys.readouterr()
    broken = tmp_path / "broken.jsonl"
    broken.write_text(traces[0].read_text() + "{not json\n" + traces[1].read_text())  # a bad line mid-file
    scorers = tmp_path / "scorers.py"
    scorers.write_text("def crash(events):\n    raise KeyError('answer')\n")
    failing = [
        [str(traces[0]), str(tmp_path / "missing.jsonl")],
        [str(traces[0]), str(broken)],
        [*map(str, traces), "--scorer", f"{scorers}:crash"],
    ]
    for arguments in failing:
        assert main(["export", *arguments, "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("agentlab export: ") and err.count("\n") == 1, err
        assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_a_last_line_cut_short_is_skipped_with_a_note(traces: list[Path], tmp_path: Path, capsys):
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_text(traces[0].read_text() + '{"kind": "run_started", "task": "Cut sh')  # killed mid-write
    also = tmp_path / "also.jsonl"
    also.write_text(traces[1].read_text() + '{"kind": "fi\n')  # the same, with a newline after it
    out = tmp_path / "train.jsonl"
    assert main(["export", str(crashed), "-o", str(out)]) == 0
    err = capsys.readouterr().err
    lines = len(traces[0].read_text().splitlines())
    assert f"crashed.jsonl:{lines + 1}: skipped a last line cut short" in err
    assert "exported 2 of 3 runs" in err and len(out.read_text().splitlines()) == 2
    assert main(["export", str(also)]) == 0
    assert "also.jsonl:" in capsys.readouterr().err


def test_events_of_an_odd_shape_are_left_out_not_a_crash(tmp_path: Path, capsys):
    """Valid JSON where a trace's writer would never put it (a hand-edited or foreign trace)."""
    run = [
        {"kind": "run_started", "task": "Shout \ud800", "run_id": "r"},
        {"kind": "decision", "tool_calls": True, "step": 1, "run_id": "r"},
        {"kind": "decision", "tool_calls": [{"id": "c1", "name": "shout", "arguments": {}}], "step": 2},
        {"kind": "tool_result", "call": "c1", "output": "X", "ok": True, "duration": "slow"},
        {"kind": "final", "answer": "lone \ud800 surrogate"},
        {"kind": "run_finished", "status": "done", "usage": "many", "duration": "long"},
    ]
    trace = tmp_path / "odd.jsonl"
    trace.write_text("".join(json.dumps(event) + "\n" for event in run))
    out = tmp_path / "train.jsonl"
    assert main(["export", str(trace), "-o", str(out)]) == 0
    assert main(["export", str(trace)]) == 0  # to stdout too
    assert "Traceback" not in capsys.readouterr().err
    [example] = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    # The refused-looking calls are left out; the surrogate survives as JSON's escape.
    assert example["messages"] == [
        {"role": "user", "content": "Shout \ud800"},
        {"role": "assistant", "content": "lone \ud800 surrogate"},
    ]


def test_a_later_turn_of_a_chat_is_exported_with_the_turns_before_it(tmp_path: Path):
    from agentlab import InMemorySession

    trace = tmp_path / "chat.jsonl"
    with ScriptedServer([{"content": "Hello Ada."}, {"content": "Your name is Ada."}]) as srv:
        agent = Agent(model=model_for(srv), trace=trace)
        session = InMemorySession()
        agent.run("I am Ada.", session=session)
        agent.run("What is my name?", session=session)
    out = tmp_path / "chat-export.jsonl"
    with out.open("w") as file:
        export_openai_chat([trace], file)
    second = [json.loads(line) for line in out.read_text().splitlines()][1]["messages"]
    assert [(m["role"], m["content"]) for m in second] == [
        ("user", "I am Ada."),
        ("assistant", "Hello Ada."),
        ("user", "What is my name?"),
        ("assistant", "Your name is Ada."),
    ]
