"""A JSONL trace as one self-contained HTML page: each run as a timeline of steps.

The page works offline (inline CSS and a few lines of inline JS, no external resources). Every value
from the trace is HTML-escaped, and a Content-Security-Policy admits only the page's own script,
so a tool output carrying markup renders as text and can never run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from agentlab._redact import redact_data, secret_values
from agentlab._text import clip
from agentlab.trace import LoadedTrace, load_trace, split_runs

__all__ = ["LoadedTrace", "load_trace", "render_html", "split_runs", "write_html"]

# Outputs longer than this start collapsed; the whole text is still in the page.
LONG_OUTPUT_CHARS = 600


def write_html(trace_path: str | Path, out_path: str | Path, *, title: str | None = None) -> LoadedTrace:
    """Render `trace_path` into `out_path`; returns what was read (with any unreadable lines)."""
    loaded = load_trace(trace_path)
    page = render_html(loaded.events, title=title or Path(trace_path).name, problems=loaded.problems)
    # A lone surrogate from the trace ("\ud800" is valid JSON) has no UTF-8 form: it is shown as "?".
    Path(out_path).write_text(page, encoding="utf-8", errors="replace")
    return loaded


def render_html(
    events: Iterable[dict[str, Any]], *, title: str = "agentlab trace", problems: Sequence[str] = ()
) -> str:
    # Traces from elsewhere (or an older agentlab) may hold credentials the current redactor catches.
    secrets = secret_values()
    runs = split_runs(redact_data(event, secrets) for event in events)
    """One self-contained, offline HTML page (scripts and styles inline) showing each run as a timeline."""
    body = [f"<h1>{_e(title)}</h1>"]
    if problems:
        items = "".join(f"<li>{_e(p)}</li>" for p in problems)
        body.append(
            f'<section class="problems"><strong>Some lines could not be read:</strong><ul>{items}</ul></section>'
        )
    if not runs:
        body.append('<p class="empty">This trace holds no events.</p>')
    if len(runs) > 1:
        links = "".join(
            f'<li><a href="#run-{n}">Run {n}</a>: {_e(clip(_task(run), 89))} '
            f'<span class="badge {_status_class(run)}">{_e(_status(run))}</span></li>'
            for n, run in enumerate(runs, 1)
        )
        body.append(f'<nav><ol class="runs-index">{links}</ol></nav>')
    body.append(
        '<div class="controls"><button type="button" id="toggle-details">Expand all</button> '
        '<label><input type="checkbox" id="hide-model"> hide model calls</label></div>'
    )
    body += [_RunView(run, n).render() for n, run in enumerate(runs, 1)]
    script_hash = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )


class _RunView:
    """One run's events laid out by step."""

    def __init__(self, events: list[dict[str, Any]], number: int) -> None:
        self.events, self.number = events, number
        first = events[0]
        self.start = _number(first.get("time"))
        self.finished = _finished(events)
        last_time = _number(events[-1].get("time"), self.start)
        self.span = max(last_time - self.start, 1e-6)

    def render(self) -> str:
        steps: dict[int, list[str]] = {}
        open_tools: dict[str, dict[str, Any]] = {}
        retries: list[str] = []
        trailing: list[str] = []
        last_step = 0
        for event in self.events:
            kind = event.get("kind")
            if kind in ("run_started", "run_finished"):
                continue
            if kind == "resumed":  # stepless: it belongs where the run had stopped
                event = {**event, "step": last_step}
            if kind == "model_retry":
                retries.append(self._retry(event))
                continue
            if kind == "tool_started":
                open_tools[str(_dict(event.get("call")).get("id"))] = event
                continue
            if kind == "tool_result":
                open_tools.pop(str(_dict(event.get("call")).get("id")), None)
            html = self._event(event)
            step = event.get("step")
            if not isinstance(step, int):
                trailing.append(html)
                continue
            last_step = step
            steps.setdefault(step, []).extend(retries)
            retries.clear()
            steps[step].append(html)
        for started in open_tools.values():  # the trace ends while these tools were running
            call = _dict(started.get("call"))
            step = started.get("step")
            steps.setdefault(step if isinstance(step, int) else 0, []).append(
                _row(
                    "tool_result failed",
                    "no result",
                    f" <code>{_e(call.get('name'))}</code> was still running when the trace ends",
                )
            )
        trailing = retries + trailing
        items = [
            f'<li class="step" data-step="{step}"><h3>Step {step}</h3>{"".join(parts)}</li>'
            for step, parts in sorted(steps.items())
        ]
        if trailing:
            items.append(f'<li class="step after"><h3>After the last step</h3>{"".join(trailing)}</li>')
        return (
            f'<article class="run" id="run-{self.number}">{self._header()}'
            f'<ol class="timeline">{"".join(items)}</ol>{self._summary()}</article>'
        )

    def _header(self) -> str:
        first = self.events[0]
        if first.get("kind") != "run_started":
            return (
                f'<header><h2>Run {self.number}</h2><p class="warn">This part of the trace has no '
                "run_started event; it begins mid-run.</p></header>"
            )
        tools = ", ".join(str(t) for t in _list(first.get("tools"))) or "none"
        return (
            f'<header><h2>Run {self.number}</h2><p class="task">{_e(first.get("task"))}</p>'
            f"<dl><dt>strategy</dt><dd>{_e(first.get('strategy'))}</dd><dt>model</dt><dd>{_e(first.get('model'))}</dd>"
            f"<dt>tools</dt><dd>{_e(tools)}</dd><dt>started</dt><dd>{_e(_clock(self.start))}</dd></dl></header>"
        )

    def _summary(self) -> str:
        end = self.finished
        if end is None:
            return (
                '<footer class="summary status-unfinished"><strong>Unfinished:</strong> the trace ends '
                "before the run did (still running, or interrupted).</footer>"
            )
        usage = _dict(end.get("usage"))
        prompt, completion = int(_number(usage.get("prompt_tokens"))), int(_number(usage.get("completion_tokens")))
        parts = [
            f'<span class="badge {_status_class(self.events)}">{_e(end.get("status"))}</span>',
            f"<span>{_e(end.get('steps'))} steps</span>",
            f"<span>{prompt + completion} tokens ({prompt} in, {completion} out)</span>",
            f"<span>{_number(end.get('duration')):.2f}s</span>",
        ]
        answer = end.get("answer")
        answer_html = f'<div class="answer"><span class="label">answer</span>{_pre(answer)}</div>' if answer else ""
        error = end.get("error")
        error_html = f'<div class="error-text">{_e(error)}</div>' if error else ""
        return f'<footer class="summary">{" ".join(parts)}{answer_html}{error_html}</footer>'

    def _event(self, event: dict[str, Any]) -> str:
        kind = event.get("kind")
        if kind == "model_call":
            usage = _dict(event.get("usage"))
            duration = _number(event.get("duration"))
            prompt, completion = int(_number(usage.get("prompt_tokens"))), int(_number(usage.get("completion_tokens")))
            counts = (
                f" {prompt} in · {completion} out · "
                f"{duration:.2f}s · {_e(event.get('messages'))} messages · {_e(event.get('decision_format'))}"
            )
            return _row("model_call", "model", counts, timing=self._timing(event, duration))
        if kind == "decision":
            parts = []
            if event.get("thought"):
                parts.append(_row("thought", "thought", _e(event["thought"])))
            for call in _list(event.get("tool_calls")):
                call = _dict(call)
                arguments = json.dumps(call.get("arguments"), indent=2, ensure_ascii=False, default=str)
                shown = f'<code>{_e(call.get("name"))}</code><span class="muted"> id {_e(call.get("id"))}</span>'
                parts.append(_row("tool_call", "action", shown + _pre(arguments)))
            return "".join(parts)
        if kind == "tool_result":
            call = _dict(event.get("call"))
            ok = bool(event.get("ok"))
            duration = _number(event.get("duration"))
            shown = f'<code>{_e(call.get("name"))}</code><span class="muted"> {duration:.2f}s</span>'
            return _row(
                f"tool_result {'ok' if ok else 'failed'}",
                "result" if ok else "tool error",
                shown + _pre(event.get("output")),
                timing=self._timing(event, duration),
            )
        if kind == "parse_error":
            return _row("parse_error", "parse error", _e(event.get("error")) + _pre(event.get("raw"), "raw reply"))
        if kind == "note":
            data = event.get("data")
            extra = _pre(json.dumps(data, indent=2, ensure_ascii=False, default=str), "data") if data else ""
            return _row("note", "note", _e(event.get("text")) + extra)
        if kind == "guardrail":
            where = f"{event.get('stage')} guardrail" + (f" of {event.get('tool')}" if event.get("tool") else "")
            what = f"tripped: {event.get('reason')}" if event.get("action") == "tripped" else "rewrote it"
            value = event.get("value")
            shown = _pre(json.dumps(value, indent=2, ensure_ascii=False, default=str), "new value") if value else ""
            return _row(
                "guardrail", "guardrail", f"{_e(where)} <code>{_e(event.get('guard'))}</code> {_e(what)}{shown}"
            )
        if kind == "paused":
            pending = [_dict(c) for c in _list(event.get("pending"))]
            calls = ", ".join(f"{c.get('name')} (id {c.get('id')})" for c in pending)
            return _row("paused", "paused", f"waiting for approval of {_e(calls)}")
        if kind == "resumed":
            decided = _dict(event.get("approvals")).items()
            approvals = "; ".join(f"{k}: {'approved' if v else 'denied'}" for k, v in decided)
            replayed = f"{_e(event.get('replayed'))} recorded replies replayed"
            return _row("resumed", "resumed", replayed + _e("; " + approvals if approvals else ""))
        if kind == "compacted":
            return _row(
                "compacted",
                "compacted",
                f"{_e(event.get('action'))}: {_e(event.get('tokens_before'))} → {_e(event.get('tokens_after'))} "
                f"tokens (window {_e(event.get('window'))})",
            )
        if kind == "final":
            return _row("final", "final answer", _pre(event.get("answer")))
        payload = json.dumps(event, indent=2, ensure_ascii=False, default=str)
        return _row("other", _e(kind), _pre(payload))

    def _retry(self, event: dict[str, Any]) -> str:
        return _row(
            "retry",
            "retry",
            f"attempt {_e(event.get('attempt'))} after {_e(event.get('error'))}; "
            f"waiting {_number(event.get('wait')):.1f}s",
        )

    def _timing(self, event: dict[str, Any], duration: float) -> str:
        """A bar placing the call within the run (only computed numbers reach the style attribute)."""
        end = _number(event.get("time"), self.start) - self.start
        begin = max(0.0, end - duration)
        left = min(100.0, 100 * begin / self.span)
        width = max(0.5, min(100.0 - left, 100 * duration / self.span))
        return (
            f'<span class="when" title="starts {begin:.2f}s into the run">+{begin:.2f}s</span>'
            f'<span class="bar"><span style="margin-left:{left:.2f}%;width:{width:.2f}%"></span></span>'
        )


