"""Test and benchmark helpers: a scripted OpenAI-compatible HTTP server.

Importing this package is cheap: the server module (asyncio, threading) is loaded on first
attribute access, so code that only checks ``agentlab.testing`` exists pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlab.testing.script import PROBE_NAME, Script, ScriptError, ScriptFn, ScriptItem
    from agentlab.testing.server import ScriptedServer

__all__ = ["PROBE_NAME", "Script", "ScriptError", "ScriptFn", "ScriptItem", "ScriptedServer"]

_LAZY = {
    "ScriptedServer": "agentlab.testing.server",
    "PROBE_NAME": "agentlab.testing.script",
    "Script": "agentlab.testing.script",
    "ScriptError": "agentlab.testing.script",
    "ScriptFn": "agentlab.testing.script",
    "ScriptItem": "agentlab.testing.script",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value
