"""Trajectory export: JSONL traces of runs → fine-tuning data in the OpenAI chat format with tool calls.

A trace file holds one or more runs appended one after another (each starts with `run_started`). Each
kept run becomes one line: ``{"messages": [system?, user task, assistant tool_calls, tool results, ...,
final assistant answer], "tools": [schemas]}``. What the model got wrong along the way is left out: replies
that could not be parsed and repeated calls that were never executed do not appear, only the steps that
ran. Runs written concurrently into one file interleave and cannot be split: give each its own file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
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
    notes: list[str] = field(default_factory=list)  # input lines left out, e.g. a last line cut short by a crash

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


def read_runs(paths: Iterable[str | Path], notes: list[str] | None = None) -> Iterator[TraceEvents]:
    """The runs of every trace file in `paths`, in order (with `notes`, a last line cut short is skipped and
    described there: see `read_trace`)."""
    for path in paths:
        yield from split_runs(read_trace(path, notes))


def to_openai_chat(run: TraceEvents, system: str | None = None) -> dict[str, Any] | None:
    """One fine-tuning example from one run, or None when the run has no final answer to learn from."""
    start = run[0]
    answer = next((e.get("answer") for e in reversed(run) if e.get("kind") == "final"), None)
    if start.get("kind") != "run_started" or not isinstance(answer, str) or not isinstance(start.get("task"), str):
        return None
    # Events of an unexpected shape (a hand-edited or foreign trace) are left out like refused calls, never a crash.
    results = {
        e["call"]["id"]: e
        for e in run
        if e.get("kind") == "tool_result" and _is_call(e.get("call")) and isinstance(e.get("output"), str)
    }
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    # A chat's later turn is learned with the turns before it (the run's history, repaired when it started).
    earlier = start.get("history")
    history = [m for m in earlier if _is_message(m)] if isinstance(earlier, list) else []
    messages += [m for m in history if not (system and m["role"] == "system")]
    messages.append({"role": "user", "content": start["task"]})
    used_ids = {c["id"] for m in history for c in m.get("tool_calls") or [] if isinstance(c, dict) and "id" in c}
    for decision in (e for e in run if e.get("kind") == "decision" and e.get("tool_calls")):
        calls = decision["tool_calls"]
        if not isinstance(calls, list) or not all(_is_call(c) and c["id"] in results for c in calls):
            continue  # a repeated call the loop refused to run (or a malformed one): not behaviour to learn
        ids = [_unique_id(c["id"], used_ids) for c in calls]
        turn: dict[str, Any] = {"role": "assistant"}
        if isinstance(decision.get("thought"), str) and decision["thought"]:
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
    if isinstance(start.get("tool_schemas"), list) and start["tool_schemas"]:
        example["tools"] = start["tool_schemas"]
    return example


def _is_message(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") in ("system", "user", "assistant", "tool")


def _is_call(call: Any) -> bool:
    return isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(call.get("name"), str)


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
    for run in read_runs(traces, stats.notes):
        stats.runs += 1
        reason = keep_run(run, statuses, scorer, threshold)
        example = to_openai_chat(run, system) if reason is None else None
        if reason is None and example is None:
            reason = "no final answer"
        if reason is not None:
            stats.skip(reason)
            continue
        # Fine-tuning data travels far: redact again with today's rules, whatever wrote the trace.
        out.write(_json_line(redact_data(example, secrets)))
        stats.written += 1
    return stats


def _json_line(example: dict[str, Any]) -> str:
    line = json.dumps(example, ensure_ascii=False) + "\n"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from the trace ("\ud800"): escaped, it stays valid JSON
        line = json.dumps(example) + "\n"
    return line


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[IO[str]]:
    """A text file that becomes `path` only when the block ends without an error: until then `path` keeps
    what it held (a temporary file in the same folder is renamed over it at the end, or removed)."""
    target = Path(path)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
        # mkstemp makes the file private; the result gets the mode a plain open() would have given it.
        os.chmod(temporary, target.stat().st_mode & 0o7777 if target.exists() else 0o666 & ~_umask())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
