"""The evaluation harness end to end: `python -m tools.eval` over a scripted OpenAI-compatible server
(real HTTP, the real openai client and agent loop), its files, its summary line and its item cache."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from agentlab.testing import ScriptedServer
from tools.eval.__main__ import main
from tools.eval.runner import EvalConfig, ItemCache, ModelSpec, StrategySpec, evaluate
from tools.eval.suites import load_items


def arithmetic_model(body: dict[str, Any], index: int) -> dict[str, Any]:
    """A scripted model that solves "What is <expr>?": with tools it calls the calculator, then answers with
    the tool's result; without tools (the baselines) it always answers 0."""
    messages = body["messages"]
    structuring = re.search(r"\nAnswer: (.*)\nGive this answer as", messages[-1]["content"] or "")
    if structuring:  # a typed (float) output asked for after a plain-text answer
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": structuring.group(1)}}]}
    if not body.get("tools"):
        return {"content": "Let me think.\nAnswer: 0"}
    results = [m["content"] for m in messages if m["role"] == "tool"]
    if results:
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": results[-1]}}]}
    question = next(m["content"] for m in messages if m["role"] == "user")
    expression = re.fullmatch(r"What is (.+)\?", question).group(1)
    return {"tool_calls": [{"name": "calculator", "arguments": {"expression": expression}}]}


def eval_args(srv: ScriptedServer, out: Path, *extra: str) -> list[str]:
    return ["--suite", "arith", "--base-url", srv.base_url, "--model", "scripted", "--out", str(out), *extra]


