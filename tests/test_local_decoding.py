"""LocalModel's decoding: the grammar is compiled once per schema and token limit, the lazy grammar check
(`agentlab.models.llama_sampling`) gives the same replies as llama-cpp-python's own sampler, and a greedy
reply that loops is stopped.
The tests on the real model are marked integration; none asserts a time."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentlab import Agent, decisions
from agentlab import events as ev
from agentlab.models import LocalModel, ModelRequest
from agentlab.models.llama_sampling import LOOP_MAX_SEEN, LOOP_NGRAM, LoopGuard
from agentlab.models.local import cached_grammar, compile_grammar, grammar_cache_info
from agentlab.tools import ToolRegistry, tool

llama_cpp = pytest.importorskip("llama_cpp")


@tool
def multiply(a: int, b: int) -> int:
    """Multiply two whole numbers."""
    return a * b


def _schema(**extra: Any) -> dict[str, Any]:
    """A decision schema built afresh (a new object each call, as every step of a run builds its own)."""
    schema = decisions.decision_schema(ToolRegistry([multiply]))
    schema["properties"]["thought"].update(extra)
    return schema


def test_an_equal_schema_is_compiled_once() -> None:
    marker = {"description": "test_an_equal_schema_is_compiled_once"}  # a schema no other test caches
    before = grammar_cache_info()
    first = cached_grammar(_schema(**marker), 384, tight=True)
    second = cached_grammar(_schema(**marker), 384, tight=True)
    after = grammar_cache_info()
    assert second is first
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)


def test_a_different_schema_token_limit_or_property_order_is_a_new_grammar() -> None:
    schema = _schema(description="test_a_different_schema")
    base = cached_grammar(schema, 384, tight=True)
    reordered = {**schema, "properties": dict(reversed(list(schema["properties"].items())))}
    before = grammar_cache_info()
    others = [
        cached_grammar(schema, 200, tight=True),
        cached_grammar(schema, 384, tight=False),
        cached_grammar(reordered, 384, tight=True),
        cached_grammar(_schema(description="another"), 384, tight=True),
    ]
    assert all(other is not base for other in others)
    assert grammar_cache_info().misses - before.misses == len(others)


def test_the_token_limit_is_raised_when_the_smallest_decision_needs_more() -> None:
    _, needed = cached_grammar(_schema(description="tiny limit"), 8, tight=True)
    assert needed > 8 and compile_grammar(_schema(description="tiny limit"), 8, tight=True)[1] == needed


def test_a_schema_the_converter_cannot_read_falls_back_to_any_json_object() -> None:
    from llama_cpp.llama_grammar import JSON_GBNF

    grammar, limit = compile_grammar({"type": "string", "pattern": "(no anchors"}, 100, tight=False)
    json_grammar = llama_cpp.LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    assert limit == 100 and vars(grammar) == vars(json_grammar)


class RecordingModel(LocalModel):
    """The real embedded model, keeping each request's response schema."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.schemas: list[str] = []

    async def complete(self, request: ModelRequest, on_retry: Any = None, *, on_delta: Any = None) -> Any:
        if request.response_schema is not None:
            self.schemas.append(json.dumps(request.response_schema, sort_keys=True))
        return await super().complete(request, on_retry, on_delta=on_delta)


def _decisions(result: Any) -> list[tuple[str, list[tuple[str, Any]]]]:
    return [
        (e.thought, [(c.name, c.arguments) for c in e.tool_calls]) for e in result.events if isinstance(e, ev.Decision)
    ]


TASK = "What is 6 times 7? Use the multiply tool."


@pytest.mark.integration
def test_a_react_run_compiles_each_schema_once(local_model: LocalModel) -> None:
    model = RecordingModel()
    agent = Agent(model=model, tools=[multiply], max_steps=3)
    before = grammar_cache_info()
    agent.run(TASK)
    agent.run(TASK)  # a second run sends the same schemas again
    after = grammar_cache_info()
    distinct = len(set(model.schemas))
    assert len(model.schemas) >= 2
    assert after.misses - before.misses <= distinct  # an earlier test may have compiled one already
    assert (after.hits + after.misses) - (before.hits + before.misses) == len(model.schemas)


@pytest.mark.integration
def test_the_replies_are_the_same_with_and_without_the_cache_and_the_lazy_check(local_model: LocalModel) -> None:
    results = {}
    lazy = {"cache_grammar": True, "lazy_grammar": True, "stop_loops": False}  # a stopped loop changes a reply
    for options in ({"cache_grammar": False, "lazy_grammar": False}, lazy):
        model = LocalModel(**options)
        with model.lock:
            model.llama.reset()  # the same cold start for both
        results[tuple(options.values())] = Agent(model=model, tools=[multiply], max_steps=3).run(TASK)
    plain, fast = results.values()
    assert _decisions(plain) and _decisions(fast) == _decisions(plain)
    assert (fast.status, fast.answer, fast.usage) == (plain.status, plain.answer, plain.usage)


