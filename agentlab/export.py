"""Trajectory export: JSONL traces of runs → fine-tuning data in the OpenAI chat format with tool calls.

A trace file holds one or more runs appended one after another (each starts with `run_started`). Each
kept run becomes one line: ``{"messages": [system?, user task, assistant tool_calls, tool results, ...,
final assistant answer], "tools": [schemas]}``. What the model got wrong along the way is left out: replies
that could not be parsed and repeated calls that were never executed do not appear, only the steps that
ran. Runs written concurrently into one file interleave and cannot be split: give each its own file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agentlab._redact import redact_data, secret_values
from agentlab.trace import read_trace, run_status
from agentlab.trace import split_runs as group_runs

TraceEvents = list[dict[str, Any]]
Scorer = Callable[[TraceEvents], bool | float]
"""Judges one run from its trace events: True/False, or a number compared with the threshold."""

FORMATS = ("openai-chat",)


@dataclass
class ExportStats:
    """What an export kept and why it left runs out."""

    runs: int = 0
    written: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        """Count one run left out for `reason`."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def summary(self) -> str:
        """One line saying how many runs were written and why the others were skipped."""
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()))
        return f"exported {self.written} of {self.runs} runs" + (f" (skipped: {reasons})" if reasons else "")


def split_runs(events: Iterable[dict[str, Any]]) -> list[TraceEvents]:
    """One list of events per run; events before the first `run_started` belong to no run and are dropped."""
    # The trace's grouping keeps the leading events (for readers that show them); an export has no run for them.
    return [run for run in group_runs(events) if run[0].get("kind") == "run_started"]


def read_runs(paths: Iterable[str | Path]) -> Iterator[TraceEvents]:
    """The runs of every trace file in `paths`, in order."""
    for path in paths:
        yield from split_runs(read_trace(path))


def to_openai_chat(run: TraceEvents, system: str | None = None) -> dict[str, Any] | None:
    """One fine-tuning example from one run, or None when the run has no final answer to learn from."""
    start = run[0]
    answer = next((e["answer"] for e in reversed(run) if e.get("kind") == "final"), None)
    if start.get("kind") != "run_started" or answer is None:
        return None
    results = {e["call"]["id"]: e for e in run if e.get("kind") == "tool_result"}
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": start["task"]})
    used_ids: set[str] = set()
    for decision in (e for e in run if e.get("kind") == "decision" and e.get("tool_calls")):
        calls = decision["tool_calls"]
        if not all(c["id"] in results for c in calls):
            continue  # a repeated call the loop refused to run: not behaviour to learn
        ids = [_unique_id(c["id"], used_ids) for c in calls]
        turn: dict[str, Any] = {"role": "assistant"}
        if decision.get("thought"):
            turn["content"] = decision["thought"]
        turn["tool_calls"] = [
            {
                "id": new_id,
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"], ensure_ascii=False)},
            }
            for new_id, c in zip(ids, calls, strict=True)
        ]
        messages.append(turn)
        messages += [
            {"role": "tool", "tool_call_id": new_id, "content": results[c["id"]]["output"]}
            for new_id, c in zip(ids, calls, strict=True)
        ]
    messages.append({"role": "assistant", "content": answer})
    example: dict[str, Any] = {"messages": messages}
    if start.get("tool_schemas"):
        example["tools"] = start["tool_schemas"]
    return example


def _unique_id(call_id: str, used: set[str]) -> str:
    """Tool call ids must be unique within an example; JSON-mode runs and some servers repeat them."""
    candidate, n = call_id or "call", 1
    while candidate in used:
        n += 1
        candidate = f"{call_id or 'call'}_{n}"
    used.add(candidate)
    return candidate


def keep_run(run: TraceEvents, statuses: Sequence[str] | None, scorer: Scorer | None, threshold: float) -> str | None:
    """None when the run passes the filters, else the reason it does not."""
    status = run_status(run)
    if status is None:
        return "incomplete"
    if statuses is not None and status not in statuses:
        return f"status {status}"
    if scorer is not None:
        score = scorer(run)
        passed = score if isinstance(score, bool) else float(score) >= threshold
        if not passed:
            return "scorer"
    return None


def export_openai_chat(
    traces: Iterable[str | Path],
    out: IO[str],
    *,
    statuses: Sequence[str] | None = ("done",),
    scorer: Scorer | None = None,
    threshold: float = 0.5,
    system: str | None = None,
) -> ExportStats:
    """Write one JSON line per run that passes the filters; `statuses=None` keeps every finished run."""
    stats = ExportStats()
    secrets = secret_values()
    for run in read_runs(traces):
        stats.runs += 1
        reason = keep_run(run, statuses, scorer, threshold)
        example = to_openai_chat(run, system) if reason is None else None
        if reason is None and example is None:
            reason = "no final answer"
        if reason is not None:
            stats.skip(reason)
            continue
        # Fine-tuning data travels far: redact again with today's rules, whatever wrote the trace.
        out.write(json.dumps(redact_data(example, secrets), ensure_ascii=False) + "\n")
        stats.written += 1
    return stats
