"""Context compaction on the real embedded model: a 2048-token window and tool observations of about 600
tokens each. Without compaction the run fails with a context error on its fourth request; with it, the same
run reads page after page for 15 steps and then answers, every request within the window. Slow (minutes on a
loaded 2-core machine).

The log is read through a cursor (`read_next_page`, marked `repeatable`): the run's length is then set by
the budget, not by whether a 135M model can count pages (with `read_page(n)` it asked for page 5 twice
after a summary, and the stall guard ended the run)."""

from __future__ import annotations

from typing import Any

import pytest

from agentlab import Agent, tool
from agentlab import events as ev

pytestmark = pytest.mark.integration

N_CTX = 2048
TASK = "Read the shipping log with read_next_page, one page per step; then say how many boxes crate 1-0 had."


def page(n: int) -> str:
    """About 600 tokens of the embedded model's tokenizer; the last line says which page comes next."""
    lines = [
        f"Crate {n}-{i} of the shipping log arrived at dock {(n + i) % 9} with {7 * i + n} boxes." for i in range(26)
    ]
    return f"Page {n} of the shipping log. " + " ".join(lines) + f" End of page {n}. Next: read page {n + 1}."


def log_reader() -> Any:
    """A fresh `read_next_page` tool: each call returns the next page of the log."""
    cursor = iter(range(1, 100))

    @tool(repeatable=True)
    def read_next_page() -> str:
        """Read the next page of the shipping log."""
        return page(next(cursor))

    return read_next_page


def long_run(model: Any, *, compaction: bool) -> Any:
    # min_tool_calls keeps the model calling tools for 15 steps; the 16th (the last the budget allows) is the answer.
    agent = Agent(model, tools=[log_reader()], strategy="react", min_tool_calls=15, max_steps=16, compaction=compaction)
    return agent.run(TASK)


@pytest.fixture(scope="module")
def without_compaction(small_window_model: Any) -> Any:
    return long_run(small_window_model, compaction=False)


@pytest.fixture(scope="module")
def small_window_model(local_model: Any) -> Any:
    from agentlab.models.local import LocalModel

    model = LocalModel(n_ctx=N_CTX)
    assert 500 <= model.count_tokens(page(7)) <= 700  # the observations are as long as the test says
    return model


def test_without_compaction_the_run_fails_on_the_context_window(without_compaction: Any) -> None:
    result = without_compaction

    assert result.status == "error"
    assert "context" in (result.error or "").lower()
    assert not any(isinstance(e, ev.Compacted) for e in result.events)


def test_with_compaction_the_same_run_goes_on_to_an_answer_within_the_window(
    small_window_model: Any, without_compaction: Any
) -> None:
    result = long_run(small_window_model, compaction=True)

    assert result.status == "done", result.error
    assert result.answer and result.steps >= 15 > without_compaction.steps  # far past the step that overflowed
    pages = [e for e in result.events if isinstance(e, ev.ToolResult) and e.call.name == "read_next_page" and e.ok]
    assert len(pages) >= 10  # long observations kept coming after the overflow point (recall may take a step)
    compacted = [e for e in result.events if isinstance(e, ev.Compacted)]
    assert compacted and all(e.window == N_CTX and e.tokens_after < e.tokens_before for e in compacted)
    calls = [e for e in result.events if isinstance(e, ev.ModelCall)]
    assert all(c.usage.prompt_tokens < N_CTX for c in calls)
