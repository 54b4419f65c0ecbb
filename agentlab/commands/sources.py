"""Loading user code named on the command line: tools (`--tools`) and functions such as `--scorer`."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
from pathlib import Path
from typing import Any


class SourceError(ValueError):
    """User code named on the command line could not be loaded; the message is one line for the user."""


def import_source(source: str) -> Any:
    """The module `source` names: a dotted module name, or a path to a `.py` file."""
    try:
        if not (source.endswith(".py") or "/" in source):
            return importlib.import_module(source)
        path = Path(source).resolve()
        if not path.is_file():
            raise SourceError(f"{source}: no such file")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise SourceError(f"cannot load Python code from {source}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    except SourceError:
        raise
    except SyntaxError as error:
        raise SourceError(f"{source}: syntax error at line {error.lineno}: {error.msg}") from None
    except Exception as error:  # whatever the user's module raises while importing is theirs to fix
        raise SourceError(f"{source}: cannot be imported ({type(error).__name__}: {error})") from None


def load_function(spec: str, option: str) -> Any:
    """The callable `spec` ("MODULE_OR_FILE:FUNCTION") names; `option` names the flag in error messages."""
    source, _, name = spec.rpartition(":")
    if not source:
        raise SourceError(f"{option} needs MODULE_OR_FILE:FUNCTION, got {spec!r}")
    function = getattr(import_source(source), name, None)
    if not callable(function):
        raise SourceError(f"{source} has no function {name!r}")
    return function


def load_tools(spec: str) -> list[Any]:
    """Tools from "name,module:attr,path/to/file.py:attr,..."; a bare name is a built-in."""
    from agentlab.tools.builtin import builtin_tool_map

    builtins = builtin_tool_map()
    loaded: list[Any] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        if ":" not in item:
            if item not in builtins:
                raise SourceError(f"unknown built-in tool {item!r}; built-ins: {', '.join(sorted(builtins))}")
            loaded.append(builtins[item])
            continue
        source, _, attr = item.rpartition(":")
        module = import_source(source)
        if not hasattr(module, attr):
            raise SourceError(f"{source} has no attribute {attr!r}")
        value = getattr(module, attr)
        for candidate in value if isinstance(value, list | tuple) else [value]:
            loaded.append(_as_tool(candidate, item))
    return loaded


def _as_tool(value: Any, item: str) -> Any:
    from agentlab.tools.function_tool import BaseTool

    if isinstance(value, BaseTool) or inspect.isfunction(value) or inspect.ismethod(value):
        return value
    raise SourceError(f"{item} is not a tool (a @tool or plain function), it is a {type(value).__name__}")
