"""Greedy decoding under a grammar that asks the grammar about one token instead of the whole vocabulary.

llama-cpp-python samples a constrained reply with the chain penalties → grammar → greedy: at every token
the grammar checks all ~49k vocabulary entries against its parse stacks, which costs about as much as the
model's own forward pass for a 135M model. Greedy decoding only needs the grammar's verdict on the token it
would pick: take the argmax of the penalised logits; if the grammar accepts that token it is also the argmax
of the masked logits, so the choice is the same; only when the grammar rejects it are all candidates
checked (llama.cpp's own `common_sampler` works the same way). Sampling at a temperature would need the
whole masked distribution, so it keeps the library's path.

The same sampler stops a greedy reply from looping (`stop_loops`): a tiny model decoding greedily can fall
into repeating one short unit ("2.2.2.2...", "1000000000..."), and the grammar's length budget then ends the
reply only after filling the string with it. A token that would write a stretch of `LOOP_NGRAM` tokens the
reply has written twice already is refused, and the next-best token the grammar allows is taken (the idea of
llama.cpp's DRY sampler, reduced to a hard limit on exact repeats).

This plugs into `llama_cpp.Llama` through its sampler factory (`Llama._init_sampler`, the one place a
generation builds its sampler); `lazy_llama_class()` returns the library's class unchanged when that hook is
missing, so a llama-cpp-python without it still works, only slower.
"""

from __future__ import annotations

import ctypes
from collections import Counter
from functools import cache
from typing import Any

import numpy as np

LOOP_NGRAM = 12  # tokens: a run of thirteen zeros stays possible, a fourteenth does not
LOOP_MAX_SEEN = 2  # a stretch of LOOP_NGRAM tokens may occur this many times in one reply, not once more


class LoopGuard:
    """The stretches of `LOOP_NGRAM` tokens one reply has written, counted, to refuse a token that would write
    one of them a third time: a loop of any period, not only a run of one token."""

    def __init__(self) -> None:
        self.tail: list[int] = []  # the last LOOP_NGRAM - 1 tokens
        self.seen: Counter[tuple[int, ...]] = Counter()

    def refuses(self, token: int) -> bool:
        return len(self.tail) == LOOP_NGRAM - 1 and self.seen[(*self.tail, token)] >= LOOP_MAX_SEEN

    def add(self, token: int) -> None:
        if len(self.tail) == LOOP_NGRAM - 1:
            self.seen[(*self.tail, token)] += 1
        self.tail = [*self.tail, token][-(LOOP_NGRAM - 1) :]


class LazyGrammarSampler:
    """The sampler of one greedy, grammar-constrained generation (what `Llama.sample` calls per token).

    Args:
        llm: The loaded `llama_cpp.Llama`.
        grammar: The `llama_cpp.LlamaGrammar` the reply must match.
        penalty_last_n, repeat_penalty, frequency_penalty, presence_penalty: As in llama.cpp's penalties.
        stop_loops: Refuse the token that would repeat a loop again (`LoopGuard`).
    """

    def __init__(
        self,
        llm: Any,
        grammar: Any,
        *,
        penalty_last_n: int,
        repeat_penalty: float,
        frequency_penalty: float,
        presence_penalty: float,
        stop_loops: bool = False,
    ) -> None:
        from llama_cpp import llama_cpp
        from llama_cpp._internals import LlamaSampler

        self._api = llama_cpp
        self.penalties = LlamaSampler()  # type: ignore[no-untyped-call]
        self.penalties.add_penalties(
            n_vocab=llm.n_vocab(),
            penalty_last_n=penalty_last_n,
            penalty_repeat=repeat_penalty,
            penalty_freq=frequency_penalty,
            penalty_present=presence_penalty,
        )
        self.grammar = LlamaSampler()  # type: ignore[no-untyped-call]
        self.grammar.add_grammar(llm._model, grammar)
        self.n_vocab = llm.n_vocab()
        self._candidates = (llama_cpp.llama_token_data * self.n_vocab)()
        self._view = np.ctypeslib.as_array(self._candidates)  # structured: id, logit, p
        self._one = (llama_cpp.llama_token_data * 1)()
        self.full_checks = 0  # tokens the grammar had to rule on over the whole vocabulary
        self.tokens = 0
        self.loops = LoopGuard() if stop_loops else None  # one sampler per generation: one reply's tokens
        self.loops_stopped = 0

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """The next token: the greedy choice among what the grammar allows (then accepted by both samplers)."""
        api = self._api
        logits = np.ctypeslib.as_array(api.llama_get_logits_ith(ctx.ctx, idx), shape=(self.n_vocab,))
        view = self._view
        view["id"] = np.arange(self.n_vocab, dtype=np.int32)
        view["logit"] = logits
        view["p"] = 0.0
        candidates = api.llama_token_data_array(self._candidates, self.n_vocab, -1, False)
        api.llama_sampler_apply(self.penalties.sampler, ctypes.byref(candidates))
        best = int(np.argmax(view["logit"]))
        loops = self.loops
        looping = loops is not None and loops.refuses(int(view["id"][best]))
        if looping or not self._allowed(best, float(view["logit"][best])):
            self.full_checks += 1
            api.llama_sampler_apply(self.grammar.sampler, ctypes.byref(candidates))
            best = int(np.argmax(view["logit"]))
            if loops is not None and loops.refuses(int(view["id"][best])):
                refused = float(view["logit"][best])
                view["logit"][best] = -np.inf
                if np.isfinite(view["logit"]).any():  # another token is allowed: take the next best
                    best = int(np.argmax(view["logit"]))
                    self.loops_stopped += 1
                else:  # the grammar allows nothing else
                    view["logit"][best] = refused
        token = int(view["id"][best])
        if loops is not None:
            loops.add(token)
        api.llama_sampler_accept(self.penalties.sampler, token)
        api.llama_sampler_accept(self.grammar.sampler, token)
        self.tokens += 1
        return token

    def _allowed(self, token: int, logit: float) -> bool:
        api = self._api
        self._one[0].id, self._one[0].logit, self._one[0].p = token, logit, 0.0  # type: ignore[assignment]
        single = api.llama_token_data_array(self._one, 1, -1, False)
        api.llama_sampler_apply(self.grammar.sampler, ctypes.byref(single))
        return bool(np.isfinite(self._one[0].logit))


@cache
def lazy_llama_class() -> type:
    """`llama_cpp.Llama` with greedy grammar-constrained generations sampled by `LazyGrammarSampler` while its
    `lazy_grammar` attribute is true, stopping loops while `stop_loops` is (both set per call, under the
    model's lock)."""
    from llama_cpp import Llama

    if not callable(getattr(Llama, "_init_sampler", None)):
        return Llama

    class LazyGrammarLlama(Llama):
        lazy_grammar = True
        stop_loops = True
        last_sampler: LazyGrammarSampler | None = None

        def _init_sampler(self, **options: Any) -> Any:  # type: ignore[override]  # keywords passed through
            simple = (
                self.lazy_grammar
                and options.get("grammar") is not None
                and options.get("temp") == 0.0
                and options.get("logits_processor") is None
            )
            if not simple:
                self.last_sampler = None
                return super()._init_sampler(**options)
            self.last_sampler = LazyGrammarSampler(
                self,
                options["grammar"],
                penalty_last_n=self.last_n_tokens_size,
                repeat_penalty=options.get("repeat_penalty", 1.0),
                frequency_penalty=options.get("frequency_penalty", 0.0),
                presence_penalty=options.get("presence_penalty", 0.0),
                stop_loops=self.stop_loops,
            )
            return self.last_sampler

    return LazyGrammarLlama
