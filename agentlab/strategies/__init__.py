"""Reasoning strategies behind one protocol; `create(name)` builds one by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentlab.strategies.base import (
    Conclusion,
    DecisionError,
    ModelDecision,
    Observation,
    Strategy,
    StrategyContext,
)

StrategyFactory = Callable[..., Strategy]


def _react(**options: Any) -> Strategy:
    from agentlab.strategies.react import ReAct

    return ReAct(**options)


def _critic(**options: Any) -> Strategy:
    from agentlab.strategies.critic import Critic

    return Critic(**options)


def _camel(**options: Any) -> Strategy:
    from agentlab.strategies.camel import Camel

    return Camel(**options)


# Factories import their module on use, so `import agentlab` stays light.
STRATEGIES: dict[str, StrategyFactory] = {"react": _react, "critic": _critic, "camel": _camel}


def create(name: str, **options: Any) -> Strategy:
    try:
        factory = STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}") from None
    return factory(**options)


__all__ = [
    "STRATEGIES",
    "Conclusion",
    "DecisionError",
    "ModelDecision",
    "Observation",
    "Strategy",
    "StrategyContext",
    "create",
]
