"""`@tool`: turn a typed, documented Python function into something a model can call."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeAlias, TypeVar, overload

from agentlab.tools.guard import Guard, Verdict, check_guard, judge
from agentlab.tools.output import (
    DEFAULT_MAX_OUTPUT_CHARS,
    ToolErrorKind,
    ToolOutput,
    describe_exception,
    render_result,
    truncate,
)
from agentlab.tools.running import DeadlineExceeded, call_with_timeout, resolve_approval
from agentlab.tools.schema import (
    build_args_model,
    describe_parameters,
    inspect_signature,
    parameters_schema,
    parse_docstring,
    validation_problems,
)

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

P = ParamSpec("P")
R = TypeVar("R")

ApprovalCallback: TypeAlias = Callable[[str, dict[str, Any]], bool | Awaitable[bool]]
"""Asked before a `requires_approval` tool runs: `(tool_name, arguments) -> allowed?` (may be async)."""

DEFAULT_TIMEOUT = 30.0
"""Seconds a tool call may take unless its `@tool(timeout=...)` says otherwise."""
# What the model is told, instead of pydantic's wording, about an argument it left out or made up.
_ARGUMENT_PROBLEMS = {
    "missing": "missing required argument",
    "extra_forbidden": "unexpected argument (no such parameter)",
}


class BaseTool(Generic[P, R]):
    """What every tool shares: a name, a description and a JSON Schema to offer a model, and `invoke`, the
    model-facing path that validates arguments, asks for approval, enforces the timeout and never raises for
    tool failures. Subclasses say where the schema comes from (`Tool`: a Python signature; `MCPTool`: a
    server) by how they check arguments (`_prepare`) and render results (`_render`)."""

    # Only a function tool can ask for the run's context; MCP tools never do.
    context_parameter: str | None = None
    """The name of the parameter that receives the run's `RunContext`, if the function asks for one."""
    _context_by_keyword = False

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str,
        description: str,
        parameters: dict[str, Any],
        timeout: float | None = DEFAULT_TIMEOUT,
        requires_approval: bool = False,
        max_output_chars: int | None = None,
        guard: Guard | None = None,
        idempotent: bool = False,
        repeatable: bool = False,
    ) -> None:
        if guard is not None:
            check_guard(guard, f"the guard of tool '{name}'")
        self.func = func
        self.name = name
        self.description = description
        self.parameters = parameters
        self.timeout = timeout
        self.requires_approval = requires_approval
        # Sees the validated arguments before each call (and before approval): passes, rewrites or trips.
        self.guard = guard
        # Safe to run again when a crash hid whether it ran (a read, a lookup); see Agent.resume.
        self.idempotent = idempotent
        # The same call can return something new (a cursor, a status poll): repeating it is not a stall.
        self.repeatable = repeatable
        # None means "not set for this tool": the registry's (or the global) default applies.
        self.max_output_chars = max_output_chars

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    def schema(self) -> dict[str, Any]:
        """The OpenAI `tools=[...]` entry for this tool."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }

    async def invoke(
        self,
        arguments: Mapping[str, Any] | str | None,
        approve: ApprovalCallback | None = None,
        *,
        max_output_chars: int | None = None,
        context: Any = None,
    ) -> ToolOutput:
        """Run the tool for the model: `arguments` is a dict or the model's raw JSON string.

        `max_output_chars` is the caller's default cap, used when the tool sets none of its own.
        `context` is the run's `RunContext`, passed to a tool that asks for one (and ignored otherwise).
        """
        started = time.perf_counter()
        limit = self.max_output_chars or max_output_chars or DEFAULT_MAX_OUTPUT_CHARS

        verdict: Verdict | None = None

        def finish(ok: bool, content: str, error: ToolErrorKind | None = None) -> ToolOutput:
            return ToolOutput(ok, truncate(content, limit), error, time.perf_counter() - started, verdict)

        if self.context_parameter is not None and context is None:
            return finish(
                False,
                f"Error: tool '{self.name}' needs a RunContext and was called without one. "
                "Do not retry this call; continue without it.",
                "missing_context",
            )
        parsed = self._parse_arguments(arguments)
        prepared = parsed if isinstance(parsed, str) else self._prepare(parsed)
        if isinstance(prepared, str):
            return finish(False, prepared, "invalid_arguments")
        if self.guard is not None:
            verdict, prepared = await self._guarded(prepared)
            if isinstance(prepared, str):
                return finish(False, prepared, "blocked")
        args, kwargs, shown = prepared
        if self.context_parameter is not None:
            if self._context_by_keyword:
                kwargs = {self.context_parameter: context, **kwargs}
            else:
                args = (context, *args)

        if self.requires_approval:
            denial = await self._check_approval(approve, shown)
            if denial is not None:
                return finish(False, denial, "denied")

        try:
            result = await call_with_timeout(self.func, args, kwargs, self.timeout)
        except DeadlineExceeded:
            return finish(
                False,
                # Not "stopped": a sync tool's thread runs on (threads cannot be interrupted), its result dropped.
                f"Error: tool '{self.name}' timed out after {self.timeout or 0:g} s; its result will not be used. "
                "Try simpler arguments or another approach.",
                "timeout",
            )
        except (Exception, SystemExit) as exc:  # a tool calling sys.exit() must not end the agent
            return finish(False, describe_exception(exc), "exception")
        try:
            ok, text = self._render(result)
        except Exception as exc:  # a result that cannot become text (its __str__ raises) is the tool's failure
            why = describe_exception(exc).removeprefix("Error: ")
            return finish(
                False, f"Error: tool '{self.name}' returned a result that cannot be shown ({why})", "exception"
            )
        return finish(ok, text, None if ok else "exception")

    def _prepare(self, parsed: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] | str:
        """Validated call arguments `(args, kwargs, shown)` (`shown` is what an approver sees), or an
        error message for the model."""
        raise NotImplementedError

    async def _guarded(
        self, prepared: tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]
    ) -> tuple[Verdict | None, tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] | str]:
        """Ask the tool's guard about the validated arguments: `(verdict, prepared)` with the arguments to
        call with (rewritten ones are validated again), or a message saying the call was blocked. The
        verdict is None when the guard passed the call unchanged."""
        assert self.guard is not None
        verdict = await judge(self.guard, prepared[2])
        if verdict.action == "passed":
            return None, prepared
        if verdict.action == "rewrote":
            again = self._prepare(dict(verdict.value)) if isinstance(verdict.value, Mapping) else None
            if again is not None and not isinstance(again, str):
                return Verdict(verdict.guard, "rewrote", again[2]), again
            # A rewrite the tool cannot take is the guard's mistake: fail closed rather than run something else.
            problem = again or f"it returned a {type(verdict.value).__name__}, not a dict of arguments"
            verdict = Verdict(verdict.guard, "tripped", prepared[2], f"the guard's rewrite is unusable: {problem}")
        reason = verdict.reason
        return verdict, f"Blocked: guard '{verdict.guard}' of tool '{self.name}' stopped the call: {reason}"

    def _render(self, result: Any) -> tuple[bool, str]:
        """Whether the call succeeded, and its result as text for the model."""
        return True, render_result(result)

    def _parse_arguments(self, arguments: Mapping[str, Any] | str | None) -> dict[str, Any] | str:
        """The arguments as a dict, or an error message for the model."""
        if arguments is None:
            return {}
        if isinstance(arguments, str):
            if not arguments.strip():
                return {}
            try:
                arguments = json.loads(arguments)
            except json.JSONDecodeError as exc:
                return (
                    f"Error: the arguments for tool '{self.name}' are not valid JSON ({exc}). "
                    f"Send a JSON object with: {describe_parameters(self.parameters)}."
                )
        if not isinstance(arguments, Mapping):
            return (
                f"Error: the arguments for tool '{self.name}' must be a JSON object, "
                f"got {type(arguments).__name__}. Expected: {describe_parameters(self.parameters)}."
            )
        return dict(arguments)

    async def _check_approval(self, approve: ApprovalCallback | None, arguments: dict[str, Any]) -> str | None:
        """None when the call may go ahead, else the message telling the model it was denied."""
        if approve is None:
            return (
                f"Denied: tool '{self.name}' needs approval and no one was available to approve it. "
                "Do not retry this call; continue without it."
            )
        try:
            allowed = await resolve_approval(approve(self.name, arguments))
        except Exception as exc:
            # A broken approval prompt must fail closed, never let the call through.
            return f"Denied: approving tool '{self.name}' failed ({describe_exception(exc)}). Do not retry."
        if not allowed:
            return f"Denied: the user did not approve calling tool '{self.name}'. Do not retry this call."
        return None


class Tool(BaseTool[P, R]):
    """A function plus everything needed to offer it to a model and run it safely.

    Calling the tool directly calls the original function; `invoke` is the model-facing path.
    """

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        requires_approval: bool = False,
        max_output_chars: int | None = None,
        idempotent: bool = False,
        local_names: Mapping[str, Any] | None = None,
        guard: Guard | None = None,
        repeatable: bool = False,
    ) -> None:
        """`local_names` resolves string annotations naming classes local to the defining function."""
        if not callable(func):
            raise TypeError(f"@tool needs a function, got {type(func).__name__}")
        tool_name = name or str(getattr(func, "__name__", type(func).__name__))
        docs = parse_docstring(inspect.getdoc(func))
        self.args_model: type[BaseModel] = build_args_model(func, f"{tool_name}_arguments", docs, local_names)
        super().__init__(
            func,
            name=tool_name,
            description=description if description is not None else docs.description,
            parameters=parameters_schema(self.args_model, tool_name),
            timeout=timeout,
            requires_approval=requires_approval,
            max_output_chars=max_output_chars,
            guard=guard,
            idempotent=idempotent,
            repeatable=repeatable,
        )
        # The first parameter, when annotated `RunContext[...]`, receives the run's context; never the model's.
        context = inspect_signature(func, local_names).context
        self.context_parameter = context.name if context is not None else None
        self._context_by_keyword = context is not None and context.kind is context.KEYWORD_ONLY
        self._positional_only = [
            p.name
            for p in inspect.signature(func).parameters.values()
            if p.kind is p.POSITIONAL_ONLY and p.name != self.context_parameter
        ]
        functools.update_wrapper(self, func)

    def _prepare(self, parsed: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]] | str:
        """Validated call arguments `(args, kwargs, shown)` (`shown` is what an approver sees), or an
        error message for the model."""
        from pydantic import ValidationError  # loaded already: this tool's argument model is pydantic's

        try:
            validated = self.args_model.model_validate(parsed)
        except ValidationError as exc:
            return self._explain_validation_error(exc)
        shown = validated.model_dump(by_alias=True, exclude_unset=False)
        # Pass validated objects (not dumped dicts) so nested pydantic models arrive as models.
        values = {
            info.alias or field_name: getattr(validated, field_name)
            for field_name, info in type(validated).model_fields.items()
        }
        args = tuple(values.pop(name) for name in self._positional_only)
        return args, values, shown

    def _explain_validation_error(self, exc: ValidationError) -> str:
        problems = validation_problems(exc, whole="arguments", wording=_ARGUMENT_PROBLEMS)
        return (
            f"Error: invalid arguments for tool '{self.name}':\n" + "\n".join(problems) + "\n"
            f"Parameters: {describe_parameters(self.parameters)}."
        )


@overload
def tool(func: Callable[P, R], /) -> Tool[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    requires_approval: bool = False,
    max_output_chars: int | None = None,
    guard: Guard | None = None,
    idempotent: bool = False,
    repeatable: bool = False,
) -> Callable[[Callable[P, R]], Tool[P, R]]: ...


def tool(
    func: Callable[P, R] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    requires_approval: bool = False,
    max_output_chars: int | None = None,
    guard: Guard | None = None,
    idempotent: bool = False,
    repeatable: bool = False,
) -> Tool[P, R] | Callable[[Callable[P, R]], Tool[P, R]]:
    """Make a tool from a function, bare (`@tool`) or with options (`@tool(name=..., timeout=...)`).

    The arguments' JSON Schema comes from the type hints, their descriptions from the docstring's `Args:`.

    Args:
        func: The function (sync or async), when used bare.
        name: The tool's name for the model; the function's name by default.
        description: What the tool does; the docstring's summary by default.
        timeout: Seconds before a call is abandoned and reported to the model; None for no limit.
        requires_approval: Ask the agent's `approve` callback before each call (denied when there is none).
        max_output_chars: Cap on the output the model sees; the registry's cap by default.
        guard: Sees each call's validated arguments (a dict) before the tool runs (and before approval): it
            returns None to pass, a new dict of arguments to rewrite the call, or raises
            `GuardrailTripped("why")` to block it, which ends an agent's run with status `blocked`.
        idempotent: Calling it twice does no more than calling it once: a call that a crash interrupted is
            run again when the run is resumed (otherwise the model is told it was interrupted).
        repeatable: The same call can return something new each time (the next page of a cursor, a job's
            status): the agent's stall guard, which refuses a call repeated with the same arguments, lets
            calls to this tool repeat (`max_steps` still bounds the run).
    """
    # Both forms are called from the scope that defines the function: remember its locals in case
    # the annotations are strings naming classes defined there (pydantic does the same).
    caller = sys._getframe(1)
    local_names = caller.f_locals if caller.f_code.co_name != "<module>" else None

    def wrap(target: Callable[P, R]) -> Tool[P, R]:
        if isinstance(target, BaseTool):
            return target  # type: ignore[return-value]  # already a tool (an MCP tool, say): keep it
        return Tool(
            target,
            name=name,
            description=description,
            timeout=timeout,
            requires_approval=requires_approval,
            max_output_chars=max_output_chars,
            idempotent=idempotent,
            local_names=local_names,
            guard=guard,
            repeatable=repeatable,
        )

    return wrap(func) if func is not None else wrap