def test_end_to_end_run_writes_files_and_ends_with_the_summary(tmp_path, capsys, scripted_server):
    srv = scripted_server(arithmetic_model)
    code = main(eval_args(srv, tmp_path, "--strategy", "react", "cot", "--n", "4", "--seed", "5"))
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("summary: suite=arith strategy=cot variant=out=float,demos=auto model=scripted n=4 ")
    assert "accuracy=1.000" in lines[-2] and "strategy=react" in lines[-2] and "parse_rate=1.000" in lines[-2]
    assert lines[0].startswith("| suite | strategy |")

    runs = {json.loads(p.read_text())["config"]["strategy"]: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    react, cot = runs["react"], runs["cot"]
    gold = {item.id: item.gold for item in load_items("arith", n=4, seed=5)}
    assert {r["id"]: r["gold"] for r in react["items"]} == gold
    assert react["summary"]["accuracy"] == 1.0 and react["summary"]["mean_steps"] == 2.0
    assert react["summary"]["parse_rate"] == 1.0 and react["summary"]["ci95"][0] > 0.4
    # The baseline answered 0 every time; only an item whose answer really is 0 could count.
    assert cot["summary"]["correct"] == sum(g == "0" for g in gold.values())
    # One plain-text request; its answer, "0", is a float already, so no structuring request follows.
    assert cot["summary"]["mean_steps"] == 1.0 and all(float(r["prediction"]) == 0 for r in cot["items"])
    assert "parse_errors=0 errors=0 tool_use=1.00 debris=0" in lines[-2]
    assert "errors=0 tool_use=0.00" in lines[-1]  # the baseline calls no tool
    markdown = next(tmp_path.glob("arith-react-*.md")).read_text()
    assert "| arith | react [out=float,demos=auto] | scripted | 4 | 1.00" in markdown
    assert markdown.count("| yes | done |") == 4
    # react: calculator + final answer per item; cot: its plain answer, a number as it is
    assert srv.consumed == 4 * 2 + 4 * 1


def test_rerun_continues_from_the_cache(tmp_path, capsys, scripted_server):
    srv = scripted_server(arithmetic_model)
    assert main(eval_args(srv, tmp_path, "--n", "2")) == 0  # "interrupted" after 2 items
    assert srv.consumed == 4
    assert main(eval_args(srv, tmp_path, "--n", "5")) == 0
    assert srv.consumed == 4 + 3 * 2  # only the 3 new items ran
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("summary: suite=arith strategy=react")
    newest = max(tmp_path.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    summary = json.loads(newest.read_text())["summary"]
    assert summary["n"] == 5 and summary["cached"] == 2 and summary["accuracy"] == 1.0
    assert main(eval_args(srv, tmp_path, "--n", "5", "--fresh")) == 0
    assert srv.consumed == 10 + 5 * 2


def test_failed_runs_are_not_cached(tmp_path, scripted_server):
    broken = scripted_server([{"status": 400}])
    config = EvalConfig("arith", StrategySpec("react"), ModelSpec(broken.base_url, "scripted"))
    items = load_items("arith", n=1)
    cache = ItemCache(tmp_path / "cache.jsonl")
    model = config.model.build()
    [failed] = evaluate(config, items, cache, model=model)
    assert failed["status"] == "error" and "HTTP 400" in failed["error"] and not failed["correct"]
    assert not (tmp_path / "cache.jsonl").exists()

    good = scripted_server(arithmetic_model)
    config = EvalConfig("arith", StrategySpec("react"), ModelSpec(good.base_url, "scripted"))
    [result] = evaluate(config, items, ItemCache(tmp_path / "cache.jsonl"), model=config.model.build())
    assert result["status"] == "done" and result["correct"] and good.consumed == 2


def test_missing_strategy_and_data_are_clear_errors(tmp_path, capsys, scripted_server):
    srv = scripted_server(arithmetic_model)
    assert main(eval_args(srv, tmp_path, "--strategy", "react", "nonexistent")) == 2
    assert "strategy 'nonexistent' is not available" in capsys.readouterr().err
    args = ["--suite", "gsm8k", "--data", str(tmp_path / "nope.jsonl"), "--base-url", srv.base_url, "--model", "m"]
    assert main(args) == 2
    assert "data file not found" in capsys.readouterr().err
    assert srv.consumed == 0


@pytest.mark.parametrize("strategy", ["direct", "react"])
def test_hotpotqa_over_a_small_corpus(tmp_path, scripted_server, strategy):
    data, corpus = tmp_path / "dev.jsonl", tmp_path / "corpus.jsonl"
    data.write_text(json.dumps({"id": "q1", "question": "Where is the Eiffel Tower?", "answer": "Paris"}) + "\n")
    corpus.write_text(json.dumps({"title": "Eiffel Tower", "text": "The Eiffel Tower is in Paris, France."}) + "\n")

    def model(body: dict[str, Any], index: int) -> dict[str, Any]:
        if not body.get("tools"):
            return {"content": "the city of Paris"}
        observations = [m["content"] for m in body["messages"] if m["role"] == "tool"]
        if not observations:
            return {"tool_calls": [{"name": "local_search", "arguments": {"query": "Eiffel Tower"}}]}
        assert "in Paris" in observations[0]
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "Paris."}}]}

    srv = scripted_server(model)
    config = EvalConfig("hotpotqa", StrategySpec(strategy), ModelSpec(srv.base_url, "scripted"), str(corpus))
    [result] = evaluate(
        config, load_items("hotpotqa", n=1, data=data), ItemCache(tmp_path / "c.jsonl"), model=config.model.build()
    )
    if strategy == "react":
        assert result["correct"] and result["f1"] == 1.0 and result["steps"] == 2
    else:  # "the city of Paris": not an exact match, partial F1
        assert not result["correct"] and result["f1"] == pytest.approx(2 / 4)
    assert not srv.failures


def test_run_files_keep_dotted_model_names(tmp_path):
    from tools.eval.report import summarize, write_run

    result = {
        "id": "1",
        "gold": "2",
        "prediction": "2",
        "correct": True,
        "status": "done",
        "steps": 1,
        "decisions": 1,
        "parse_errors": 0,
        "prompt_tokens": 5,
        "completion_tokens": 1,
        "seconds": 0.1,
    }
    config = {"suite": "arith", "strategy": "react"}
    first = write_run(tmp_path, "20260101-000000", config, "SmolLM2.Q4_1", summarize([result]), [result])
    second = write_run(tmp_path, "20260101-000001", config, "SmolLM2.Q4_1", summarize([result]), [result])
    assert first[0].name == "arith-react-SmolLM2.Q4_1-20260101-000000.json"
    assert len({*first, *second}) == 4 and all(p.is_file() for p in (*first, *second))


