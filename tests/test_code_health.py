"""Structure rules the project keeps: no module imports another module's private name."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "agentlab"
# Private modules whose public functions are meant to be shared across the package.
SHARED_PRIVATE_MODULES = {
    "agentlab._text",
    "agentlab._jsonl",
    "agentlab._lazy",
    "agentlab._sync",
    "agentlab._redact",
    "agentlab._arithmetic_shape",
    "agentlab._json_schema",
}


def private_imports(source: str, package: str) -> list[str]:
    """`from x import _y` of any module, and imports of another package's private module, in `source`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.module == "__future__":
            continue
        module = node.module or ""
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            module = ".".join([*base, module] if module else base)
        private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
        if module != package:  # a package's own private modules are its business
            found += [f"line {node.lineno}: from {module} import {name}" for name in private]
        parent, _, last = module.rpartition(".")
        shared = module in SHARED_PRIVATE_MODULES or parent == package
        if module.startswith("agentlab") and last.startswith("_") and not shared:
            found.append(f"line {node.lineno}: imports the private module {module}")
    return found


def test_no_module_imports_another_modules_private_name():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
        problems += [f"{path.relative_to(PACKAGE.parent)} {p}" for p in private_imports(path.read_text(), package)]
    assert problems == []


def test_the_check_sees_private_imports():
    assert private_imports("from agentlab.cli import _import_source\n", "agentlab.commands") == [
        "line 1: from agentlab.cli import _import_source"
    ]
    assert private_imports("from agentlab.sandbox import _proc\n", "agentlab.tools") == [
        "line 1: from agentlab.sandbox import _proc"
    ]
    assert private_imports("from agentlab.sandbox._proc import run\n", "agentlab.tools") == [
        "line 1: imports the private module agentlab.sandbox._proc"
    ]
    own = "from ._proc import run\nfrom agentlab.sandbox import _proc\nfrom agentlab._text import clip\n"
    assert private_imports(own, "agentlab.sandbox") == []
