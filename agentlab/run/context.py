"""`RunContext`: what a tool (or a callable instruction) may know about the run that calls it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

from agentlab.events import Event, Usage

DepsT = TypeVar("DepsT")


@dataclass
class RunContext(Generic[DepsT]):
    """The run as a tool sees it: the app's dependencies plus where the run stands.

    A tool whose first parameter is annotated `RunContext[Deps]` (or plain `RunContext`) receives one per
    call; that parameter never appears in the tool's JSON Schema, so the model cannot fill or see it.

    Attributes:
        deps: Whatever the app passed as `deps=` to the run (a database handle, a user id, ...).
        run_id: The id of the run making the call.
        step: The loop's step number when the call was made.
        usage: Tokens used by the run so far.
        messages: The conversation so far, in OpenAI chat format. Treat it as read-only.
        parent_run_id: The id of the run that started this one (an agent used as a tool), else None.
        deadline: When the run's time budget ends, on the `time.monotonic()` clock (None: no limit).
        tokens_left: Tokens the run may still use (None: no limit).
        steps_left: Model requests the run may still make (None: no limit).
        emit: Where a sub-run started by a tool (`Agent.as_tool`) sends its events, so they appear in this
            run's stream as they happen. Set by the loop.
        deltas: Whether the run streams the pieces of replies as they arrive (`astream(..., deltas=True)`);
            a sub-run started by one of its tools then does too.
        count_tool_call: For a tool that calls the run's tools itself (CodeAct's sandboxed code): counts
            one such call against the run's `max_tool_calls`, returning None when it may go ahead, else why
            not. Set by the loop.
    """

    deps: DepsT
    run_id: str
    step: int = 0
    usage: Usage = field(default_factory=Usage)
    messages: list[dict[str, Any]] = field(default_factory=list)
    parent_run_id: str | None = None
    deadline: float | None = None
    tokens_left: int | None = None
    steps_left: int | None = None
    emit: Callable[[Event], None] | None = field(default=None, repr=False)
    deltas: bool = False
    count_tool_call: Callable[[], str | None] | None = field(default=None, repr=False)

    # tools/ sits below run/ and cannot import this class: it recognises the annotation by this marker
    # (agentlab.tools.schema.RUN_CONTEXT_MARKER names it).
    __agentlab_run_context__: ClassVar[bool] = True