@pytest.mark.integration
async def test_the_lazy_check_runs_only_for_greedy_constrained_decoding(local_model: LocalModel) -> None:
    request = ModelRequest(
        messages=[{"role": "user", "content": TASK}], response_schema=_schema(), max_tokens=48, temperature=0.0
    )
    await LocalModel().complete(request)
    sampler = local_model.llama.last_sampler
    assert sampler is not None and sampler.tokens > 0 and 0 < sampler.full_checks <= sampler.tokens
    await LocalModel(lazy_grammar=False).complete(request)
    assert local_model.llama.last_sampler is None
    await LocalModel().complete(ModelRequest(messages=request.messages, response_schema=_schema(), temperature=0.7))
    assert local_model.llama.last_sampler is None  # sampling at a temperature keeps the library's sampler


def _conversation(system: str, extended: bool) -> ModelRequest:
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "What is 7 squared?"}]
    if extended:
        messages += [{"role": "assistant", "content": "49."}, {"role": "user", "content": "And 8 squared?"}]
    return ModelRequest(messages=messages, max_tokens=4)


async def _prompt_tokens_read(model: LocalModel, request: ModelRequest) -> int:
    """How many prompt tokens llama.cpp evaluated for `request` (the rest came from the KV cache)."""
    before = llama_cpp.llama_perf_context(model.llama.ctx).n_p_eval
    await model.complete(request)
    return llama_cpp.llama_perf_context(model.llama.ctx).n_p_eval - before


@pytest.mark.integration
async def test_kept_states_let_two_conversations_take_turns_without_rereading(local_model: LocalModel) -> None:
    systems = [f"You answer briefly. Conversation {name}: " + "facts " * 60 for name in "AB"]
    read: dict[int, list[int]] = {}
    for kept in (0, 2):
        model = LocalModel(kept_states=kept)
        with model.lock:
            model.llama.reset()
        for system in systems:
            await model.complete(_conversation(system, extended=False))
        read[kept] = [await _prompt_tokens_read(model, _conversation(system, extended=True)) for system in systems]
    assert all(tokens > 60 for tokens in read[0]), read  # each turn read its conversation again
    assert all(tokens < 30 for tokens in read[2]), read  # each resumed from its kept state: only the new turn
    assert local_model.kept_states == 0 and LocalModel().llama.cache is not None  # the last call set it
    await local_model.complete(_conversation(systems[0], extended=False))
    assert local_model.llama.cache is None  # a model without kept states turns the cache off again


def _first_refused(tokens: list[int]) -> int | None:
    """Where a fresh guard first refuses a token of `tokens` written in order (None: nowhere)."""
    guard = LoopGuard()
    for at, token in enumerate(tokens):
        if guard.refuses(token):
            return at
        guard.add(token)
    return None


def test_the_loop_guard_refuses_a_stretch_written_twice_already_of_any_period() -> None:
    assert _first_refused([0] * 40) == LOOP_NGRAM + LOOP_MAX_SEEN - 1  # thirteen zeros, not fourteen
    assert _first_refused([2, 3] * 40) == LOOP_NGRAM + 2 * (LOOP_MAX_SEEN - 1) + 1  # "2.2.2.2..."
    unit = list(range(16))  # a loop of sixteen tokens (SmolLM2 wrote "1000000000000000" over and over)
    at = _first_refused(unit * 6)
    assert at is not None and 2 * len(unit) <= at < 3 * len(unit)
    # Text copied once more (a thought's sentence repeated as the answer) and counting are not loops.
    sentence = list(range(100, 130))
    assert _first_refused([*sentence, 7, *sentence]) is None
    assert _first_refused(list(range(300))) is None


def _most_repeated_stretch(model: LocalModel, text: str) -> int:
    tokens = model.llama.tokenize(text.encode(), add_bos=False)
    stretches = [tuple(tokens[i : i + LOOP_NGRAM]) for i in range(len(tokens) - LOOP_NGRAM + 1)]
    return max((stretches.count(s) for s in set(stretches)), default=0)


@pytest.mark.integration
async def test_a_looping_greedy_reply_is_stopped_and_still_closes_its_json(local_model: LocalModel) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    request = ModelRequest(
        messages=[{"role": "user", "content": "Count: 2. 2. 2. 2. 2. 2. 2. 2. 2."}],
        response_schema=schema,
        max_tokens=120,
    )
    looping = await LocalModel(stop_loops=False).complete(request)
    assert _most_repeated_stretch(local_model, looping.content or "") > LOOP_MAX_SEEN  # SmolLM2 loops here
    stopped = await LocalModel().complete(request)
    assert json.loads(stopped.content or "")["answer"]
    assert _most_repeated_stretch(local_model, stopped.content or "") <= LOOP_MAX_SEEN
    assert local_model.llama.last_sampler.loops_stopped >= 1
    assert stopped.usage.completion_tokens < looping.usage.completion_tokens
