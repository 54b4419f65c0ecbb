"""`FallbackModel`: several models tried in order; the run moves to the next one when the current one
fails for good (after its own retries) or keeps sending replies that cannot be used.

It is a `Model` like any other. Which model is current is the fallback's state, shared by every run that
uses the object (like a circuit breaker: a model that failed is not tried again by later runs, until
`reset()`); runs that share one while it switches see the switch at their next step, so share it only
between runs whose requests every model can take, or give each run its own.
The loop asks it to move on with `give_up(reason)`; requests are sent to the current model only, and its
own capabilities decide the decision format (the loop re-reads them after a switch, so a request built
for native tools is never sent to a JSON-only model).
"""

from __future__ import annotations

from agentlab.events import Usage
from agentlab.models.base import (
    Capabilities,
    DeltaCallback,
    Model,
    ModelRequest,
    ModelResponse,
    RetryCallback,
    complete_with_deltas,
    probe_capabilities,
)


class FallbackModel:
    """`FallbackModel(primary, secondary, ...)`: use `primary` until it fails for good, then the next.

    `usage_by_model` keeps the tokens each model spent (by name; models sharing a name share a line).
    """

    def __init__(self, primary: Model, secondary: Model, *others: Model, name: str | None = None) -> None:
        self.models: list[Model] = [primary, secondary, *others]
        self.name = name or " -> ".join(m.name for m in self.models)
        self._index = 0
        self.usage_by_model: dict[str, Usage] = {m.name: Usage() for m in self.models}

    def __repr__(self) -> str:
        return f"FallbackModel({', '.join(repr(m) for m in self.models)})"

    @property
    def current(self) -> Model:
        """The model requests go to now."""
        return self.models[self._index]

    async def capabilities(self, on_retry: RetryCallback | None = None) -> Capabilities:
        """The current model's capabilities: its own probe decides the format of requests sent to it."""
        return await probe_capabilities(self.current, on_retry)

    async def complete(
        self, request: ModelRequest, on_retry: RetryCallback | None = None, *, on_delta: DeltaCallback | None = None
    ) -> ModelResponse:
        """Send `request` to the current model (streamed to `on_delta` when it can stream); its ModelError
        propagates, so that the loop, which built the request for this model's format, decides whether to
        `give_up` and rebuild it."""
        model = self.current
        response = await complete_with_deltas(model, request, on_retry, on_delta)
        self.usage_by_model[model.name] = self.usage_by_model.get(model.name, Usage()) + response.usage
        return response

    def give_up(self, reason: str) -> tuple[str, str] | None:
        """Move to the next model because the current one failed (`reason`): (from, to) model names, or
        None when no model is left (the failure then ends the run)."""
        if self._index + 1 >= len(self.models):
            return None
        before = self.current.name
        self._index += 1
        return before, self.current.name

    def reset(self) -> None:
        """Go back to the primary model (e.g. once the outage that made it fail is over)."""
        self._index = 0

    async def aclose(self) -> None:
        """Close every inner model's connections (the sync wrappers' event loop ends with the run)."""
        for model in self.models:
            close = getattr(model, "aclose", None)
            if close is not None:
                await close()


def give_up(model: Model, reason: str) -> tuple[str, str] | None:
    """Ask `model` to move on after a failure: (from, to) model names when it has another model to use
    (a `FallbackModel`, or any model with a `give_up` method), else None."""
    move_on = getattr(model, "give_up", None)
    return move_on(reason) if move_on is not None else None
