"""Import allow-list and the optional AST pre-check.

The pre-check only exists to give the model a clear, early error message ("import of 'os' is
not allowed") instead of a confusing failure deep inside the sandbox.  It is *not* the security
boundary: Python offers too many indirect paths to forbidden objects for a static check to be
complete.  The boundary is the OS layer (namespaces, uid, rlimits, seccomp).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # ast is imported on first use, keeping `import agentlab.sandbox` cheap
    import ast

DEFAULT_ALLOWED_IMPORTS: frozenset[str] = frozenset(
    {
        "math", "cmath", "fractions", "decimal", "statistics", "itertools", "functools",
        "operator", "collections", "heapq", "bisect", "re", "string", "datetime", "json",
        "random", "textwrap", "dataclasses", "typing", "enum", "copy",
    }
)  # fmt: skip

# Attribute names that lead from ordinary objects to interpreter internals (classes, frames,
# globals, code objects, the real builtins) - the usual first step of every "pyjail" escape.
BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "__subclasses__", "__globals__", "__builtins__", "__code__", "__closure__", "__base__",
        "__bases__", "__mro__", "__loader__", "__spec__", "__import__", "__getattribute__",
        "__reduce__", "__reduce_ex__", "__func__", "__self__", "__dict__", "__traceback__",
        "__set_name__", "__init_subclass__", "__class_getitem__", "mro",
        "gi_frame", "gi_code", "cr_frame", "cr_code", "ag_frame", "ag_code", "f_back",
        "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next", "co_code",
    }
)  # fmt: skip
BLOCKED_NAMES: frozenset[str] = frozenset({"__builtins__", "__import__", "__loader__", "__spec__"})

# Dunder names inside string literals (format strings such as "{0.__class__.__base__}").
_DUNDER_IN_TEXT = re.compile(r"__[A-Za-z0-9]+__")
_HARMLESS_DUNDERS = frozenset({"__main__", "__name__", "__init__", "__class__", "__doc__", "__repr__"})

_IMPORT_ERRORS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})


class PolicyViolation(Exception):
    """Raised (in the parent) by :func:`precheck`; ``str()`` is the message shown to the model."""


def _catches_import_error(handlers: list[ast.ExceptHandler]) -> bool:
    import ast

    for handler in handlers:
        if handler.type is None:
            return True
        types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(t, ast.Name) and t.id in _IMPORT_ERRORS for t in types):
            return True
    return False


def precheck(code: str, allowed: frozenset[str]) -> None:
    """Raise :class:`PolicyViolation` or ``SyntaxError`` for code that would obviously be refused.

    Imports inside ``try: ... except ImportError:`` are left to the runtime import guard, so the
    common "optional dependency" idiom keeps working.
    """
    import ast

    tree = ast.parse(code, filename="<sandbox>", mode="exec")
    shown = ", ".join(sorted(allowed))
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and _catches_import_error(node.handlers):
            for stmt in node.body:
                guarded.update(id(sub) for sub in ast.walk(stmt))

    # Statements and expressions: every node the checks below look at, each with a position.
    located = [n for n in ast.walk(tree) if isinstance(n, ast.stmt | ast.expr)]
    located.sort(key=lambda n: (n.lineno, n.col_offset, n.end_col_offset or 0))  # report the first one
    for node in located:
        line = node.lineno
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in guarded:
            if isinstance(node, ast.ImportFrom) and node.level:
                raise PolicyViolation(f"line {line}: relative imports are not available in the sandbox")
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                if name.partition(".")[0] not in allowed:
                    raise PolicyViolation(
                        f"line {line}: import of {name!r} is not allowed in the sandbox. Allowed modules: {shown}"
                    )
        elif isinstance(node, ast.Attribute) and node.attr in BLOCKED_ATTRIBUTES:
            raise PolicyViolation(
                f"line {line}: access to attribute {node.attr!r} is not allowed in the sandbox "
                "(introspection of interpreter internals is disabled)"
            )
        elif isinstance(node, ast.Name) and node.id in BLOCKED_NAMES:
            raise PolicyViolation(f"line {line}: the name {node.id!r} is not available in the sandbox")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            for match in _DUNDER_IN_TEXT.findall(node.value):
                if match not in _HARMLESS_DUNDERS:
                    raise PolicyViolation(
                        f"line {line}: the string {match!r} looks like an attempt to reach "
                        "interpreter internals (e.g. via str.format or getattr) and is not allowed"
                    )