def test_cache_survives_a_line_cut_short(tmp_path):
    path = tmp_path / "cache.jsonl"
    record = {"key": "arith/react/m/s0-0", "result": {"id": "s0-0", "status": "done"}}
    path.write_text(json.dumps(record) + "\n" + json.dumps(record)[:25])  # killed mid-write
    cache = ItemCache(path)
    assert cache.get("arith/react/m/s0-0") == record["result"]
    assert ItemCache(path, read=False).get("arith/react/m/s0-0") is None
    cache.put("arith/react/m/s0-1", {"id": "s0-1", "status": "done"})  # appended after the fragment
    assert ItemCache(path).get("arith/react/m/s0-1") == {"id": "s0-1", "status": "done"}


def test_ablation_flags_reach_the_agent_and_the_report_counts_debris(tmp_path, capsys, scripted_server):
    def messy_model(body: dict[str, Any], index: int) -> dict[str, Any]:
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": '42"} }}'}}]}

    srv = scripted_server(messy_model)
    assert main(eval_args(srv, tmp_path, "--n", "2", "--output-type", "text", "--demos", "off")) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "variant=out=text,demos=off" in last and "debris=2" in last and "tool_use=0.00" in last
    [run] = [json.loads(p.read_text()) for p in tmp_path.glob("*.json")]
    assert run["config"]["output_type"] == "text" and all(item["debris"] for item in run["items"])
    # With a float output the same reply cannot be an answer: it is refused, repaired, and the run fails.
    assert main(eval_args(srv, tmp_path, "--n", "1", "--output-type", "float", "--max-steps", "3")) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert "variant=out=float" in last and "errors=1" in last and "parse_errors=3" in last


def test_context_window_and_no_compaction_flags_reach_the_agent(tmp_path, capsys, scripted_server):
    data, corpus = tmp_path / "dev.jsonl", tmp_path / "corpus.jsonl"
    data.write_text(json.dumps({"id": "q1", "question": "Where is the Eiffel Tower?", "answer": "Paris"}) + "\n")
    filler = " ".join(f"Tower fact {i} about iron and paint." for i in range(120))
    corpus.write_text(json.dumps({"title": "Eiffel Tower", "text": f"The Eiffel Tower is in Paris. {filler}"}) + "\n")

    steps: list[int] = []  # counted here: a compacted request no longer shows every earlier search

    def model(body: dict[str, Any], index: int) -> dict[str, Any]:
        if body["messages"][0]["content"].startswith("You summarise"):
            return {"content": "The Eiffel Tower is in Paris."}
        steps.append(index)
        if len(steps) in (1, 2, 3, 5, 6, 7):  # three searches in each of the two runs
            query = ["Eiffel Tower", "Eiffel Tower Paris", "Tower iron"][(len(steps) - 1) % 4]
            return {"tool_calls": [{"name": "local_search", "arguments": {"query": query}}]}
        return {"tool_calls": [{"name": "final_answer", "arguments": {"answer": "Paris"}}]}

    srv = scripted_server(model)
    common = ["--suite", "hotpotqa", "--base-url", srv.base_url, "--model", "scripted", "--out", str(tmp_path)]
    common += ["--data", str(data), "--corpus", str(corpus), "--n", "1", "--context-window", "500"]
    runs = []
    for extra in ([], ["--no-compaction"]):
        assert main([*common, *extra]) == 0
        capsys.readouterr()
        [latest] = sorted(tmp_path.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)[-1:]
        runs.append(json.loads(latest.read_text()))
        latest.unlink()
    compacted, whole = runs
    assert compacted["config"]["context_window"] == 500 and compacted["config"]["compaction"] is True
    assert whole["config"]["compaction"] is False
    assert compacted["items"][0]["compactions"] > 0 and whole["items"][0]["compactions"] == 0
    assert compacted["summary"]["compactions"] == compacted["items"][0]["compactions"]
    assert compacted["items"][0]["correct"] and whole["items"][0]["correct"]
    assert not srv.failures
