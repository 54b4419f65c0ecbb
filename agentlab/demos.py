"""Demonstration retrieval (after ART, Paranjape et al., 2023): solved episodes as few-shot examples.

A `DemoLibrary` keeps successful runs as compact trajectories (thought / action / observation lines
and the answer) in a JSONL file; for a new task it retrieves the most similar solved tasks by BM25
and renders them as instructions, which any strategy puts in its system prompt:

    library = DemoLibrary("demos.jsonl")
    result = Agent(model, tools, instructions=library.as_instructions(task, k=2)).run(task)
    library.add_from_result(task, result)

Runs can also retrieve them by themselves: `Agent(demos=library, demos_k=2)` adds the demos retrieved for
each run's task to its instructions, whatever the strategy. With the default `demos=None`, runs on the
embedded small model (`LocalModel`) use `builtin_library()`, a few worked episodes of the built-in tools
(calculator, local_search/lookup, python); `demos=False` turns that off. Nothing is stored unless you call
`add` or `add_from_result`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

    def tool_names(self) -> set[str]:
        """The tools the demo calls (from "Action: name {...}" lines and JSON decision lines)."""
        names = set()
        for line in self.trajectory:
            if line.startswith("Action: "):
                names.add(line.removeprefix("Action: ").split(" ", 1)[0])
            elif line.startswith("{"):
                try:
                    action = json.loads(line).get("action") or {}
                except (ValueError, AttributeError):
                    continue
                if isinstance(action, dict) and isinstance(action.get("name"), str):
                    names.add(action["name"])
        return names - {"final_answer"}

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

    def retrieve(self, task: str, k: int = 2, tools: Collection[str] | None = None) -> list[Demo]:
        """The `k` stored demos whose tasks are most similar to `task` (BM25; unrelated ones left out); with
        `tools`, only demos that call no other tools than these."""
        demos = [d for d in self._demos if tools is None or d.tool_names() <= set(tools)]
        if k <= 0 or not demos:
            return []
        scores = bm25_scores(with_shape(task), [with_shape(d.task) for d in demos])
        ranked = sorted(zip(scores, range(len(demos)), strict=True), key=lambda pair: (-pair[0], -pair[1]))
        return [demos[index] for score, index in ranked[:k] if score > 0]

    def as_instructions(self, task: str, k: int = 2, tools: Collection[str] | None = None) -> str | None:
        """The retrieved demos as system-prompt instructions, or None when none is similar."""
        found = self.retrieve(task, k, tools)
        if not found:
            return None
        examples = "\n\n".join(f"Example {n}\n{demo.render()}" for n, demo in enumerate(found, 1))
        return f"{PREAMBLE}\n\n{examples}"


BUILTIN_DEMOS = "demos.jsonl"


@cache
def builtin_library() -> DemoLibrary:
    """Worked episodes of the built-in tools, shipped as `agentlab/data/demos.jsonl` (read once, never written)."""
    library = DemoLibrary()
    with resources.as_file(resources.files("agentlab") / "data" / BUILTIN_DEMOS) as path:
        library._load(path)
    return library


def resolve_demos(demos: DemoLibrary | bool | None, model: Any) -> DemoLibrary | None:
    """The library an agent uses: `demos` itself; for None, the built-in one when `model` is the embedded
    small model (small models gain most from examples) and none otherwise; for False, none."""
    if demos is None:
        from agentlab.models.resolve import is_small_model

        return builtin_library() if is_small_model(model) else None
    if demos is True:
        return builtin_library()
    if demos is False:
        return None
    if not isinstance(demos, DemoLibrary):
        raise TypeError(f"demos must be a DemoLibrary, True, False or None, not {type(demos).__name__}")
    return demos


def with_demos(
    instructions: str | None, library: DemoLibrary | None, task: str, k: int, tools: Collection[str]
) -> str | None:
    """`instructions` followed by the demos `library` holds for `task` (only those using `tools`)."""
    found = library.as_instructions(task, k, tools) if library is not None else None
    return "\n\n".join(part for part in (instructions, found) if part) or None


# Symbols a task's shape shows in: "What is (25 - 71) - 187 + 246?" has only stopwords and numbers for BM25,
# so without these it retrieved a percentage example instead of one that copies a parenthesised expression.
_SHAPE_WORDS = {"(": "shapeparen", "+": "shapeplus", "-": "shapeminus", "*": "shapetimes", "/": "shapedivide"}


def with_shape(task: str) -> str:
    """`task` followed by one word per arithmetic symbol in it, so that tasks of the same shape match."""
    shape = [_SHAPE_WORDS[c] for c in task if c in _SHAPE_WORDS]
    return " ".join([task, *shape])


def _one_line(text: str) -> str:
    return " ".join(text.split())
