"""Strategies by name, one resolver for "a name, a factory or an instance", and option checks built from
a strategy's constructor signature (so a misspelt option fails when the agent is built, not mid-run)."""

from __future__ import annotations

import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from agentlab.strategies.base import Strategy, StrategyBase, as_strategy, missing_methods

StrategyFactory = Callable[..., Any]
# What names a strategy: a name in STRATEGIES, a factory, or an instance (of StrategyBase or a plain class).
StrategySpec = Union[str, StrategyFactory, StrategyBase, Strategy]  # noqa: UP007 (a runtime alias)


@dataclass(frozen=True)
class BuiltinStrategy:
    """A strategy class imported on first use, so `import agentlab` stays light."""

    module: str
    attribute: str

    def load(self) -> type[StrategyBase]:
        """The strategy class."""
        cls: type[StrategyBase] = getattr(importlib.import_module(self.module), self.attribute)
        return cls

    def __call__(self, **options: Any) -> StrategyBase:
        return self.load()(**options)


STRATEGIES: dict[str, StrategyFactory] = {
    "react": BuiltinStrategy("agentlab.strategies.react", "ReAct"),
    "pal": BuiltinStrategy("agentlab.strategies.pal", "PAL"),
    "codeact": BuiltinStrategy("agentlab.strategies.codeact", "CodeAct"),
    "critic": BuiltinStrategy("agentlab.strategies.critic", "Critic"),
    "camel": BuiltinStrategy("agentlab.strategies.camel", "Camel"),
    "babyagi": BuiltinStrategy("agentlab.strategies.babyagi", "BabyAGI"),
    "vote": BuiltinStrategy("agentlab.strategies.vote", "Vote"),
}


def create(name: str, **options: Any) -> StrategyBase:
    """A new instance of the strategy called `name`, built with `options` (checked first, see `check_options`)."""
    factory = _registered(name)
    check_options(factory, options, name)
    return as_strategy(factory(**options))


def takes_option(spec: StrategySpec, option: str) -> bool:
    """Whether a strategy (a registered name, a class or a factory) takes `option` as a keyword argument."""
    target: Any = STRATEGIES.get(spec) if isinstance(spec, str) else spec
    if isinstance(target, BuiltinStrategy):
        target = target.load()
    try:
        return target is not None and option in inspect.signature(target).parameters
    except (TypeError, ValueError):  # builtins and C callables have no signature to read
        return False


def _registered(name: str) -> StrategyFactory:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(sorted(STRATEGIES))}") from None


def strategy_factory(spec: StrategySpec, options: Mapping[str, Any] | None = None) -> Callable[[], StrategyBase]:
    """One resolver for everything that names a strategy: a name in STRATEGIES, a factory (a class or a
    function, called with `options`), or an instance (used as it is, so it serves every call; pass a
    factory for a fresh one each time). Unknown names and options raise ValueError here, not at first use."""
    options = dict(options or {})
    if isinstance(spec, str):
        factory = _registered(spec)
        check_options(factory, options, spec)
        return lambda: as_strategy(factory(**options))
    if isinstance(spec, type) or (callable(spec) and not callable(getattr(spec, "next_step", None))):
        if isinstance(spec, type) and (missing := missing_methods(spec)):
            raise TypeError(
                f"{spec.__name__} is not a strategy: it has no {', '.join(missing)} method "
                "(subclass agentlab.strategies.StrategyBase)"
            )
        check_options(spec, options, getattr(spec, "__name__", "factory"))
        return lambda: as_strategy(spec(**options))
    if options:
        raise ValueError(f"options {sorted(options)} cannot apply to a strategy instance; pass a name or a factory")
    instance = as_strategy(spec)
    return lambda: instance


def check_options(factory: StrategyFactory, options: Mapping[str, Any], label: str) -> None:
    """ValueError for an option `factory` does not take, TypeError for one of the wrong type, each naming
    the option and the accepted ones. A factory without a readable signature is not checked."""
    if not options:
        return  # nothing to check (and reading a signature costs ~0.5 ms, paid by every Agent otherwise)
    target = factory.load() if isinstance(factory, BuiltinStrategy) else factory
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [name for name, p in parameters.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for name in options:
        if name not in accepted:
            choices = ", ".join(accepted) or "none"
            raise ValueError(f"strategy {label!r} has no option {name!r}; it accepts: {choices}")
    hints = _type_hints(target)
    for name, value in options.items():
        hint = hints.get(name)
        if hint is not None and _matches(value, hint) is False:
            raise TypeError(f"strategy {label!r} option {name!r} must be {_describe(hint)}, not {type(value).__name__}")


def _type_hints(target: Any) -> dict[str, Any]:
    """The constructor's parameter annotations that can be evaluated (names imported only for type
    checking cannot, and are skipped)."""
    function: Any = target
    if isinstance(target, type):
        function = typing.cast(Any, target).__init__
    raw = getattr(function, "__annotations__", {})
    namespace = getattr(function, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in raw.items():
        if not isinstance(annotation, str):
            hints[name] = annotation
            continue
        try:
            hints[name] = eval(annotation, namespace)  # the strategy module's own annotations
        except Exception:
            continue
    return hints


def _matches(value: Any, hint: Any) -> bool | None:
    """Whether `value` fits `hint`; None when the hint is beyond this simple check (protocols, generics)."""
    if hint is Any:
        return None
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        results = [_matches(value, arg) for arg in typing.get_args(hint)]
        return True if True in results else (None if None in results else False)
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin is not None:
        hint = origin
    if not isinstance(hint, type) or getattr(hint, "_is_protocol", False):
        return None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    try:
        return isinstance(value, hint)
    except TypeError:
        return None


def _describe(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if isinstance(hint, type) else None
    return text or str(hint).replace("typing.", "")
