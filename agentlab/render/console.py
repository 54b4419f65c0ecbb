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

    def __enter__(self) -> ConsoleRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._spin(None)

    def _spin(self, text: str | None) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None
        if text is not None and self.console.is_terminal:
            self._status = self.console.status(text, spinner="dots")
            self._status.start()

    def render(self, event: ev.Event) -> None:
        self._spin(None)
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
                if event.thought:
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
