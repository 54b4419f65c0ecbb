"""Reading a reply while it streams: the pieces a model hands on (`ReplyDelta`) become the events a user
of `astream(task, deltas=True)` sees — text, tool-call pieces and the typed output so far.

In JSON decision formats the reply is a growing JSON object; it is re-read as it grows with pydantic's
partial JSON parser (`pydantic_core.from_json(..., allow_partial="trailing-strings")`), so the user gets the
`thought` and the answer as text, not braces, and the typed output field by field.
"""

from __future__ import annotations

from typing import Any

from agentlab import events as ev
from agentlab.decisions import FINAL
from agentlab.models.base import ModelRequest, ReplyDelta
from agentlab.run.output import ANSWER_KEY, OutputSpec

_OPENERS = "{`"  # a reply that starts with these is read as JSON (fenced or not); any other is plain text
_UNFINISHED_SCALAR = tuple("0123456789.-+eE")  # a number at the very end may still grow: wait for more


class DeltaReader:
    """The delta events of one model call, from the pieces of its reply in order.

    Args:
        step: The step the call belongs to.
        output: The run's output type: how the final answer's arguments are shown (text or typed output).
        request: The request: a structuring request (`final_answer` asked as a bare JSON object) carries
            the output itself, not a decision.
    """

    def __init__(self, step: int, output: OutputSpec[Any], request: ModelRequest) -> None:
        self.step = step
        self.output = output
        self.bare_object = request.schema_name == FINAL and not request.tools
        self.sent = False  # whether any delta has gone out (a failure afterwards must reset them)
        self._clear()

    def _clear(self) -> None:
        self.content = ""
        self.json_from: int | None = None  # where the JSON of a JSON reply starts; None: not decided yet
        self.plain = False  # the reply is plain text
        self.names: dict[int, str] = {}
        self.arguments: dict[int, str] = {}
        self.shown: dict[str, str] = {}  # the text of each part shown so far
        self.partial: Any = None
        self.announced = False  # a JSON decision's tool call has been announced

    def read(self, piece: ReplyDelta) -> list[ev.Delta]:
        """The events this piece of the reply makes visible (often none: a brace, half a key)."""
        if piece.reset:
            self._clear()
            return [ev.StreamReset(self.step, "the reply broke off and is asked again")]
        events = self._text(piece.text) if piece.text else []
        if piece.call_index is not None:
            events += self._call(piece)
        self.sent = self.sent or bool(events)
        return events

    def reset(self, reason: str) -> list[ev.Delta]:
        """A `StreamReset` when deltas went out for a reply that will not be used (the call failed)."""
        if not self.sent:
            return []
        self._clear()
        self.sent = False
        return [ev.StreamReset(self.step, reason)]

    # --- text: plain, or a JSON decision / object growing ----------------------------------------

    def _text(self, text: str) -> list[ev.Delta]:
        self.content += text
        if self.plain:
            return [ev.TextDelta(self.step, text)]
        if self.json_from is None:
            start = len(self.content) - len(self.content.lstrip())
            if start == len(self.content):
                return []  # only whitespace so far
            if self.content[start] not in _OPENERS:
                self.plain = True
                return [ev.TextDelta(self.step, self.content)]
            self.json_from = self.content.find("{")
            if self.json_from < 0:
                self.json_from = None  # a fence, the object not begun yet
                return []
        data = _partial_json(self.content[self.json_from :])
        if not isinstance(data, dict):
            return []
        if self.bare_object:
            return self._final(data, self.content)
        events = []
        thought = data.get("thought")
        if isinstance(thought, str):
            events += self._part("thought", thought)
        action = data.get("action")
        # The name is whole once "arguments" follows it (the decision's documented key order).
        if isinstance(action, dict) and isinstance(action.get("name"), str) and "arguments" in action:
            if action["name"] == FINAL:
                events += self._final(action["arguments"], self.content)
            elif not self.announced:
                self.announced = True
                events.append(ev.ToolCallDelta(self.step, 0, action["name"], ""))
        return events

    # --- native tool calls ------------------------------------------------------------------------

    def _call(self, piece: ReplyDelta) -> list[ev.Delta]:
        index = piece.call_index or 0
        if piece.name:
            self.names[index] = self.names.get(index, "") + piece.name
        name = self.names.get(index, "")
        self.arguments[index] = self.arguments.get(index, "") + piece.arguments
        if name == FINAL:
            data = _partial_json(self.arguments[index])
            return self._final(data, self.arguments[index]) if isinstance(data, dict) else []
        if not piece.arguments and not piece.name:
            return []
        return [ev.ToolCallDelta(self.step, index, name, piece.arguments)]

    # --- the final answer: text, or the typed output so far ---------------------------------------

    def _final(self, arguments: Any, raw: str) -> list[ev.Delta]:
        if not isinstance(arguments, dict):
            return []
        if self.output.is_text:
            answer = arguments.get(ANSWER_KEY)
            return self._part("answer", answer) if isinstance(answer, str) else []
        if raw.rstrip().endswith(_UNFINISHED_SCALAR):
            return []  # "12" may be the start of "1234": show the number once it is whole
        if self.output.wrapped and ANSWER_KEY not in arguments:
            return []
        partial = self._validated(arguments[ANSWER_KEY] if self.output.wrapped else arguments)
        if partial == self.partial:
            return []
        self.partial = partial
        return [ev.OutputDelta(self.step, partial)]

    def _validated(self, value: Any) -> Any:
        """`value` validated as far as the output type allows a partial value (pydantic's partial
        validation completes the last item of lists and TypedDicts), in JSON form; as parsed otherwise
        (an object still missing required fields)."""
        from pydantic import ValidationError  # loaded already: the output spec's adapter is pydantic's

        adapter = self.output.adapter
        try:
            return adapter.dump_python(
                adapter.validate_python(value, experimental_allow_partial="trailing-strings"), mode="json"
            )
        except (ValidationError, ValueError, TypeError):
            return value

    def _part(self, part: str, text: str) -> list[ev.Delta]:
        """The new end of `part`'s text. Re-reading a growing JSON string only ever lengthens it, so
        anything else (a parser's second thought about an escape) waits for the next piece."""
        shown = self.shown.get(part, "")
        if len(text) <= len(shown) or not text.startswith(shown):
            return []
        self.shown[part] = text
        return [ev.TextDelta(self.step, text[len(shown) :], part)]


def _partial_json(text: str) -> Any:
    """The JSON value `text` begins, as far as it goes (trailing strings included); None when unreadable."""
    from pydantic_core import from_json  # loaded on first use: `import agentlab` stays light

    try:
        return from_json(text, allow_partial="trailing-strings")
    except ValueError:
        return None
