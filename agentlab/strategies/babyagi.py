"""BabyAGI: work through a prioritised task queue towards an objective, with explicit stop conditions.

Each round: take the first task of the queue → execute it with an inner strategy (ReAct over the agent's
tools by default) → store its result → ask whether the objective is complete → ask for new tasks (dropping
any equal to a finished or queued one) → ask for the queue's order → repeat. The inner strategy runs *inside*
this one: its requests go through the same loop, so the agent's budgets, events and traces cover every model
call, and the step budget bounds the whole run.

The queue, the results and the run's state live in SQLite (`agentlab.store.TaskStore`): a result is stored
in the same transaction that marks its task done, so a run killed at any moment resumes with
`resume=RUN_ID` without losing or repeating a finished task; a task that was in progress runs again.
Each task's prompt carries the most relevant earlier results, retrieved from a throwaway
`agentlab.memory.MemoryStore` that is rebuilt from the finished tasks on start and on resume.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from agentlab import decisions
from agentlab._text import clip
from agentlab.memory.store import MemoryStore, RetrievalWeights
from agentlab.models.base import ModelRequest, ModelResponse
from agentlab.run.conversation import with_history
from agentlab.store import TaskRecord, TaskStore
from agentlab.strategies.base import (
    CompositeStrategy,
    Conclusion,
    DecisionError,
    ModelDecision,
    StrategyBase,
    StrategyContext,
)
from agentlab.strategies.child_tools import children_tools
from agentlab.strategies.registry import StrategySpec, strategy_factory

DEFAULT_STORE = Path(".agentlab") / "babyagi.sqlite3"
DEFAULT_FIRST_TASK = "Make a short plan of the steps needed to reach the objective."
DEFAULT_MAX_TASKS = 10
# Prompt sizes stay small and stable whatever the run's length: results are clipped, context is a top-k.
RESULT_CHARS_IN_PROMPT = 300
RELATED_RESULTS = 3
RESULTS_IN_PROMPT = 10
# Earlier results are picked by relevance to the task alone: they all matter alike (so no model rates them)
# and the newest ones are in the planning prompts anyway.
RESULT_IMPORTANCE = 5
RELATED_BY_RELEVANCE = RetrievalWeights(recency=0.0, importance=0.0, relevance=1.0)

Phase = Literal["pick", "execute", "check", "create", "prioritise", "finished"]

# A placeholder, not a task or a summary: a word or two and an ellipsis, as in the prompts' examples ("Find ...",
# "..."), which a small model copies.
_PLACEHOLDER = re.compile(r"^\W*(\w+\W+)?\w*\s*(\.\.\.|…)\W*$")
PLANNER_SYSTEM = "You plan and track the work towards an objective. Reply with one JSON object only."


class Progress(BaseModel):
    """Whether the objective is complete, with a short answer to it drawn from the results."""

    complete: bool
    summary: str = Field(json_schema_extra={"maxLength": 400})


class NewTasks(BaseModel):
    """New tasks still needed to reach the objective; an empty list when none is."""

    tasks: list[Annotated[str, Field(json_schema_extra={"maxLength": 120})]] = Field(json_schema_extra={"maxItems": 5})


class Priorities(BaseModel):
    """The ids of the pending tasks, most important first."""

    order: list[int]


class BabyAGI(CompositeStrategy):
    """A persistent task-queue strategy. Options: `store` (SQLite path), `run_id` (a new uuid by default),
    `resume` (the RUN_ID of a stopped or killed run), `max_tasks` (tasks to finish, counted over the whole
    run), `first_task`, `max_new_tasks` (per round) and `executor` (the strategy that executes each task,
    restarted per task: a name in STRATEGIES, a factory or an instance)."""

    name = "babyagi"

    def __init__(
        self,
        *,
        store: str | Path = DEFAULT_STORE,
        run_id: str | None = None,
        resume: str | None = None,
        max_tasks: int | None = None,
        first_task: str | None = None,
        max_new_tasks: int = 3,
        executor: StrategySpec = "react",
    ) -> None:
        super().__init__()
        if resume and run_id and resume != run_id:
            raise ValueError(f"run_id {run_id!r} and resume {resume!r} disagree; give one of them")
        if max_tasks is not None and max_tasks < 0:
            raise ValueError("max_tasks must be >= 0")
        self.store_path = Path(store)
        self.run_id = resume or run_id or uuid.uuid4().hex
        self.resuming = resume is not None
        self.max_tasks = max_tasks
        self.first_task = first_task or DEFAULT_FIRST_TASK
        self.max_new_tasks = max(0, max_new_tasks)
        self.executor = executor
        self._new_executor = strategy_factory(executor)
        self._phase: Phase = "pick"
        self._task: TaskRecord | None = None  # the task being executed, or just finished
        self._inner: StrategyBase | None = None  # the executor of the current task
        self._retry: list[dict[str, Any]] = []  # rejected replies of the current planning decision
        self._answer: str | None = None
        self._template: StrategyBase | None = None  # an executor that offers the executors' tools to the run

    # --- the Strategy protocol ---------------------------------------------------------------------

    def start(self, context: StrategyContext) -> None:
        self.context = context
        self.store = TaskStore(self.store_path)
        # The results memory only indexes the TaskStore (the source of truth): rebuilt below, on every start.
        self._results = MemoryStore(":memory:")
        self._result_tasks: dict[int, TaskRecord] = {}  # by memory id
        if self.resuming:
            run = self.store.run(self.run_id)
            self.objective = run.objective
            if self.max_tasks is None:
                self.max_tasks = run.options.get("max_tasks", DEFAULT_MAX_TASKS)
            requeued = self.store.requeue_running(self.run_id)
            self._answer = run.answer
            if run.status == "done":
                self._phase = "finished"
            else:
                self.store.update_run(self.run_id, status="running")
                # A run killed between a task's end and the planning after it picks up that planning.
                if run.state.get("phase") in ("check", "create", "prioritise"):
                    self._phase = run.state["phase"]
                    self._task = self.store.task(self.run_id, run.state["task_id"])
            self.note(
                f"resumed run {self.run_id}: {run.tasks_done} tasks done"
                + (f", re-running unfinished task {', '.join(str(t.task_id) for t in requeued)}" if requeued else ""),
                requeued=[t.task_id for t in requeued],
                status=run.status,
                phase=self._phase,
            )
        else:
            self.objective = with_history(context.task, context.history)  # earlier turns reach every prompt
            self.max_tasks = DEFAULT_MAX_TASKS if self.max_tasks is None else self.max_tasks
            self.store.create_run(self.run_id, self.objective, {"max_tasks": self.max_tasks})
            self.store.add_tasks(self.run_id, [self.first_task])
            self.note(f"started run {self.run_id} (resume it with resume={self.run_id!r})", store=str(self.store_path))
        for task in self._done_tasks():
            self._remember_result(task)

    def next_step(self) -> ModelRequest | Conclusion:
        if self._phase in ("pick", "prioritise"):
            stopped = self._advance()
            if stopped is not None:
                return Conclusion(stopped)
        if self._phase == "finished":
            return Conclusion(self._answer or self._digest())
        if self._phase == "execute":
            assert self._inner is not None
            step = self.ask(self._inner, then=self._task_answered)
            if not isinstance(step, Conclusion):
                return step
            self._finish_task(step.answer or "")  # an executor that answers without asking the model
        return self._planning_request()

    def _task_answered(self, decision: ModelDecision) -> ModelDecision:
        self._finish_task(decision.final_answer or "")
        return ModelDecision(thought=decision.thought)

    def _planning_rejected(self, response: ModelResponse, error: DecisionError) -> None:
        said = response.content or "".join(c.arguments for c in response.tool_calls)
        self._retry += [{"role": "assistant", "content": said}, {"role": "user", "content": f"Error: {error}"}]

    def extra_tools(self) -> list[Any]:
        """The executors' own tools (PAL's program runner, CodeAct's), each task's executor its own."""
        self._template = self._new_executor()  # offers the tools; each call goes to the current task's executor
        return children_tools(self._template, lambda: self._inner)

    def close(self) -> None:
        """Release what the executors held (a CodeAct executor's sandbox session)."""
        for executor in (self._inner, self._template):
            if executor is not None:
                executor.close()

    @property
    def episode(self) -> int | None:
        """The task being executed: the loop's stall check compares actions only within one task."""
        return self._task.task_id if self._task is not None else None

    def best_answer(self) -> str | None:
        return self._answer or (self._digest() if self._done_tasks() else None)

    # --- phases ------------------------------------------------------------------------------------

    def _advance(self) -> str | None:
        """Go through the steps that need no model call: skip ordering a queue of one, take the next task
        and start executing it. Returns the final answer when a stop condition holds."""
        if self._phase == "prioritise" and len(self.store.tasks(self.run_id, "pending")) <= 1:
            self._enter("pick")
        if self._phase != "pick":
            return None
        assert self.max_tasks is not None
        if self.store.run(self.run_id).tasks_done >= self.max_tasks:
            return self._stop("max_tasks", f"{self.max_tasks} tasks finished (max_tasks)")
        task = self.store.claim_next(self.run_id)
        if task is None:
            return self._stop("queue_empty", "no task left in the queue")
        self._task, self._phase = task, "execute"
        self._inner = self._new_executor()
        # On a small model the executor searches for, and is reminded of, its task, not the whole prompt. The
        # default first task is a plan for the objective: its question is the objective (searched for "Make a
        # short plan of the steps ...", SmolLM2 found a passage about something else: CAMEL's roles).
        question = task.text if task.text != DEFAULT_FIRST_TASK else (self.context.asked or self.objective)
        self._inner.start(self.context.for_role(self._task_prompt(task), question=question))
        self.note(
            f"task {task.task_id} started: {task.text}", task_id=task.task_id, task=task.text, attempt=task.attempts
        )
        return None

    def _finish_task(self, result: str) -> None:
        assert self._task is not None
        state = {"phase": "check", "task_id": self._task.task_id}
        task = self.store.finish_task(self.run_id, self._task.task_id, result, run_state=state)
        self._remember_result(task)
        if self._inner is not None:
            self._inner.close()  # its task is done: a CodeAct executor's sandbox session goes with it
        self._task, self._inner, self._phase = task, None, "check"
        self.note(
            f"task {task.task_id} finished: {task.text} → {_clip(result, 200)}",
            task_id=task.task_id,
            task=task.text,
            result=result,
        )

    def _read_progress(self, response: ModelResponse) -> ModelDecision:
        progress = decisions.read_structured(response, Progress)
        summary = progress.summary.strip()
        if _PLACEHOLDER.search(summary):  # the example's "...", copied: no summary (the results answer instead)
            summary = ""
        if summary:
            self._answer = summary
            self.store.update_run(self.run_id, answer=summary)
        self._retry = []
        if progress.complete:
            return ModelDecision(thought=summary, final_answer=self._stop("done", "the objective is complete"))
        assert self.max_tasks is not None
        at_limit = self.store.run(self.run_id).tasks_done >= self.max_tasks
        self._enter("pick" if at_limit else "create")  # no new tasks when none may run
        return ModelDecision(thought="The objective is not complete yet.", final_answer=self._advance())

    def _read_new_tasks(self, response: ModelResponse) -> ModelDecision:
        written = [t.strip() for t in decisions.read_structured(response, NewTasks).tasks if t.strip()]
        # A small model copies the prompt's example ("Find ...", "Compute ..."): a placeholder is no task.
        placeholders = [t for t in written if _PLACEHOLDER.search(t)]
        proposed = [t for t in written if t not in placeholders]
        added, dropped = self.store.add_tasks(self.run_id, proposed[: self.max_new_tasks])
        self._retry = []
        self.note(
            f"created {len(added)} tasks"
            + (f", dropped {len(dropped)} duplicates" if dropped else "")
            + (f", {len(placeholders)} placeholders" if placeholders else ""),
            created=[{"task_id": t.task_id, "task": t.text} for t in added],
            dropped=dropped,
            ignored=proposed[self.max_new_tasks :],
            placeholders=placeholders,
        )
        self._enter("prioritise")
        thought = "New tasks: " + "; ".join(t.text for t in added) if added else "No new tasks."
        return ModelDecision(thought=thought, final_answer=self._advance())

    def _read_priorities(self, response: ModelResponse) -> ModelDecision:
        order = decisions.read_structured(response, Priorities).order
        pending_ids = {t.task_id for t in self.store.tasks(self.run_id, "pending")}
        if not pending_ids & set(order):
            raise DecisionError(f"Order the pending task ids {sorted(pending_ids)}, most important first.")
        queue = self.store.reorder(self.run_id, order)
        self._retry = []
        self.note("prioritised tasks " + ", ".join(str(t.task_id) for t in queue), order=[t.task_id for t in queue])
        self._enter("pick")
        return ModelDecision(thought="Queue: " + "; ".join(t.text for t in queue), final_answer=self._advance())

    def _enter(self, phase: Phase) -> None:
        """Move to a planning phase and record it, so a resumed run carries on from there."""
        assert self._task is not None
        self._phase = phase
        self.store.update_run(self.run_id, state={"phase": phase, "task_id": self._task.task_id})

    def _stop(self, status: str, why: str) -> str:
        answer = self._answer or self._digest()
        self.store.update_run(self.run_id, status=status, answer=answer)
        self._phase = "finished"
        self.note(f"run {self.run_id} stopped: {why}", status=status)
        return answer

    # --- prompts -----------------------------------------------------------------------------------

    def _planning_request(self) -> ModelRequest:
        planners = {
            "check": (self._check_prompt, self._read_progress),
            "create": (self._create_prompt, self._read_new_tasks),
            "prioritise": (self._prioritise_prompt, self._read_priorities),
        }
        prompt_for, read = planners[self._phase]
        shape, name, prompt = prompt_for()
        messages = [{"role": "system", "content": PLANNER_SYSTEM}, {"role": "user", "content": prompt}, *self._retry]
        request = decisions.structured_request(messages, shape, self.context.decision_format, name=name)
        return self.expect(request, read, self._planning_rejected)

    def _check_prompt(self) -> tuple[type[BaseModel], str, str]:
        return (
            Progress,
            "progress",
            (
                f"Objective: {self.objective}\n\nResults of the finished tasks:\n{self._digest()}\n\n"
                "Do these results achieve the objective? Set complete to true only if they do. In summary, answer "
                'the objective from the results, briefly. Example: {"complete": false, "summary": "..."}'
            ),
        )

    def _create_prompt(self) -> tuple[type[BaseModel], str, str]:
        assert self._task is not None
        pending = self.store.tasks(self.run_id, "pending")
        return (
            NewTasks,
            "new_tasks",
            (
                f"Objective: {self.objective}\n\nLast finished task: {self._task.text}\n"
                f"Its result: {_clip(self._task.result or '')}\n\n"
                f"Finished tasks:\n{_listing(self._done_tasks())}\nPending tasks:\n{_listing(pending)}\n\n"
                f"List at most {self.max_new_tasks} new short tasks still needed to reach the objective, none that "
                "is finished or pending; an empty list if none is needed. "
                'Example: {"tasks": ["Find ...", "Compute ..."]}'
            ),
        )

    def _prioritise_prompt(self) -> tuple[type[BaseModel], str, str]:
        pending = self.store.tasks(self.run_id, "pending")
        example = json.dumps({"order": [t.task_id for t in reversed(pending)]})
        return (
            Priorities,
            "priorities",
            (
                f"Objective: {self.objective}\n\nPending tasks (id. task):\n{_listing(pending, ids=True)}\n\n"
                f"Order all pending task ids by priority, most important first. Example: {example}"
            ),
        )

    def _task_prompt(self, task: TaskRecord) -> str:
        related = self._related_results(task.text)
        context = (
            "Results of related earlier tasks:\n"
            + "\n".join(f"- {t.text}: {_clip(t.result or '')}" for t in related)
            + "\n\n"
            if related
            else ""
        )
        return (
            f"Objective: {self.objective}\n\n{context}Your task: {task.text}\n"
            "Do only this task; give its result as the final answer."
        )

    def _related_results(self, query: str) -> list[TaskRecord]:
        """The finished tasks most relevant to `query` (BM25 over their text and result); none that shares no term."""
        found = self._results.retrieve(
            query, RELATED_RESULTS, weights=RELATED_BY_RELEVANCE, touch=False, matching_only=True
        )
        return [self._result_tasks[scored.memory.id] for scored in found]

    def _remember_result(self, task: TaskRecord) -> None:
        memory = self._results.add(f"{task.text}\n{task.result or ''}", RESULT_IMPORTANCE, kind="task_result")
        self._result_tasks[memory.id] = task

    def _digest(self) -> str:
        done = self._done_tasks()[-RESULTS_IN_PROMPT:]
        if not done:
            return "(no task finished yet)"
        return "\n".join(f"- {t.text}: {_clip(t.result or '')}" for t in done)

    # --- helpers -----------------------------------------------------------------------------------

    def _done_tasks(self) -> list[TaskRecord]:
        # No store when start() failed to open it; the loop still asks for a best answer.
        return self.store.tasks(self.run_id, "done") if hasattr(self, "store") else []

    def note(self, text: str, **data: Any) -> None:
        """Every note names the run, so a resumed run's trace lines up with the first one's."""
        super().note(text, run_id=self.run_id, **data)


def _clip(text: str, limit: int = RESULT_CHARS_IN_PROMPT) -> str:
    return clip(text, limit, marker=" …", fold=True, at_word=True)


def _listing(tasks: list[TaskRecord], *, ids: bool = False) -> str:
    if not tasks:
        return "(none)"
    return "\n".join(f"{t.task_id}. {t.text}" if ids else f"- {t.text}" for t in tasks)
