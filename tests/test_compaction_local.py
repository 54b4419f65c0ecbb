"""The done-criterion of context compaction, on the real embedded model: with a 2048-token window and tool
observations of about 600 tokens each, a 16-step run (15 tool calls, then the answer) finishes with compaction
and fails with a context error without it. Slow (minutes on a loaded 2-core machine)."""

from __future__ import annotations

from typing import Any

import pytest

from agentlab import Agent, tool
from agentlab import events as ev

pytestmark = pytest.mark.integration

N_CTX = 2048
TASK = "Call read_page with n=1, then n=2, and so on, one page per step; then say how many boxes crate 1-0 had."


def page(n: int) -> str:
    """About 600 tokens of the embedded model's tokenizer; the last line says which page comes next."""
    lines = [
        f"Crate {n}-{i} of the shipping log arrived at dock {(n + i) % 9} with {7 * i + n} boxes." for i in range(26)
    ]
    return f"Page {n} of the shipping log. " + " ".join(lines) + f" End of page {n}. Next: read page {n + 1}."


@tool
def read_page(n: int) -> str:
    """Read one page of the shipping log.

    Args:
        n: The page number, from 1.
    """
    return page(n)


def long_run(model: Any, *, compaction: bool) -> Any:
    # min_tool_calls keeps the model calling tools for 15 steps; the 16th (the last the budget allows) is the answer.
    agent = Agent(model, tools=[read_page], strategy="react", min_tool_calls=15, max_steps=16, compaction=compaction)
    return agent.run(TASK)


@pytest.fixture(scope="module")
def small_window_model(local_model: Any) -> Any:
    from agentlab.models.local import LocalModel

    model = LocalModel(n_ctx=N_CTX)
    assert 500 <= model.count_tokens(page(7)) <= 700  # the observations are as long as the test says
    return model


def test_with_compaction_a_long_run_reaches_an_answer_within_the_window(small_window_model: Any) -> None:
    result = long_run(small_window_model, compaction=True)

    assert result.status == "done", result.error
    assert result.steps == 16 and result.answer
    pages = [e for e in result.events if isinstance(e, ev.ToolResult) and e.call.name == "read_page" and e.ok]
    assert len(pages) >= 12  # the model may also try `recall`; most steps read a 600-token page
    compacted = [e for e in result.events if isinstance(e, ev.Compacted)]
    assert compacted and all(e.window == N_CTX and e.tokens_after < e.tokens_before for e in compacted)
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    assert all(c.usage.prompt_tokens < N_CTX for c in calls)


def test_without_compaction_the_same_run_fails_on_the_context_window(small_window_model: Any) -> None:
    result = long_run(small_window_model, compaction=False)

    assert result.status == "error"
    assert "context" in (result.error or "").lower()
    assert result.steps < 16 and not any(isinstance(e, ev.Compacted) for e in result.events)
