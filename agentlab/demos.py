"""Demonstration retrieval (after ART, Paranjape et al., 2023): solved episodes as few-shot examples.

A `DemoLibrary` keeps successful runs as compact trajectories (thought / action / observation lines
and the answer) in a JSONL file; for a new task it retrieves the most similar solved tasks by BM25
and renders them as instructions, which any strategy puts in its system prompt:

    library = DemoLibrary("demos.jsonl")
    result = Agent(model, tools, instructions=library.as_instructions(task, k=2)).run(task)
    library.add_from_result(task, result)

Opt-in and explicit: nothing is stored or injected unless you call these methods.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agentlab import events as ev
from agentlab._jsonl import jsonl_lines
from agentlab._text import clip
from agentlab.bm25 import bm25_scores

if TYPE_CHECKING:
    from agentlab.agent import RunResult

# Demos ride in every request's system prompt: keep them short.
MAX_OBSERVATION_CHARS = 300
MAX_TRAJECTORY_LINES = 24
PREAMBLE = (
    "Solved examples of similar tasks follow. Reuse their approach where it fits; "
    "the tools' results for the current task may differ, so do not copy their answers."
)


@dataclass(frozen=True)
class Demo:
    """A solved task kept as a few-shot example: the task, its condensed trajectory and the answer."""

    task: str
    trajectory: tuple[str, ...]
    answer: str
    created_at: float = 0.0

    def render(self) -> str:
        """The demonstration as prompt text."""
        return "\n".join([f"Task: {self.task}", *self.trajectory, f"Answer: {self.answer}"])


def trajectory_lines(events: Sequence[ev.Event], max_observation_chars: int = MAX_OBSERVATION_CHARS) -> list[str]:
    """A run's steps as "Thought:", "Action:" and "Observation:" lines (parse errors and notes left out)."""
    lines: list[str] = []
    for event in events:
        if isinstance(event, ev.Decision):
            if event.thought:
                lines.append(f"Thought: {_one_line(event.thought)}")
            lines += [f"Action: {c.name} {json.dumps(c.arguments, ensure_ascii=False)}" for c in event.tool_calls]
        elif isinstance(event, ev.ToolResult):
            label = "Observation" if event.ok else "Observation (error)"
            lines.append(f"{label}: {clip(event.output, max_observation_chars - 1, fold=True)}")
    return lines


class DemoLibrary:
    """Solved episodes in a JSONL file (or only in memory when `path` is None)."""

    def __init__(self, path: str | Path | None = None, *, max_trajectory_lines: int = MAX_TRAJECTORY_LINES) -> None:
        self.path = Path(path) if path is not None else None
        self.max_trajectory_lines = max_trajectory_lines
        self.problems: list[str] = []  # unreadable lines of the file: skipped here, left untouched there
        self._demos: list[Demo] = []
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            self._load(self.path)

    def _load(self, path: Path) -> None:
        for number, row in jsonl_lines(path, ("task", "trajectory", "answer")):
            try:
                if isinstance(row, str):
                    raise ValueError(row)
                demo = Demo(
                    str(row["task"]),
                    tuple(map(str, row["trajectory"])),
                    str(row["answer"]),
                    float(row.get("created_at", 0.0)),
                )
            except (TypeError, ValueError) as error:
                self.problems.append(f"{path}:{number}: not a demo ({error})")
            else:
                self._demos.append(demo)

    def __len__(self) -> int:
        return len(self._demos)

    def __iter__(self) -> Iterator[Demo]:
        return iter(list(self._demos))

    def add(self, task: str, trajectory: Sequence[str], answer: str) -> Demo:
        """Store one solved episode; an identical one already stored is returned instead."""
        lines = tuple(trajectory)
        if len(lines) > self.max_trajectory_lines:  # keep the start (the approach) and the end (the finish)
            half = self.max_trajectory_lines // 2
            lines = (*lines[:half], "…", *lines[-(self.max_trajectory_lines - half - 1) :])
        demo = Demo(task.strip(), lines, answer.strip(), time.time())
        with self._lock:
            for known in self._demos:
                if (known.task, known.trajectory, known.answer) == (demo.task, demo.trajectory, demo.answer):
                    return known
            self._demos.append(demo)
            if self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as file:
                    file.write(json.dumps(asdict(demo), ensure_ascii=False) + "\n")
        return demo

    def add_from_result(self, task: str, result: RunResult) -> Demo | None:
        """Keep a run as a demonstration if it succeeded (status "done" with an answer); else None."""
        if result.status != "done" or not result.answer:
            return None
        return self.add(task, trajectory_lines(result.events), result.answer)

    def retrieve(self, task: str, k: int = 2) -> list[Demo]:
        """The `k` stored demos whose tasks are most similar to `task` (BM25; unrelated ones left out)."""
        demos = list(self._demos)
        if k <= 0 or not demos:
            return []
        scores = bm25_scores(task, [d.task for d in demos])
        ranked = sorted(zip(scores, range(len(demos)), strict=True), key=lambda pair: (-pair[0], -pair[1]))
        return [demos[index] for score, index in ranked[:k] if score > 0]

    def as_instructions(self, task: str, k: int = 2) -> str | None:
        """The retrieved demos as system-prompt instructions, or None when none is similar."""
        found = self.retrieve(task, k)
        if not found:
            return None
        examples = "\n\n".join(f"Example {n}\n{demo.render()}" for n, demo in enumerate(found, 1))
        return f"{PREAMBLE}\n\n{examples}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
