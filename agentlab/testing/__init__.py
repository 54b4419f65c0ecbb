"""Test and benchmark helpers: a scripted OpenAI-compatible HTTP server.

Importing this package is cheap: the server module (asyncio, threading) is loaded on first
attribute access, so code that only checks ``agentlab.testing`` exists pays nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentlab._lazy import lazy_exports

if TYPE_CHECKING:
    from agentlab.models.openai_compatible import PROBE_NAME
    from agentlab.testing.script import Script, ScriptError, ScriptFn, ScriptItem
    from agentlab.testing.server import ScriptedServer

__all__ = ["PROBE_NAME", "Script", "ScriptError", "ScriptFn", "ScriptItem", "ScriptedServer"]

_LAZY = {
    "ScriptedServer": "agentlab.testing.server",
    "PROBE_NAME": "agentlab.models.openai_compatible",
    "Script": "agentlab.testing.script",
    "ScriptError": "agentlab.testing.script",
    "ScriptFn": "agentlab.testing.script",
    "ScriptItem": "agentlab.testing.script",
}


__getattr__ = lazy_exports(__name__, _LAZY)
