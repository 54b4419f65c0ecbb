"""Integration on the real embedded model (SmolLM2-135M via llama-cpp-python): runs end to end with
every decision parsed. The model is weak, so these assert the mechanics, not the answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from toolbox import add

from agentlab import Agent
from agentlab import events as ev

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def test_react_run_ends_done_with_every_decision_parsed(local_model):
    result = Agent(model=local_model, tools=[add], max_steps=4).run("What is 2 + 3? Use the add tool.")
    kinds = [e.kind for e in result.events]
    assert result.status == "done", result.error
    assert "parse_error" not in kinds
    assert kinds.count("decision") == result.steps
    assert all(isinstance(e.thought, str) for e in result.events if isinstance(e, ev.Decision))
    assert result.answer is not None and result.usage.completion_tokens > 0
    calls = [c for e in result.events if isinstance(e, ev.Decision) for c in e.tool_calls]
    assert all(c.name == "add" and set(c.arguments) == {"a", "b"} for c in calls)  # the grammar held


def test_the_readme_first_agent_answers_with_what_its_tool_returned(local_model):
    """The README's first agent on the embedded model: its answer is copied from the tool's result, even
    one character long ("5"); before, it had nothing to copy and wrote free debris."""
    result = Agent(model=local_model, tools=[add], max_steps=10).run("What is 2 + 3?")
    returned = {e.output for e in result.events if isinstance(e, ev.ToolResult) and e.ok}
    assert result.status == "done", result.error
    assert returned and result.answer in returned


def test_pal_runs_end_to_end_on_the_embedded_model(local_model):
    result = Agent(model=local_model, strategy="pal", max_steps=3).run(
        "A baker makes 12 rolls and sells 5. How many rolls are left?"
    )
    kinds = [e.kind for e in result.events]
    assert "parse_error" not in kinds and kinds[-1] == "run_finished"
    assert kinds.count("tool_result") >= 1  # a program ran in the sandbox
    # Whatever the model wrote, the run ends in an orderly way: an answer, a bounded repair, or the budget.
    assert result.status in ("done", "max_steps", "stalled") or "repairs" in (result.error or "")


def test_react_search_example_answers_with_a_sentence_from_the_docs_offline(tmp_path: Path):
    trace = tmp_path / "trace.jsonl"
    proc = subprocess.run(
        [sys.executable, "examples/react_search.py", "--offline", "--trace", str(trace)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Offline" in proc.stdout and "local_search" in proc.stdout and "Answer" in proc.stdout
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    answer = next(e["answer"] for e in events if e["kind"] == "final")
    # A whole sentence copied from the project's docs, about agentlab: not a title, not a paraphrase.
    docs = " ".join(" ".join(path.read_text().split()) for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
    assert answer.endswith(".") and len(answer.split()) >= 5 and "agentlab" in answer, answer
    assert answer in docs, answer
