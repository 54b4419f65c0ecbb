"""Context compaction: keep a request within the model's context window as a run grows.

The loop applies it to each request's messages just before they are sent, so every strategy gets it. When a
request would pass `threshold` of the window, the oldest turns are made shorter in two stages: first old tool
outputs become previews (the full text goes to a memory store the `recall` tool searches), then the oldest
turns are summarised by the model itself. Invariants: the system prompt and the task are never dropped; a
tool call stays with its result (turns are kept or removed whole); a failed or empty summary never replaces
anything (the oldest whole turns are dropped instead).
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentlab.models.base import Model, ModelRequest
from agentlab.run.state import BudgetExceeded
from agentlab.tools import Tool

if TYPE_CHECKING:
    from agentlab.memory.store import MemoryStore

Messages = list[dict[str, Any]]
Summariser = Callable[[Messages], Awaitable[str | None]]
"""Asks the model for a summary of these turns; None (or empty) when it failed."""

SUMMARY_SYSTEM = (
    "You summarise the earlier steps of an agent's work. Keep every fact, number, name and result it found, "
    "and what it tried that failed. Be brief. Write only the summary."
)
SUMMARY_PREFIX = "Summary of the earlier steps (their full tool outputs can be searched with the recall tool):\n"
PREVIEW_NOTE = "\n[... {hidden} more characters not shown; search them with recall(query)]"
_PREVIEW_MARK = PREVIEW_NOTE.split("}", 1)[1]  # what every preview ends with
# Characters per token before any reply has calibrated the estimate (English text and JSON, BPE tokenisers).
DEFAULT_CHARS_PER_TOKEN = 3.5
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators of each message in a chat template


class TokenCounter:
    """Tokens of a text: the model's own tokenizer where one is at hand, else characters per token,
    calibrated by the prompt tokens the endpoint reports for each request."""

    def __init__(self, tokenize: Callable[[str], int] | None = None) -> None:
        self.tokenize = tokenize
        self.chars_per_token = DEFAULT_CHARS_PER_TOKEN

    def text(self, text: str) -> int:
        if self.tokenize is not None:
            return self.tokenize(text)
        return int(len(text) / self.chars_per_token) + 1

    def calibrate(self, request: ModelRequest, prompt_tokens: int) -> None:
        """Learn characters per token from a request and the prompt tokens the endpoint reported for it."""
        chars = sum(len(_text(m)) for m in request.messages) + (len(json.dumps(request.tools)) if request.tools else 0)
        tokens = prompt_tokens - MESSAGE_OVERHEAD_TOKENS * len(request.messages)
        if self.tokenize is None and chars > 200 and tokens > 0:
            self.chars_per_token = min(8.0, max(1.0, chars / tokens))

    def messages(self, messages: Messages, tools: list[dict[str, Any]] | None = None) -> int:
        total = self.text(json.dumps(tools)) if tools else 0
        for message in messages:
            total += MESSAGE_OVERHEAD_TOKENS + self.text(_text(message))
        return total


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    text = content if isinstance(content, str) else json.dumps(content) if content else ""
    for call in message.get("tool_calls") or []:
        function = call.get("function") or {}
        text += f"{function.get('name', '')}{function.get('arguments', '')}"
    return text


@dataclass
class Outcome:
    """What one compaction did: the request to send, and the numbers for a `Compacted` event."""

    request: ModelRequest
    action: str
    tokens_before: int
    tokens_after: int
    summary: str | None = None  # a summary asked for this time ("" when asking failed), for replay


@dataclass
class Compactor:
    """One run's compaction state (its summary is reused from step to step while the turns it covers stay
    the same).

    Attributes:
        window: The model's context window in tokens.
        counter: How tokens are counted.
        threshold: The share of the window a request (plus its reply's room) may use before it is compacted.
        keep_recent: Turns at the end that are never shortened.
        preview_chars: How much of an old tool output stays in place.
        reply_tokens: Room kept for the reply when the request sets no `max_tokens`.
    """

    window: int
    counter: TokenCounter = field(default_factory=TokenCounter)
    threshold: float = 0.75
    keep_recent: int = 1
    preview_chars: int = 240
    reply_tokens: int = 512
    _memory: MemoryStore | None = None  # made when something is first shortened: most runs never are
    _stored: set[str] = field(default_factory=set)
    _summary: tuple[str, int, str] | None = None  # (digest of the turns covered, how many, the summary)
    _asked: str | None = None  # the summary asked for during this compaction, if one was

    @property
    def memory(self) -> MemoryStore:
        """Where shortened text is kept for `recall`: a SQLite store, opened on first use."""
        if self._memory is None:
            from agentlab.memory.store import MemoryStore

            self._memory = MemoryStore()
        return self._memory

    @property
    def shortened_anything(self) -> bool:
        """Whether some text was shortened or dropped (and kept for `recall`)."""
        return bool(self._stored)

    @property
    def limit(self) -> int:
        return int(self.window * self.threshold)

    def fits(self, request: ModelRequest) -> bool:
        room = request.max_tokens or self.reply_tokens
        return self.counter.messages(request.messages, request.tools) + min(room, self.window // 4) <= self.limit

    async def compact(self, request: ModelRequest, summarise: Summariser, task: str | None = None) -> Outcome | None:
        """The request made to fit, or None when it fits as it is; `task` (the run's) is never shortened."""
        if self.fits(request):
            return None
        before = self.counter.messages(request.messages, request.tools)
        head, turns = split_turns(request.messages, task)
        old, recent = turns[: -self.keep_recent or None], turns[-self.keep_recent :] if self.keep_recent else []
        if len(old) == 0:
            return None
        old = [await self._previews(turn) for turn in old]
        action = "previews"
        shortened = _request(request, head, old, recent)
        if not self.fits(shortened):
            shortened, action = await self._summarised(request, head, old, recent, summarise)
        after = self.counter.messages(shortened.messages, shortened.tools)
        summary, self._asked = self._asked, None
        return Outcome(shortened, action, before, after, summary)

    async def _previews(self, turn: Messages) -> Messages:
        """The turn with its long tool outputs shortened to previews (the full text kept for `recall`)."""
        shortened = []
        for message in turn:
            content = message.get("content")
            observation = message.get("role") == "tool" or (message.get("role") == "user" and len(turn) > 1)
            if observation and isinstance(content, str) and len(content) > self.preview_chars + len(PREVIEW_NOTE):
                await self._remember(content)
                hidden = len(content) - self.preview_chars
                message = {**message, "content": content[: self.preview_chars] + PREVIEW_NOTE.format(hidden=hidden)}
            shortened.append(message)
        return shortened

    async def _remember(self, text: str) -> None:
        digest = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()
        if digest not in self._stored:
            self._stored.add(digest)
            await self.memory.aadd(text, importance=5.0)

    async def _summarised(
        self, request: ModelRequest, head: Messages, old: list[Messages], recent: list[Messages], summarise: Summariser
    ) -> tuple[ModelRequest, str]:
        """Summarise the oldest turns (all but the recent ones); when that fails, drop the oldest whole turns.
        A summary is reused while the turns it covers stay the same; turns that became old since are kept
        beside it until they no longer fit, and are then summarised together with it."""
        earlier = self._summary
        if earlier is not None and earlier[1] <= len(old) and _digest(old[: earlier[1]]) == earlier[0]:
            note = [{"role": "user", "content": SUMMARY_PREFIX + earlier[2]}]
            reused = _request(request, head, [note, *old[earlier[1] :]], recent)
            if self.fits(reused):
                return reused, "summary"
            to_summarise = [*note, *(m for turn in old[earlier[1] :] for m in turn)]
        else:
            to_summarise = [m for turn in old for m in turn]
        for message in to_summarise:
            content = message.get("content")
            # What recall finds: observations in full (a preview's full text is kept already; the model's own
            # decisions, JSON actions in JSON formats, would only crowd the results).
            if not isinstance(content, str) or message.get("role") not in ("tool", "user"):
                continue
            if content.strip() and _PREVIEW_MARK not in content:
                await self._remember(content)
        summary = (await _safely(summarise, to_summarise) or "").strip()
        self._asked = summary
        if summary:
            note = [{"role": "user", "content": SUMMARY_PREFIX + summary}]
            summarised = _request(request, head, [note], recent)
            if self.fits(summarised):
                self._summary = (_digest(old), len(old), summary)
                return summarised, "summary"
        # A failed or empty summary replaces nothing: drop the oldest whole turns until the request fits.
        kept = list(old)
        while kept and not self.fits(_request(request, head, kept, recent)):
            kept.pop(0)
        return _request(request, head, kept, recent), "dropped"

    def recall_tool(self) -> Tool[..., Any]:
        """The `recall` tool: search the run's earlier tool outputs that compaction shortened or dropped."""
        from agentlab.memory.store import RetrievalWeights

        memory = self.memory
        by_relevance = RetrievalWeights(recency=0.0, importance=0.0, relevance=1.0)

        def recall(query: str) -> str:
            """Search the full text of earlier tool outputs that were shortened to save context.

            Args:
                query: Words to look for.
            """
            # By relevance alone: the store's recency weighs shortened outputs seconds apart as far apart.
            found = memory.retrieve(query, k=3, weights=by_relevance, matching_only=True)
            return "\n---\n".join(m.memory.text for m in found) if found else "Nothing earlier matches."

        return Tool(recall, name="recall", idempotent=True)


async def _safely(summarise: Summariser, messages: Messages) -> str | None:
    try:
        return await summarise(messages)
    except BudgetExceeded:  # the run's time or tokens ran out while it asked: that ends the run
        raise
    except Exception:  # a failed summary only means falling back to dropping turns
        return None


def split_turns(messages: Messages, task: str | None = None) -> tuple[Messages, list[Messages]]:
    """The pinned head (the system messages and the task: everything up to the first reply) and the turns
    after it, each an assistant message with the tool results and observations that answer it. A run that
    continues a conversation has its task after the earlier turns: the head then runs through the first
    user message that holds `task`, so that the task is neither shortened nor dropped (the earlier turns are
    pinned with it)."""
    first_reply = next((i for i, m in enumerate(messages) if m.get("role") == "assistant"), len(messages))
    if task and not any(_holds(m, task) for m in messages[:first_reply]):  # not already pinned (no history)
        later = (i for i in range(first_reply, len(messages)) if _holds(messages[i], task))
        first_reply = next((i + 1 for i in later), first_reply)
    head: Messages = list(messages[:first_reply])
    turns: list[Messages] = []
    for message in messages[first_reply:]:
        if message.get("role") == "assistant" or not turns:
            turns.append([])
        turns[-1].append(message)
    return head, turns


def _holds(message: dict[str, Any], task: str) -> bool:
    content = message.get("content")
    return message.get("role") == "user" and isinstance(content, str) and task in content


def _request(request: ModelRequest, head: Messages, old: list[Messages], recent: list[Messages]) -> ModelRequest:
    messages = head + [m for turn in old for m in turn] + [m for turn in recent for m in turn]
    return dataclasses.replace(request, messages=messages)


def _digest(turns: list[Messages]) -> str:
    return hashlib.sha256(json.dumps(turns, sort_keys=True, default=str).encode()).hexdigest()


def summary_request(messages: Messages) -> ModelRequest:
    """The request that asks the model for a summary of these turns."""
    lines = []
    for message in messages:
        text = _text(message).strip()
        if text:
            lines.append(f"{message.get('role')}: {text}")
    return ModelRequest(
        [{"role": "system", "content": SUMMARY_SYSTEM}, {"role": "user", "content": "\n".join(lines)}], max_tokens=256
    )


async def context_window(model: Model) -> int | None:
    """The model's context window in tokens, where it says: a `context_window()` method (an endpoint's
    advertised limit) or attribute, or `n_ctx` (the embedded model); None when unknown."""
    found = getattr(model, "context_window", None)
    if callable(found):
        found = found()
        if inspect.isawaitable(found):
            found = await found
    if isinstance(found, int) and found > 0:
        return found
    n_ctx = getattr(model, "n_ctx", None)
    return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def tokenizer_of(model: Model) -> Callable[[str], int] | None:
    """The model's own token counter (`count_tokens(text)`), when it has one."""
    count = getattr(model, "count_tokens", None)
    return count if callable(count) else None
