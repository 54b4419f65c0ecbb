"""Limits over real HTTP (scripted server): `max_tool_calls` and `max_cost` (from a price table the user
passes, per model, FallbackModel included) end the run with status `budget` and the best answer so far."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import toolbox
from toolbox import add, call, decide

from agentlab import Agent, FallbackModel, Price
from agentlab.run.limits import load_prices
from agentlab.testing import ScriptedServer

model_for = partial(toolbox.model_for, decision_format="tools", max_retry_wait=0.01)
TOKENS = {"prompt_tokens": 1000, "completion_tokens": 100}


def adds(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{**call("add", a=i, b=1), "usage": TOKENS, **extra} for i in range(n)]


# --- max_tool_calls ----------------------------------------------------------------------------------


def test_max_tool_calls_ends_the_run_at_the_step_that_would_exceed_it() -> None:
    script = [*adds(3), call("final_answer", answer="never")]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_tool_calls=2).run("count")
        requests = list(srv.requests)
    assert result.status == "budget" and "tool call limit of 2" in (result.error or "")
    assert [e.output for e in result.events if e.kind == "tool_result"] == ["1", "2"]  # the third never ran
    assert len(requests) == 3 and result.events[-1].kind == "run_finished"


def test_a_step_whose_calls_together_exceed_the_limit_runs_none_of_them() -> None:
    two_calls = {
        "tool_calls": [{"name": "add", "arguments": {"a": 1, "b": 1}}, {"name": "add", "arguments": {"a": 2, "b": 2}}]
    }
    with ScriptedServer([two_calls, call("final_answer", answer="never")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_tool_calls=1).run("x")
    assert result.status == "budget" and [e for e in result.events if e.kind == "tool_started"] == []


def test_max_tool_calls_zero_still_lets_a_run_answer_without_tools() -> None:
    with ScriptedServer([{"content": "Paris"}]) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_tool_calls=0).run("Capital of France?")
    assert (result.status, result.answer) == ("done", "Paris")


def test_a_limit_keeps_the_best_answer_so_far() -> None:
    # CRITIC drafts an answer, then checks it with a tool: the limit stops the check, the draft is kept.
    script = [decide("final_answer", "easy", answer="12"), decide("add", "check it", a=7, b=5)]
    with ScriptedServer(script) as srv:
        agent = Agent(model=model_for(srv, decision_format="json"), tools=[add], strategy="critic", max_tool_calls=0)
        result = agent.run("7 + 5?")
    assert (result.status, result.answer) == ("budget", "12")
    assert "tool call limit of 0" in (result.error or "")


# --- max_cost ----------------------------------------------------------------------------------------


def test_max_cost_stops_the_run_once_spent_and_reports_the_cost() -> None:
    # Each reply: 1000 prompt tokens at 2.0/M plus 100 completion tokens at 10.0/M = 0.003.
    prices = {"scripted": Price(input_per_million=2.0, output_per_million=10.0)}
    with ScriptedServer([*adds(5), call("final_answer", answer="never")]) as srv:
        result = Agent(model=model_for(srv), tools=[add], max_cost=0.005, prices=prices, max_steps=20).run("x")
        requests = list(srv.requests)
    assert result.status == "budget" and "cost limit of 0.005" in (result.error or "")
    assert len(requests) == 2 and result.cost == pytest.approx(0.006)
    assert result.events[-1].cost == pytest.approx(0.006)


def test_a_price_table_without_a_limit_only_reports_the_cost() -> None:
    prices = {"scripted": Price(input_per_million=1.0, output_per_million=1.0)}
    with ScriptedServer([{"content": "ok", "usage": TOKENS}]) as srv:
        result = Agent(model=model_for(srv), prices=prices).run("x")
    assert result.status == "done" and result.cost == pytest.approx(0.0011)


def test_without_prices_the_cost_is_unknown() -> None:
    with ScriptedServer([{"content": "ok"}]) as srv:
        result = Agent(model=model_for(srv)).run("x")
    assert result.cost is None


def test_a_fallback_run_is_priced_by_the_model_that_answered() -> None:
    prices = {"cheap": Price(1.0, 1.0), "dear": Price(100.0, 100.0)}
    with ScriptedServer([{"status": 400}]) as first, ScriptedServer([{"content": "ok", "usage": TOKENS}]) as second:
        model = FallbackModel(model_for(first, model="cheap"), model_for(second, model="dear"))
        result = Agent(model=model, prices=prices, max_cost=1.0).run("x")
    assert result.status == "done" and result.cost == pytest.approx(1100 * 100 / 1e6)


def test_a_price_on_the_model_object_is_used() -> None:
    with ScriptedServer([{"content": "ok", "usage": TOKENS}]) as srv:
        model = model_for(srv)
        model.price = Price(0.0, 1000.0)  # type: ignore[attr-defined]
        result = Agent(model=model, max_cost=0.05).run("x")
    assert result.cost == pytest.approx(0.1) and result.status == "done"


def test_max_cost_without_a_price_for_every_model_is_refused_up_front() -> None:
    model = toolbox.OpenAIModel(model="gpt-x", base_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(ValueError, match="none for gpt-x"):
        Agent(model=model, max_cost=1.0)
    with pytest.raises(TypeError, match="Price"):
        Agent(model=model, max_cost=1.0, prices={"gpt-x": 2.5})  # type: ignore[dict-item]


@pytest.mark.parametrize(("name", "value"), [("max_tool_calls", -1), ("max_cost", -0.5)])
def test_negative_limits_are_refused(name: str, value: float) -> None:
    model = toolbox.OpenAIModel(model="m", base_url="http://127.0.0.1:9", api_key="k")
    with pytest.raises(ValueError, match=name):
        Agent(model=model, prices={"m": Price(1, 1)}, **{name: value})


def test_prices_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="input_per_million"):
        Price(-1, 0)


def test_prices_load_from_json(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"gpt-4o": {"input_per_million": 2.5, "output_per_million": 10}}))
    assert load_prices(path) == {"gpt-4o": Price(2.5, 10)}
    path.write_text(json.dumps({"gpt-4o": {"input": 2.5}}))
    with pytest.raises(ValueError, match="input_per_million"):
        load_prices(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_prices(tmp_path / "missing.json")


# --- the command line ----------------------------------------------------------------------------------


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLAB_", "OPENAI_"))}
    command = [sys.executable, "-m", "agentlab.cli", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, cwd=Path(__file__).parents[1])


def test_cli_max_tool_calls_and_max_cost(tmp_path: Path) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"scripted": {"input_per_million": 2.0, "output_per_million": 10.0}}))
    script = [{**call("calculator", expression=f"{i}+1"), "usage": TOKENS} for i in range(4)]
    with ScriptedServer(script) as srv:
        endpoint = ("--base-url", srv.base_url, "--model", "scripted", "--json")
        by_calls = cli("run", "loop", "--max-tool-calls", "1", *endpoint)
        by_cost = cli("run", "loop", "--max-cost", "0.005", "--prices", str(prices), *endpoint)
    calls, cost = json.loads(by_calls.stdout), json.loads(by_cost.stdout)
    assert by_calls.returncode == 1 and calls["status"] == "budget" and "tool call limit" in calls["error"]
    assert by_cost.returncode == 1 and cost["status"] == "budget" and "cost limit" in cost["error"]
    assert cost["cost"] == pytest.approx(0.006)


def test_cli_limit_errors_are_one_line(tmp_path: Path) -> None:
    endpoint = ("--base-url", "http://127.0.0.1:9/v1", "--model", "m")
    negative = cli("run", "x", "--max-tool-calls", "-1", *endpoint)
    assert negative.returncode == 2 and "must not be negative" in negative.stderr
    unpriced = cli("run", "x", "--max-cost", "1", *endpoint)
    assert unpriced.returncode == 2 and "none for m" in unpriced.stderr and "Traceback" not in unpriced.stderr
    bad = tmp_path / "prices.json"
    bad.write_text("{nope")
    unreadable = cli("run", "x", "--max-cost", "1", "--prices", str(bad), *endpoint)
    assert unreadable.returncode == 2 and "cannot read prices" in unreadable.stderr
    assert "Traceback" not in unreadable.stderr
