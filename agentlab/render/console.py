"""Live console rendering of a run's events with `rich`: thoughts, tool calls, observations, and a
spinner while the model generates."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from rich.console import Console
from rich.status import Status

from agentlab import events as ev
from agentlab._text import clip


class ConsoleRenderer:
    """Feed it events in order; call `close()` (or use it as a context manager) at the end."""

    def __init__(self, console: Console | None = None, *, max_chars: int = 600) -> None:
        self.console = console or Console()
        self.max_chars = max_chars
        self._status: Status | None = None
        self._open: tuple[str, int, str] | None = None  # the streamed text on the current line: (run, step, part)
        self._streamed: set[tuple[str, int, str]] = set()  # parts of steps already shown as they streamed

    def __enter__(self) -> ConsoleRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spin(None)
        self._end_line()

    def _spin(self, text: str | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if text is not None and self.console.is_terminal:
            self._status = self.console.status(text, spinner="dots")
            self._status.start()

    def render(self, event: ev.Event) -> None:
        self._spin(None)
        if isinstance(event, ev.Delta):
            self._delta(event)
            return
        self._end_line()
        out = self.console.print
        match event:
            case ev.RunStarted():
                out(f"[bold]Task:[/] {event.task}", highlight=False)
                out(f"[dim]strategy={event.strategy} model={event.model} tools={', '.join(event.tools)}[/]")
            case ev.ModelCall():
                out(
                    f"[dim]step {event.step}: {event.usage.total_tokens} tokens in {event.duration:.1f}s "
                    f"({event.decision_format})[/]"
                )
            case ev.ModelRetry():
                out(f"[yellow]retry {event.attempt} in {event.wait:.1f}s: {event.error}[/]")
            case ev.Decision():
                if event.thought and not self._was_streamed(event, "content", "thought"):
                    out(f"[cyan]Thought:[/] {clip(event.thought, self.max_chars, marker=' …')}", highlight=False)
                for call in event.tool_calls:
                    out(f"[magenta]Action:[/] {call.name}({_args(call.arguments)})", highlight=False)
            case ev.ParseError():
                out(f"[red]Unparseable reply:[/] {event.error}", highlight=False)
            case ev.ToolResult():
                colour = "green" if event.ok else "red"
                out(f"[{colour}]Observation:[/] {clip(event.output, self.max_chars, marker=' …')}", highlight=False)
            case ev.Note():
                out(f"[yellow]Note:[/] {event.text}", highlight=False)
            case ev.Guardrail():
                where = f"{event.stage} guardrail" + (f" of {event.tool}" if event.tool else "")
                detail = f"tripped: {event.reason}" if event.action == "tripped" else "rewrote it"
                colour = "bold red" if event.action == "tripped" else "yellow"
                out(f"[{colour}]Guardrail:[/] {where} '{event.guard}' {detail}", highlight=False)
            case ev.RunWarning():
                out(f"[bold yellow]Warning:[/] {event.text}", highlight=False)
            case ev.Paused():
                calls = ", ".join(f"{c.name} (id {c.id})" for c in event.pending)
                out(f"[bold yellow]Paused:[/] waiting for approval of {calls}", highlight=False)
            case ev.Resumed():
                out(f"[bold]Resumed[/] [dim]({event.replayed} recorded replies replayed)[/]", highlight=False)
            case ev.Compacted():
                out(
                    f"[dim]compacted ({event.action}): {event.tokens_before} → {event.tokens_after} tokens[/]",
                    highlight=False,
                )
            case ev.Final():
                if not self._was_streamed(event, "content", "answer"):
                    out(f"[bold green]Answer:[/] {event.answer}", highlight=False)
            case ev.RunFinished():
                detail = f" — {event.error}" if event.error else ""
                out(
                    f"[bold]Status:[/] {event.status} after {event.steps} steps, "
                    f"{event.usage.total_tokens} tokens, {event.duration:.1f}s{detail}",
                    highlight=False,
                )
                return
        if not isinstance(event, ev.RunFinished | ev.Final):
            self._spin("thinking…" if not isinstance(event, ev.ToolStarted) else "running tools…")

    # --- deltas (`astream(..., deltas=True)`): text as it arrives, on one line per part ----------------

    def _delta(self, event: ev.Delta) -> None:
        match event:
            case ev.TextDelta():
                where = (event.run_id, event.step, event.part)
                if self._open != where:
                    self._end_line()
                    label = _LABELS.get(event.part)
                    if label:
                        self.console.print(label, end="")
                    self._open = where
                    self._streamed.add(where)
                self.console.print(event.text, end="", markup=False, highlight=False, soft_wrap=True)
            case ev.ToolCallDelta():
                where = (event.run_id, event.step, f"call {event.call_index}")
                if where not in self._streamed:
                    self._end_line()
                    self._streamed.add(where)
                    self.console.print(f"[magenta]Calling[/] {event.name}…", highlight=False)
            case ev.StreamReset():
                self._end_line()
                self._streamed = {s for s in self._streamed if s[:2] != (event.run_id, event.step)}
                self.console.print(f"[yellow]The reply broke off; asking again ({event.reason})[/]", highlight=False)

    def _end_line(self) -> None:
        if self._open is not None:
            self.console.print()
            self._open = None

    def _was_streamed(self, event: ev.Decision | ev.Final, *parts: str) -> bool:
        return any((event.run_id, event.step, part) in self._streamed for part in parts)


_LABELS = {"thought": "[cyan]Thought:[/] ", "answer": "[bold green]Answer:[/] "}


def _args(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in arguments.items())


def render_events(events: Iterable[ev.Event], console: Console | None = None) -> ev.RunFinished | None:
    """Render a blocking event stream; return its last event."""
    last = None
    with ConsoleRenderer(console) as renderer:
        for event in events:
            renderer.render(event)
            last = event
    return last if isinstance(last, ev.RunFinished) else None


async def arender_events(events: AsyncIterator[ev.Event], console: Console | None = None) -> ev.RunFinished | None:
    last = None
    with ConsoleRenderer(console) as renderer:
        async for event in events:
            renderer.render(event)
            last = event
    return last if isinstance(last, ev.RunFinished) else None
