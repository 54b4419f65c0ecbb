"""The memory stream: SQLite storage, scored retrieval, model-rated importance, reflection, tools."""

from __future__ import annotations

import json
import sqlite3
from functools import partial
from pathlib import Path

import pytest
import toolbox
from toolbox import call

from agentlab import Agent
from agentlab.memory import DEFAULT_IMPORTANCE, MemoryStore, RetrievalWeights, memory_tools
from agentlab.testing import ScriptedServer

HOUR = 3600.0


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


model_for = partial(toolbox.model_for, max_retry_wait=0.5)


def test_retrieval_mixes_relevance_importance_and_recency():
    clock = Clock()
    store = MemoryStore(clock=clock)
    old = store.add("The deploy key for staging lives in the vault", importance=9)
    clock.now += 48 * HOUR
    chatter = store.add("Had coffee and read the news", importance=1)
    clock.now += HOUR
    fresh = store.add("The staging server was rebooted", importance=4)

    only_relevance = RetrievalWeights(recency=0, importance=0, relevance=1)
    best = store.retrieve("where is the staging deploy key", k=3, weights=only_relevance, touch=False)
    assert [s.memory.id for s in best[:2]] == [old.id, fresh.id]
    assert best[0].relevance == 1.0 and best[-1].relevance == 0.0

    only_recency = RetrievalWeights(recency=1, importance=0, relevance=0)
    assert store.retrieve("anything", k=1, weights=only_recency, touch=False)[0].memory.id == fresh.id
    only_importance = RetrievalWeights(recency=0, importance=1, relevance=0)
    ranked = store.retrieve("anything", k=3, weights=only_importance, touch=False)
    assert [s.memory.id for s in ranked] == [old.id, fresh.id, chatter.id]
    for scored in ranked:
        assert 0.0 <= scored.recency <= 1.0 and 0.0 <= scored.importance <= 1.0
    matching = store.retrieve("staging", k=3, touch=False, matching_only=True)
    assert {s.memory.id for s in matching} == {old.id, fresh.id}  # the chatter shares no term
    assert store.retrieve("zebra", k=3, matching_only=True) == []


def test_retrieval_refreshes_recency_of_what_it_returns():
    clock = Clock()
    store = MemoryStore(clock=clock, weights=RetrievalWeights(recency=1, importance=0, relevance=0))
    first = store.add("alpha fact", importance=5)
    clock.now += 10 * HOUR
    store.add("beta fact", importance=5)
    clock.now += HOUR
    (hit,) = store.retrieve("alpha", k=1, weights=RetrievalWeights(recency=0, importance=0, relevance=1))
    assert hit.memory.id == first.id
    assert store.get(first.id).last_accessed == clock.now  # retrieved = accessed
    clock.now += HOUR
    assert store.retrieve("anything", k=1)[0].memory.id == first.id


def test_store_persists_in_wal_mode_and_rejects_bad_input(tmp_path: Path):
    path = tmp_path / "memory.db"
    with MemoryStore(path) as store:
        kept = store.add("The user prefers metric units", importance=7, kind="preference")
        unrated = store.add("Small talk about the weather")
        with pytest.raises(ValueError, match="1 to 10"):
            store.add("too important", importance=11)
        with pytest.raises(ValueError, match="some text"):
            store.add("   ")
        with pytest.raises(ValueError, match="unknown source"):
            store.add("insight", importance=5, kind="reflection", sources=[999])
    assert unrated.importance == DEFAULT_IMPORTANCE and unrated.importance_source == "default"
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with MemoryStore(path) as again:
        assert len(again) == 2  # the failed adds left nothing behind
        assert again.get(kept.id) == kept
        assert [m.text for m in again.recent(5, kinds=["preference"])] == ["The user prefers metric units"]


def test_model_rates_importance_and_a_failing_model_loses_nothing():
    with ScriptedServer([call("rate_importance", importance=8), {"status": 400, "body": {"error": "no"}}]) as srv:
        store = MemoryStore(model=model_for(srv))
        rated = store.add("The user's flight was cancelled")
        unrated = store.add("The user said hello")
        asked = srv.requests[0]
    assert (rated.importance, rated.importance_source) == (8, "model")
    assert "The user's flight was cancelled" in json.dumps(asked["messages"])
    assert asked["tool_choice"]["function"]["name"] == "rate_importance"
    assert (unrated.importance, unrated.importance_source) == (DEFAULT_IMPORTANCE, "default")
    assert len(store) == 2


def test_reflection_runs_when_importance_adds_up():
    insights = call(
        "write_insights",
        insights=[
            {"text": "Builds fail whenever the cache volume is full", "sources": [1, 3], "importance": 8},
            {"text": "Ignored: cites nothing real", "sources": [42], "importance": 2},
        ],
    )
    with ScriptedServer([insights]) as srv:
        store = MemoryStore(model=model_for(srv), reflection_threshold=12)
        a = store.add("Build 41 failed: no space left on the cache volume", importance=5)
        b = store.add("Lunch was late", importance=2)
        assert len(srv.requests) == 0  # 7 < 12: no reflection yet
        c = store.add("Build 44 failed after the cache volume filled up", importance=6)
        prompt = json.dumps(srv.requests[0]["messages"])
        store.add("Another note", importance=2)  # the counter restarted: no second reflection
        assert len(srv.requests) == 1 and store.last_reflection_error is None
    assert "1. Build 41 failed" in prompt and "3. Build 44 failed" in prompt
    reflections = store.recent(10, kinds=["reflection"])
    assert [r.text for r in reflections] == [
        "Builds fail whenever the cache volume is full",
        "Ignored: cites nothing real",
    ]
    assert reflections[0].sources == (a.id, c.id) and reflections[1].sources == ()
    assert reflections[0].importance == 8 and b.id not in reflections[0].sources
    top = store.retrieve("why do builds fail", k=1, weights=RetrievalWeights(recency=0, importance=1, relevance=1))
    assert top[0].memory.kind == "reflection"


