"""OpenTelemetry spans from a run's events: one span per run, per model call and per tool call.

The recorder consumes the event stream and never drives the loop:

    async for event in otel_traced(agent.astream(task)):
        ...

Span names and attributes follow the OpenTelemetry GenAI semantic conventions where they apply
("invoke_agent", "chat {model}", "execute_tool {name}"; gen_ai.operation.name, gen_ai.request.model,
gen_ai.usage.*, gen_ai.tool.*, error.type). Start and end times come from the events themselves,
so spans measure the run, not whoever drains the stream. Nothing is exported anywhere unless the
application configured a tracer provider (or passes one): the API's default provider is a no-op.

Message content (thoughts, tool arguments and results, the answer) is opt-in via ``capture_content``,
as the conventions recommend: it can hold personal or secret data. Credentials are redacted from every
text that reaches a span, the same way as in JSONL traces.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from agentlab import events as ev
from agentlab._redact import redact, secret_values
from agentlab._text import clip

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

INSTRUMENTATION_NAME = "agentlab"
# Attribute values are capped so a huge tool output cannot bloat an exported span.
MAX_ATTRIBUTE_CHARS = 4000


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class OTelRecorder:
    """Turns the events of one run at a time into spans; call `record` with each event in order.

    One recorder follows one event stream: give concurrent runs a recorder each. After a
    `RunFinished` it is ready for the next run. `close()` ends spans left open by a stream that
    stopped early (they are marked as errors), and is safe to call any time.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        *,
        agent_name: str | None = None,
        capture_content: bool = False,
    ) -> None:
        from opentelemetry import trace

        from agentlab import __version__

        self._trace = trace
        self._tracer = trace.get_tracer(INSTRUMENTATION_NAME, __version__, tracer_provider=tracer_provider)
        self.agent_name = agent_name
        self.capture_content = capture_content
        self._run: Span | None = None
        self._model = ""
        self._chat: Span | None = None  # kept open until the decision (or parse error) that follows it
        self._chat_end = 0.0
        # Open tool spans by call (its id and arguments: a server may give two calls of a step one id).
        self._tools: dict[tuple[str, str], list[Span]] = {}
        self._retries: list[ev.ModelRetry] = []
        self._secrets = secret_values()
        self._run_id: str | None = None  # the run this recorder follows
        self._parent_context: Any = None  # where its run span hangs: a sub-run's, under the calling tool
        self._subruns: dict[str, OTelRecorder] = {}  # sub-runs (agents as tools), however deep, by run id

    def _clip(self, text: str) -> str:
        """A text as it may reach a span: credentials redacted, length capped."""
        return clip(redact(text, self._secrets), MAX_ATTRIBUTE_CHARS)

    def record(self, event: ev.Event) -> None:
        """Turn one event into span starts, ends or span events; events it has no use for are ignored. A
        sub-run's events (an agent used as a tool: they pass through its caller's stream) go to spans of its
        own, under the caller's tool span."""
        if self._run_id is not None and event.run_id and event.run_id != self._run_id:
            self._record_subrun(event)
            return
        self._handle(event)

    def _handle(self, event: ev.Event) -> None:
        handler = getattr(self, f"_on_{event.kind}", None)
        if handler is not None:
            handler(event)

    def _record_subrun(self, event: ev.Event) -> None:
        sub = self._subruns.get(event.run_id)
        if sub is None:
            if not isinstance(event, ev.RunStarted):
                return  # a sub-run picked up mid-way: not traced
            caller = self if event.parent_run_id == self._run_id else self._subruns.get(event.parent_run_id or "")
            if caller is None:
                return
            sub = self._subruns[event.run_id] = OTelRecorder(capture_content=self.capture_content)
            sub._tracer, sub._secrets = self._tracer, self._secrets  # the caller's tracer (and its provider)
            sub._parent_context = caller._calling_context()
        sub._handle(event)
        if isinstance(event, ev.RunFinished):
            del self._subruns[event.run_id]

    # --- run ---------------------------------------------------------------------------------

    def _on_run_started(self, event: ev.RunStarted) -> None:
        self.close()  # a stream that never finished its previous run
        self._run_id = event.run_id or None
        self._model = event.model
        name = f"invoke_agent {self.agent_name}" if self.agent_name else "invoke_agent"
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.request.model": event.model,
            "agentlab.strategy": event.strategy,
            "agentlab.tools": list(event.tools),
        }
        if self.agent_name:
            attributes["gen_ai.agent.name"] = self.agent_name
        if self.capture_content:
            attributes["agentlab.task"] = self._clip(event.task)
        self._run = self._tracer.start_span(
            name, context=self._parent_context, attributes=attributes, start_time=_ns(event.time)
        )

    def _on_run_finished(self, event: ev.RunFinished) -> None:
        self._end_chat()
        for span in self._open_tools():  # a tool still running when a budget ran out
            self._fail(span, "cancelled", "the run ended before the tool finished")
            span.end(end_time=_ns(event.time))
        self._tools.clear()
        self._run_id = None
        run = self._run
        if run is None:
            return
        for retry in self._retries:  # retries of a model call that failed for good
            self._add_retry(run, retry)
        self._retries.clear()
        run.set_attributes(
            {
                "gen_ai.usage.input_tokens": event.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": event.usage.completion_tokens,
                "agentlab.status": event.status,
                "agentlab.steps": event.steps,
            }
        )
        if self.capture_content and event.answer is not None:
            run.set_attribute("agentlab.answer", self._clip(event.answer))
        if event.status not in ("done", "paused"):  # a paused run waits for a person; it did not fail
            self._fail(run, event.status, event.error or event.status)
        run.end(end_time=_ns(event.time))
        self._run = None

    def _on_resumed(self, event: ev.Resumed) -> None:
        """A resumed run's stream starts here (its recorded `RunStarted` is not sent again): a new run span."""
        self.close()
        self._run_id = event.run_id or None
        name = f"invoke_agent {self.agent_name}" if self.agent_name else "invoke_agent"
        attributes: dict[str, str | int] = {
            "gen_ai.operation.name": "invoke_agent",
            "agentlab.resumed_replies": event.replayed,
        }
        self._run = self._tracer.start_span(name, attributes=attributes, start_time=_ns(event.time))

    def _on_paused(self, event: ev.Paused) -> None:
        if self._run is not None:
            names = [call.name for call in event.pending]
            self._run.add_event("agentlab.paused", {"agentlab.step": event.step, "agentlab.pending": names})

    def _on_compacted(self, event: ev.Compacted) -> None:
        if self._run is not None:
            self._run.add_event(
                "agentlab.compacted",
                {
                    "agentlab.step": event.step,
                    "agentlab.action": event.action,
                    "agentlab.tokens_before": event.tokens_before,
                    "agentlab.tokens_after": event.tokens_after,
                },
            )

    def _on_note(self, event: ev.Note) -> None:
        if self._run is not None:
            self._run.add_event(
                "agentlab.note",
                {"agentlab.step": event.step, "agentlab.note": self._clip(event.text)},
                timestamp=_ns(event.time),
            )

    def _on_guardrail(self, event: ev.Guardrail) -> None:
        # Which guard acted and why is not content (the rewritten value is, and is left out).
        if self._run is not None:
            attributes = {
                "agentlab.guardrail.stage": event.stage,
                "agentlab.guardrail.name": self._clip(event.guard),
                "agentlab.guardrail.action": event.action,
                "agentlab.guardrail.reason": self._clip(event.reason),
            }
            if event.tool:
                attributes["gen_ai.tool.name"] = event.tool
            self._run.add_event("agentlab.guardrail", attributes, timestamp=_ns(event.time))

    def _on_warning(self, event: ev.RunWarning) -> None:
        # Not content (it says what failed beside the run, e.g. the trace file), so kept without capture_content.
        if self._run is not None:
            self._run.add_event(
                "agentlab.warning", {"agentlab.warning": self._clip(event.text)}, timestamp=_ns(event.time)
            )

    # --- model calls -------------------------------------------------------------------------

    def _on_model_retry(self, event: ev.ModelRetry) -> None:
        self._retries.append(event)

    def _on_model_call(self, event: ev.ModelCall) -> None:
        self._end_chat()
        self._chat = self._tracer.start_span(
            f"chat {self._model}",
            context=self._parent(),
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": self._model,
                "gen_ai.usage.input_tokens": event.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": event.usage.completion_tokens,
                "agentlab.step": event.step,
                "agentlab.decision_format": event.decision_format,
                "agentlab.request.messages": event.messages,
                "agentlab.request.chars": event.request_chars,
            },
            start_time=_ns(event.time - event.duration),
        )
        self._chat_end = event.time
        for retry in self._retries:
            self._add_retry(self._chat, retry)
        self._retries.clear()

    def _on_decision(self, event: ev.Decision) -> None:
        if self._chat is not None:
            attributes: dict[str, Any] = {"agentlab.tool_calls": [c.name for c in event.tool_calls]}
            if self.capture_content:
                attributes["agentlab.thought"] = self._clip(event.thought)
                if event.final_answer is not None:
                    attributes["agentlab.final_answer"] = self._clip(event.final_answer)
            self._chat.add_event("agentlab.decision", attributes, timestamp=_ns(event.time))
        self._end_chat()

    def _on_parse_error(self, event: ev.ParseError) -> None:
        # The call itself succeeded; its reply was unusable and the model is asked again.
        if self._chat is not None:
            self._chat.add_event(
                "agentlab.parse_error", {"agentlab.error": self._clip(event.error)}, timestamp=_ns(event.time)
            )
        self._end_chat()

    # --- tools -------------------------------------------------------------------------------

    def _on_tool_started(self, event: ev.ToolStarted) -> None:
        self._end_chat()
        self._tools.setdefault(_call_key(event.call), []).append(self._start_tool(event.step, event.call, event.time))

    def _start_tool(self, step: int, call: ev.ToolCall, start: float) -> Span:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
            "gen_ai.tool.type": "function",
            "agentlab.step": step,
        }
        if self.capture_content:
            import json

            attributes["gen_ai.tool.call.arguments"] = self._clip(json.dumps(call.arguments, default=str))
        return self._tracer.start_span(
            f"execute_tool {call.name}", context=self._parent(), attributes=attributes, start_time=_ns(start)
        )

    def _on_tool_result(self, event: ev.ToolResult) -> None:
        started = self._tools.get(_call_key(event.call))
        span = started.pop(0) if started else None
        if span is None:  # no ToolStarted (a stream picked up mid-run): the start comes from the duration
            span = self._start_tool(event.step, event.call, event.time - event.duration)
        if self.capture_content:
            span.set_attribute("gen_ai.tool.call.result", self._clip(event.output))
        if not event.ok:
            self._fail(span, "tool_error", event.output.splitlines()[0] if event.output else "tool failed")
        span.end(end_time=_ns(event.time))

    # --- helpers -----------------------------------------------------------------------------

    def _parent(self) -> Any:
        return self._trace.set_span_in_context(self._run) if self._run is not None else None

    def _open_tools(self) -> list[Span]:
        return [span for spans in self._tools.values() for span in spans]

    def _calling_context(self) -> Any:
        """Where a sub-run started by one of this run's tools hangs: under the latest tool span still open."""
        tools = self._open_tools()
        return self._trace.set_span_in_context(tools[-1]) if tools else self._parent()

    def _end_chat(self) -> None:
        if self._chat is not None:
            self._chat.end(end_time=_ns(self._chat_end))
            self._chat = None

    def _fail(self, span: Span, error_type: str, description: str) -> None:
        from opentelemetry.trace import Status, StatusCode

        span.set_attribute("error.type", error_type)
        span.set_status(Status(StatusCode.ERROR, self._clip(description)))

    def _add_retry(self, span: Span, retry: ev.ModelRetry) -> None:
        span.add_event(
            "agentlab.model_retry",
            {"agentlab.attempt": retry.attempt, "agentlab.error": self._clip(retry.error), "agentlab.wait": retry.wait},
            timestamp=_ns(retry.time),
        )

    def close(self) -> None:
        """End whatever is still open, marking it as interrupted."""
        for sub in reversed(list(self._subruns.values())):  # the deepest last started: ended first
            sub.close()
        self._subruns.clear()
        self._end_chat()
        for span in self._open_tools():
            self._fail(span, "interrupted", "the event stream stopped before the tool finished")
            span.end()
        self._tools.clear()
        if self._run is not None:
            self._fail(self._run, "interrupted", "the event stream stopped before the run finished")
            self._run.end()
            self._run = None
        self._retries.clear()


def _call_key(call: ev.ToolCall) -> tuple[str, str]:
    import json

    return call.id, json.dumps(call.arguments, sort_keys=True, default=str)


async def otel_traced(
    events: AsyncIterable[ev.Event],
    tracer_provider: TracerProvider | None = None,
    *,
    agent_name: str | None = None,
    capture_content: bool = False,
) -> AsyncIterator[ev.Event]:
    """Pass `events` through unchanged, recording spans as they go by."""
    recorder = OTelRecorder(tracer_provider, agent_name=agent_name, capture_content=capture_content)
    try:
        async for event in events:
            recorder.record(event)
            yield event
    finally:
        recorder.close()