# Traces from elsewhere (hand-edited, another tool, a bug) may hold any JSON where a number, object or list
# belongs: it is shown as nothing (0, {}, []) rather than stopping the page.
def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    number = float(value)
    return number if math.isfinite(number) else default


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _row(css: str, label: str, body: str, *, timing: str = "") -> str:
    """One event in the timeline: its classes, an optional timing bar, a label and the (escaped) body."""
    return f'<div class="ev {css}">{timing}<span class="label">{label}</span>{body}</div>'


def _e(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def _pre(text: Any, summary: str = "") -> str:
    body = "" if text is None else str(text)
    if len(body) <= LONG_OUTPUT_CHARS and not summary:
        return f"<pre>{_e(body)}</pre>"
    label = summary or f"{len(body)} characters"
    return f"<details><summary>{_e(label)}</summary><pre>{_e(body)}</pre></details>"


def _task(run: list[dict[str, Any]]) -> str:
    return str(run[0].get("task") or "(no task recorded)") if run else ""


def _finished(run: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((e for e in reversed(run) if e.get("kind") == "run_finished"), None)


def _status(run: list[dict[str, Any]]) -> str:
    end = _finished(run)
    return str(end.get("status")) if end else "unfinished"


def _status_class(run: list[dict[str, Any]]) -> str:
    status = _status(run)
    return "status-done" if status == "done" else "status-error" if status in ("error", "blocked") else "status-other"


def _clock(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if seconds else "?"
    except (OverflowError, OSError, ValueError):  # a time no calendar date has
        return "?"


_CSS = """
:root{--fg:#1d232a;--muted:#6b7480;--line:#dfe3e8;--bg:#f6f7f9;--card:#fff;--accent:#3b6fd8;
--ok:#1f8a4c;--bad:#c2372f;--warn:#b7791f}
*{box-sizing:border-box}body{margin:0 auto;max-width:1100px;padding:24px;font:14px/1.45 system-ui,sans-serif;
color:var(--fg);background:var(--bg)}h1{font-size:20px;margin:0 0 12px}h2{font-size:17px;margin:0 0 4px}
h3{font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);margin:0 0 6px}
.run{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:16px;margin:16px 0}
.task{font-size:15px;margin:4px 0 8px;white-space:pre-wrap}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:0;color:var(--muted);font-size:12px}
dd{margin:0;color:var(--fg)}.timeline{list-style:none;margin:12px 0;padding:0;border-left:2px solid var(--line)}
.step{margin:0 0 10px;padding:4px 0 4px 14px;position:relative}
.step:before{content:"";position:absolute;left:-6px;top:8px;width:10px;height:10px;border-radius:50%;
background:var(--accent)}
.ev{margin:4px 0;padding:6px 8px;border-radius:6px;background:var(--bg);overflow-wrap:anywhere}
.label{display:inline-block;min-width:84px;margin-right:8px;font-size:11px;font-weight:600;text-transform:uppercase;color:var(--muted)}
.thought{background:#eef3fd;white-space:pre-wrap}.tool_call{background:#f3f0fb}.tool_result.ok{background:#edf7f0}
.tool_result.failed,.parse_error{background:#fbeeed}.tool_result.failed .label,.parse_error .label{color:var(--bad)}
.note,.retry{background:#fdf6e8}.final{background:#e8f5ee}.muted{color:var(--muted);font-size:12px}
pre{margin:6px 0 0;padding:6px 8px;background:#fff;border:1px solid var(--line);border-radius:4px;max-height:320px;
overflow:auto;white-space:pre-wrap;font:12px/1.4 ui-monospace,monospace}
details summary{cursor:pointer;color:var(--accent);font-size:12px;margin-top:4px}
.when{float:right;font-size:11px;color:var(--muted);margin-left:8px}
.bar{float:right;width:160px;height:8px;margin-top:5px;background:#e6e9ee;border-radius:4px;overflow:hidden}
.bar span{display:block;height:100%;background:var(--accent)}.tool_result .bar span{background:#8a63d2}
.summary{border-top:1px solid var(--line);padding-top:10px;display:flex;flex-wrap:wrap;gap:6px 14px;
align-items:center}.summary .answer,.summary .error-text{flex-basis:100%}.error-text{color:var(--bad)}
.badge{padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px;color:#fff;background:var(--warn)}
.status-done{background:var(--ok)}.status-error{background:var(--bad)}.status-unfinished{color:var(--warn)}
.problems{background:#fbeeed;border:1px solid #f0c4c0;border-radius:6px;padding:8px 12px}
.warn{color:var(--warn)}.controls{margin:8px 0;font-size:13px}body.hide-model .model_call{display:none}
""".strip()

# No data from the trace ever goes into the script; it only toggles what is shown.
_SCRIPT = """
document.getElementById("toggle-details").addEventListener("click", function (e) {
  var open = e.target.textContent === "Expand all";
  document.querySelectorAll("details").forEach(function (d) { d.open = open; });
  e.target.textContent = open ? "Collapse all" : "Expand all";
});
document.getElementById("hide-model").addEventListener("change", function (e) {
  document.body.classList.toggle("hide-model", e.target.checked);
});
""".strip()
