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
    StrategyFailed,
    extra_tools,
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


def _babyagi(**options: Any) -> Strategy:
    from agentlab.strategies.babyagi import BabyAGI

    return BabyAGI(**options)


def _pal(**options: Any) -> Strategy:
    from agentlab.strategies.pal import PAL

    return PAL(**options)


def _codeact(**options: Any) -> Strategy:
    from agentlab.strategies.codeact import CodeAct

    return CodeAct(**options)


# Factories import their module on use, so `import agentlab` stays light.
STRATEGIES: dict[str, StrategyFactory] = {
    "react": _react,
    "pal": _pal,
    "codeact": _codeact,
    "critic": _critic,
    "camel": _camel,
    "babyagi": _babyagi,
}


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
    "StrategyFailed",
    "create",
    "extra_tools",
]
