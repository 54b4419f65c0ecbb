"""`--executor ray`: eval items as Ray tasks on a small local Ray instance (slow to start: one test)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.test_eval_run import arithmetic_model
from tools.eval.runner import EvalConfig, ItemCache, ModelSpec, StrategySpec, evaluate
from tools.eval.suites import load_items

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed (extra [scale])")

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_items_run_as_ray_tasks(tmp_path, scripted_server):
    import ray

    srv = scripted_server(arithmetic_model)
    config = EvalConfig("arith", StrategySpec("react"), ModelSpec(srv.base_url, "scripted"))
    items = load_items("arith", n=4, seed=2)
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    try:
        results = evaluate(
            config, items, ItemCache(tmp_path / "cache.jsonl"), model=config.model.build(), executor="ray"
        )
    finally:
        ray.shutdown()
    assert [r["id"] for r in results] == [i.id for i in items]
    assert all(r["correct"] and r["status"] == "done" and not r["cached"] for r in results)
    assert srv.consumed == 8  # every item really ran, in the workers, against the server
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 4