def test_reflection_failure_keeps_the_memory_and_says_why():
    with ScriptedServer([{"content": "I'd rather not"}], native_tools=False, json_schema=False) as srv:
        store = MemoryStore(model=model_for(srv), reflection_threshold=5)
        kept = store.add("Something important happened", importance=6)
    assert store.get(kept.id) is not None and store.recent(5, kinds=["reflection"]) == []
    assert store.last_reflection_error and "JSON" in store.last_reflection_error


def test_any_agent_can_remember_and_recall_through_tools():
    store = MemoryStore()
    store.add("The office wifi password is on the fridge", importance=6)
    script = [
        call("remember", text="The user's cat is named Miso", importance=9),
        call("recall", query="cat name"),
        call("final_answer", answer="Miso"),
    ]
    with ScriptedServer(script) as srv:
        result = Agent(model=model_for(srv), tools=memory_tools(store)).run("Remember my cat Miso, then recall it")
        third = srv.requests[2]
    assert result.status == "done" and result.answer == "Miso"
    outputs = [m["content"] for m in third["messages"] if m["role"] == "tool"]
    assert outputs[0].startswith("Remembered as #2 (importance 9)")
    assert outputs[1].splitlines()[0] == "#2 [observation, importance 9, just now] The user's cat is named Miso"
    assert len(store) == 2


def test_plan_draws_on_relevant_memories_and_links_its_steps():
    steps = ["Fetch the deploy key from the vault", "  Run the deploy script ", "Check the staging server", "Extra"]
    with ScriptedServer([call("write_plan", steps=steps)]) as srv:
        store = MemoryStore(model=model_for(srv), clock=Clock())
        key = store.add("The staging deploy key lives in the vault", importance=9)
        store.add("Had coffee and read the news", importance=1)
        insight = store.add("Deploys go smoother in the morning", importance=6, kind="reflection", sources=[key.id])
        stale = store.add('Plan for "deploy to staging", step 1/1: do it by hand', importance=5, kind="plan")
        plan = store.plan("deploy  to staging", k=1, max_steps=3)
        asked = srv.requests[0]
    prompt = json.dumps(asked["messages"])
    assert asked["tool_choice"]["function"]["name"] == "write_plan"
    assert "Goal: deploy to staging" in prompt
    assert "The staging deploy key lives in the vault" in prompt  # the most relevant memory
    assert "Deploys go smoother in the morning" in prompt  # a recent reflection
    assert "Had coffee" not in prompt and "by hand" not in prompt  # beyond k; earlier plans are left out
    assert [m.text for m in plan] == [
        'Plan for "deploy to staging", step 1/3: Fetch the deploy key from the vault',
        'Plan for "deploy to staging", step 2/3: Run the deploy script',
        'Plan for "deploy to staging", step 3/3: Check the staging server',
    ]
    assert [m.kind for m in plan] == ["plan"] * 3 and plan[0].id < plan[1].id < plan[2].id
    assert all(m.sources == (key.id, insight.id) for m in plan)
    assert store.recent(10, kinds=["plan"]) == [store.get(stale.id), *plan]  # stored as returned, links included
    assert store.last_plan_error is None


def test_a_failing_plan_stores_nothing_and_says_why():
    script = [{"content": "Just wing it."}, {"status": 400, "body": {"error": "bad request"}}]
    with ScriptedServer(script, native_tools=False, json_schema=False) as srv:
        store = MemoryStore(model=model_for(srv))
        store.add("The release is on Friday", importance=7)
        assert store.plan("ship the release") == []
        assert store.last_plan_error and "JSON" in store.last_plan_error
        assert store.plan("ship the release") == []
        assert store.last_plan_error and "400" in store.last_plan_error
        assert len(srv.requests) == 2
    assert len(store) == 1 and store.recent(5, kinds=["plan"]) == []
    with pytest.raises(ValueError, match="needs a model"):
        MemoryStore().plan("anything")


def test_an_agent_plans_through_the_plan_tool():
    script = [
        call("plan", goal="Water the plants"),
        call("write_plan", steps=["Fill the can", "Water the ferns"]),  # the store's own model call
        call("final_answer", answer="Fill the can, then water the ferns."),
    ]
    assert [t.name for t in memory_tools(MemoryStore())] == ["remember", "recall"]  # no model: no planning
    with ScriptedServer(script) as srv:
        model = model_for(srv)
        store = MemoryStore(model=model)
        store.add("The ferns need water every two days", importance=6)
        result = Agent(model=model, tools=memory_tools(store)).run("Plan watering the plants")
        planning, last = srv.requests[1], srv.requests[2]
    assert result.status == "done"
    assert "The ferns need water every two days" in json.dumps(planning["messages"])
    (output,) = [m["content"] for m in last["messages"] if m["role"] == "tool"]
    assert output.splitlines() == [
        '#2 Plan for "Water the plants", step 1/2: Fill the can',
        '#3 Plan for "Water the plants", step 2/2: Water the ferns',
    ]
    assert [m.sources for m in store.recent(5, kinds=["plan"])] == [(1,), (1,)]


def test_odd_input_is_stored_or_refused_cleanly() -> None:
    store = MemoryStore()
    stored = store.add("half an emoji \ud83d here", importance=3)
    assert stored.text == "half an emoji \ufffd here"  # before: UnicodeEncodeError from SQLite
    assert store.retrieve("emoji", kinds=[]) == []  # no kind asked for is no kind, not every kind
    assert [m.memory.text for m in store.retrieve("emoji", k=2.0)] == [stored.text]  # a float k
