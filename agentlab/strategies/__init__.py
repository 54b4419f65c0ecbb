"""Reasoning strategies behind one protocol; `create(name)` builds one by name."""

from __future__ import annotations

from agentlab.strategies.base import (
    CompositeStrategy,
    Conclusion,
    DecisionError,
    ModelDecision,
    Observation,
    PlainStrategy,
    Strategy,
    StrategyBase,
    StrategyContext,
    StrategyFailed,
    as_strategy,
)
from agentlab.strategies.registry import (
    STRATEGIES,
    StrategyFactory,
    StrategySpec,
    check_options,
    create,
    strategy_factory,
)

__all__ = [
    "STRATEGIES",
    "CompositeStrategy",
    "Conclusion",
    "DecisionError",
    "ModelDecision",
    "Observation",
    "PlainStrategy",
    "Strategy",
    "StrategyBase",
    "StrategyContext",
    "StrategyFactory",
    "StrategyFailed",
    "StrategySpec",
    "as_strategy",
    "check_options",
    "create",
    "strategy_factory",
]
