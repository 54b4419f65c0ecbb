"""Live console rendering of a run's events with `rich`: thoughts, tool calls, observations, and a
spinner while the model generates."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.status import Status

from agentlab import events as ev
from agentlab._redact import redact
from agentlab._text import clip

# C0 and C1 control characters but newline and tab: an ESC or OSC sequence in a model's or a tool's text
# could recolour, retitle or rewrite the user's terminal. They are shown escaped ("\x1b") instead.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0)) if chr(c) not in "\n\t"}
# A credential's name (and its separator) at the end of the streamed text so far: its value is still to come,
# and the redactor only recognises the two together.
_CREDENTIAL_LEAD = re.compile(
    r"(?i)(bearer|api[_-]?key|access[_-]?token|token|secret|password|passwd|authorization)[\"']?\s*[:=]?\s*[\"']?$"
)
# Streamed text without a space is held back to this length at most (a word is redacted as a whole).
_MAX_HELD_CHARS = 4096


def printable(text: str) -> str:
    """`text` fit for a terminal: credentials redacted, control characters (but newline and tab) escaped."""
    return redact(text).translate(_CONTROLS)


def shown(value: object) -> str:
    """A value from the run, made printable and safe inside rich markup (a "[bold]" in it stays text)."""
    return escape(printable(str(value)))


class ConsoleRenderer:
    """Feed it events in order; call `close()` (or use it as a context manager) at the end."""

    def __init__(self, console: Console | None = None, *, max_chars: int = 600) -> None:
        self.console = console or Console()
        self.max_chars = max_chars
        self._status: Status | None = None
        self._open: tuple[str, int, str] | None = None  # the streamed text on the current line: (run, step, part)
        self._streamed: set[tuple[str, int, str]] = set()  # parts of steps already shown as they streamed
        self._held = ""  # streamed text not printed yet: it may end inside a credential

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
                out(f"[bold]Task:[/] {shown(event.task)}", highlight=False)
                tools = shown(", ".join(event.tools))
                out(f"[dim]strategy={shown(event.strategy)} model={shown(event.model)} tools={tools}[/]")
            case ev.ModelCall():
                out(
                    f"[dim]step {event.step}: {event.usage.total_tokens} tokens in {event.duration:.1f}s "
                    f"({shown(event.decision_format)})[/]"
                )
            case ev.ModelRetry():
                out(f"[yellow]retry {event.attempt} in {event.wait:.1f}s: {shown(event.error)}[/]")
            case ev.Decision():
                if event.thought and not self._was_streamed(event, "content", "thought"):
                    out(
                        f"[cyan]Thought:[/] {shown(clip(event.thought, self.max_chars, marker=' …'))}",
                        highlight=False,
                    )
                for call in event.tool_calls:
                    out(
                        f"[magenta]Action:[/] {shown(call.name)}({shown(_args(call.arguments))})",
                        highlight=False,
                    )
            case ev.ParseError():
                out(f"[red]Unparseable reply:[/] {shown(event.error)}", highlight=False)
            case ev.ToolResult():
                colour = "green" if event.ok else "red"
                out(
                    f"[{colour}]Observation:[/] {shown(clip(event.output, self.max_chars, marker=' …'))}",
                    highlight=False,
                )
            case ev.Note():
                out(f"[yellow]Note:[/] {shown(event.text)}", highlight=False)
            case ev.Guardrail():
                where = f"{event.stage} guardrail" + (f" of {event.tool}" if event.tool else "")
                detail = f"tripped: {event.reason}" if event.action == "tripped" else "rewrote it"
                colour = "bold red" if event.action == "tripped" else "yellow"
                out(
                    f"[{colour}]Guardrail:[/] {shown(where)} '{shown(event.guard)}' {shown(detail)}",
                    highlight=False,
                )
            case ev.RunWarning():
                out(f"[bold yellow]Warning:[/] {shown(event.text)}", highlight=False)
            case ev.Paused():
                calls = ", ".join(f"{c.name} (id {c.id})" for c in event.pending)
                out(f"[bold yellow]Paused:[/] waiting for approval of {shown(calls)}", highlight=False)
            case ev.Resumed():
                out(f"[bold]Resumed[/] [dim]({event.replayed} recorded replies replayed)[/]", highlight=False)
            case ev.Compacted():
                out(
                    f"[dim]compacted ({shown(event.action)}): {event.tokens_before} → {event.tokens_after} tokens[/]",
                    highlight=False,
                )
            case ev.Final():
                if not self._was_streamed(event, "content", "answer"):
                    out(f"[bold green]Answer:[/] {shown(event.answer)}", highlight=False)
            case ev.RunFinished():
                detail = f" — {shown(event.error)}" if event.error else ""
                out(
                    f"[bold]Status:[/] {shown(event.status)} after {event.steps} steps, "
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
                self._held += event.text
                self._print_held(final=False)
            case ev.ToolCallDelta():
                where = (event.run_id, event.step, f"call {event.call_index}")
                if where not in self._streamed:
                    self._end_line()
                    self._streamed.add(where)
                    self.console.print(f"[magenta]Calling[/] {shown(event.name)}…", highlight=False)
            case ev.StreamReset():
                self._end_line()
                self._streamed = {s for s in self._streamed if s[:2] != (event.run_id, event.step)}
                reason = shown(event.reason)
                self.console.print(f"[yellow]The reply broke off; asking again ({reason})[/]", highlight=False)

    def _print_held(self, *, final: bool) -> None:
        """Print the streamed text up to its last space (all of it when `final`): a credential split across
        deltas is redacted once whole. A credential's name with no value yet is held back with the value."""
        text = self._held
        cut = len(text)
        if not final:
            cut = max(text.rfind(" "), text.rfind("\n"), text.rfind("\t")) + 1
            lead = _CREDENTIAL_LEAD.search(text, 0, cut)
            if lead is not None:
                cut = lead.start()
            if cut == 0 and len(text) > _MAX_HELD_CHARS:
                cut = len(text)
        ready, self._held = text[:cut], text[cut:]
        if ready:
            self.console.print(printable(ready), end="", markup=False, highlight=False, soft_wrap=True)

    def _end_line(self) -> None:
        if self._open is not None:
            self._print_held(final=True)
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
