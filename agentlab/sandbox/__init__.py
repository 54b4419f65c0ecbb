"""OS-level sandbox for model-written Python code.

>>> with Sandbox(timeout=5.0) as sb:
...     r = sb.run("def solution():\n    return sum(range(10))", call="solution")
>>> r.value
45

Layers (bubblewrap namespaces, uid drop, no_new_privs, seccomp, rlimits, empty environment) are
described in ``docs/security.md``; ``Sandbox.isolation`` reports which are active on this host.
"""

from ._result import Isolation, SandboxResult, SandboxUnavailable, SnippetResult
from ._session import CallHandler, CallRefused, SandboxSession
from .sandbox import Sandbox

__all__ = [
    "CallHandler",
    "CallRefused",
    "Isolation",
    "Sandbox",
    "SandboxResult",
    "SandboxSession",
    "SandboxUnavailable",
    "SnippetResult",
]
