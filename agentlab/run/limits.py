"""Limits beside steps, tokens and seconds: tool calls made and money spent.

Cost comes from a price table the user passes (`Agent(prices={"gpt-4o": Price(2.5, 10)})`, by model name)
or from a `price` attribute on the model object; nothing is hard-coded, since prices change and local
models cost nothing. With `FallbackModel`, each call is priced by the model that answered it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentlab.events import Usage


@dataclass(frozen=True)
class Price:
    """What a model's tokens cost, in the currency of your choice, per million tokens."""

    input_per_million: float
    output_per_million: float

    def __post_init__(self) -> None:
        for name in ("input_per_million", "output_per_million"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError(f"Price.{name} must be a number >= 0, not {value!r}")

    def cost(self, usage: Usage) -> float:
        """What `usage` costs at this price."""
        return (usage.prompt_tokens * self.input_per_million + usage.completion_tokens * self.output_per_million) / 1e6


def answering_model(model: Any) -> Any:
    """The model that answers a request now: a `FallbackModel`'s current one, else the model itself."""
    return getattr(model, "current", model)


def models_of(model: Any) -> list[Any]:
    """Every model a request may go to: a `FallbackModel`'s models, else the model itself."""
    return list(getattr(model, "models", None) or [model])


def price_of(model: Any, prices: Mapping[str, Price]) -> Price | None:
    """The price of `model`: the table's entry for its name, else its own `price` attribute, else None."""
    name = getattr(model, "name", None)
    if isinstance(name, str) and name in prices:
        return prices[name]
    own = getattr(model, "price", None)
    return own if isinstance(own, Price) else None


def check_prices(model: Any, prices: Mapping[str, Price]) -> None:
    """ValueError unless every model the agent may use has a price: a cost limit must never count a model's
    calls as free because its price was forgotten."""
    for name, price in prices.items():
        if not isinstance(price, Price):
            raise TypeError(f"prices[{name!r}] must be a Price, not {type(price).__name__}")
    missing = [getattr(m, "name", repr(m)) for m in models_of(model) if price_of(m, prices) is None]
    if missing:
        raise ValueError(
            f"max_cost needs a price for every model: none for {', '.join(missing)} "
            '(pass prices={"<model name>": Price(input_per_million=..., output_per_million=...)})'
        )


def load_prices(path: str | Path) -> dict[str, Price]:
    """A price table from a JSON file: `{"<model name>": {"input_per_million": 2.5, "output_per_million": 10}}`.
    ValueError with the reason when the file cannot be read or does not have that shape."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read prices from {path}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of model name -> price")
    table: dict[str, Price] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or set(entry) != {"input_per_million", "output_per_million"}:
            raise ValueError(f"{path}: {name!r} needs exactly input_per_million and output_per_million")
        try:
            table[name] = Price(**entry)
        except ValueError as error:
            raise ValueError(f"{path}: {name!r}: {error}") from None
    return table
