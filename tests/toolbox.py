"""Helpers shared by the test files: sample tools and scripted-reply builders.

Import them as ``from toolbox import add, call, decide, explode, model_for``: pytest's default
(prepend) import mode puts tests/ on sys.path. Keep behaviour here stable; a file whose helper
differs wraps these (e.g. ``partial(toolbox.model_for, max_retry_wait=1.0)``) rather than
changing them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from typing import Any

from agentlab import OpenAIModel, tool
from agentlab.testing import ScriptedServer


# test_tools.py asserts this tool's exact name, description and schema: edit both together.
@tool
def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: The first number.
        b: The second number.
    """
    return a + b


@tool
def explode(reason: str) -> str:
    """Always fails.

    Args:
        reason: Why.
    """
    raise RuntimeError(f"boom: {reason}")


def model_for(srv: ScriptedServer, **options: Any) -> OpenAIModel:
    """An OpenAIModel pointed at ``srv``, named "scripted" with key "test-key"; ``options`` (e.g.
    max_retry_wait, decision_format, or another model / api_key) go to OpenAIModel as given."""
    settings: dict[str, Any] = {"model": "scripted", "api_key": "test-key", **options}
    return OpenAIModel(base_url=srv.base_url, **settings)


def call(name: str, thought: str | None = None, /, **arguments: Any) -> dict[str, Any]:
    """A reply item with one native tool call; with ``thought``, also that text as the content."""
    item: dict[str, Any] = {"tool_calls": [{"name": name, "arguments": arguments}]}
    if thought is not None:
        item["content"] = thought
    return item


def decide(name: str, thought: str = "", /, **arguments: Any) -> dict[str, Any]:
    """A JSON decision (thought and one action), as a json_schema or plain-JSON endpoint returns it."""
    return {"content": json.dumps({"thought": thought, "action": {"name": name, "arguments": arguments}})}


def chromium_browser(profile: Any) -> Any:
    """A real headless Chromium driven by selenium, with its profile in the folder `profile`; skips the
    test where selenium or Debian's chromium and chromium-driver are missing. Quit it when done."""
    import shutil

    import pytest

    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (dev extra) is not installed")
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("Debian chromium and chromium-driver are not installed (.ci/run installs them)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--window-size=1200,1600",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def loaded_by(statement: str, modules: Iterable[str]) -> list[str]:
    """Which of `modules` a fresh interpreter has loaded after running `statement` (sorted)."""
    code = (
        f"import json, sys\n{statement}\nprint(json.dumps(sorted(m for m in {tuple(modules)!r} if m in sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded
