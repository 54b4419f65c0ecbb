"""`agentlab chat`: an interactive chat with an agent on the console.

Lines are read from stdin until end of input or `/exit`; each is one run that continues the conversation.
With `--session NAME` the conversation lives in a SQLite file (`--store`), so a restarted chat goes on where
it stopped; without it, the conversation lasts as long as the process.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any, TextIO

from rich.console import Console

from agentlab import events as ev
from agentlab._text import clip
from agentlab.commands.model_options import add_model_options, model_from_args
from agentlab.commands.sources import SourceError, load_tools
from agentlab.render.console import shown

EXIT_COMMAND = "/exit"
DEFAULT_STORE = "chats.db"


def add_parser(subparsers: Any) -> None:
    chat = subparsers.add_parser("chat", help="chat with an agent (history kept across turns, and across restarts)")
    chat.add_argument("--session", metavar="NAME", help="keep the conversation in --store under this name")
    chat.add_argument("--store", default=DEFAULT_STORE, help=f"the SQLite file of sessions (default {DEFAULT_STORE})")
    chat.add_argument("--tools", default="calculator", help="built-in names or MODULE_OR_FILE:NAME, comma-separated")
    chat.add_argument("--strategy", default="react")
    chat.add_argument("--max-steps", type=int, default=10, help="model requests per turn")
    add_model_options(chat)
    chat.set_defaults(handler=cmd_chat)


def cmd_chat(args: argparse.Namespace) -> int:
    from agentlab.agent import Agent
    from agentlab.cli import exit_on_interrupt
    from agentlab.models import ModelUnavailable
    from agentlab.store.sessions import InMemorySession, Session, SQLiteSession

    console = Console(highlight=False, soft_wrap=True)  # an answer stays one line when piped
    try:
        agent = Agent(
            model=model_from_args(args), tools=load_tools(args.tools), strategy=args.strategy, max_steps=args.max_steps
        )
    except (ModelUnavailable, SourceError, ValueError, TypeError) as error:
        print(f"agentlab chat: {error}", file=sys.stderr)
        return 2
    session: Session
    if args.session:
        try:
            session = SQLiteSession(args.store, session_id=args.session)
            earlier = len(session.load())
        except (sqlite3.DatabaseError, OSError) as error:  # not a SQLite file, or one that cannot be opened
            print(f"agentlab chat: --store {args.store}: {error}", file=sys.stderr)
            return 2
        if earlier:
            console.print(f"[dim]session {shown(args.session)}: going on after {earlier} messages[/]")
    else:
        session = InMemorySession()
    failed = False
    with exit_on_interrupt("agentlab chat"):
        for line in _lines(sys.stdin, console):
            finished = _turn(agent, line, session, console)
            failed = failed or finished is None or finished.status != "done"
    return 1 if failed else 0


def _lines(stream: TextIO, console: Console) -> Any:
    """The user's messages: non-blank lines until end of input or /exit (a prompt only on a terminal)."""
    interactive = stream.isatty()
    while True:
        if interactive:
            console.print("[bold blue]you>[/] ", end="")
        line = stream.readline()
        if not line or line.strip() == EXIT_COMMAND:
            return
        if line.strip():
            yield line.strip()


def _turn(agent: Any, message: str, session: Any, console: Console) -> ev.RunFinished | None:
    """One run on `message` in the session, shown compactly: tool calls, their results, the answer."""
    finished: ev.RunFinished | None = None
    for event in agent.stream(message, session=session):
        if event.parent_run_id:  # a sub-agent's steps: its answer comes back as the tool result
            continue
        if isinstance(event, ev.ToolStarted):
            console.print(f"[magenta]  → {shown(event.call.name)}[/] [dim]{shown(_arguments(event.call))}[/]")
        elif isinstance(event, ev.ToolResult):
            colour = "green" if event.ok else "red"
            console.print(f"[{colour}]  ← {shown(clip(event.output, 300, marker=' …'))}[/]")
        elif isinstance(event, ev.RunWarning):
            console.print(f"[yellow]warning: {shown(event.text)}[/]")
        elif isinstance(event, ev.RunFinished):
            finished = event
    if finished is not None and finished.status == "done":
        console.print(f"[bold green]agent>[/] {shown(finished.answer or '')}")
    elif finished is not None:
        partial = f" (best answer so far: {finished.answer})" if finished.answer else ""
        stopped = f"{shown(finished.status)}: {shown(finished.error or '')}{shown(partial)}"
        console.print(f"[red]agent stopped: {stopped}[/]")
    return finished


def _arguments(call: ev.ToolCall) -> str:
    return clip(json.dumps(call.arguments, ensure_ascii=False), 200, marker=" …")
