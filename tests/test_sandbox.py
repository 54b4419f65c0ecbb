"""Contract and behaviour of agentlab.sandbox (the red-team suite is test_sandbox_redteam.py)."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import time

import pytest
from test_codeact import sandbox_children
from toolbox import loaded_by

from agentlab.sandbox import Isolation, Sandbox, SandboxResult, SandboxUnavailable
from agentlab.sandbox._seccomp import build_filter


@pytest.fixture(scope="module")
def sb():
    with Sandbox(timeout=5.0) as box:
        yield box


def test_print_and_result_fields(sb: Sandbox) -> None:
    r = sb.run("print(sum(range(10)))", timeout=5.0)
    assert isinstance(r, SandboxResult)
    assert r.ok and r.stdout == "45\n" and r.stderr == "" and r.error is None
    assert not r.timed_out and r.value is None and 0 < r.duration < 5


def test_call_solution_returns_json_value(sb: Sandbox) -> None:
    code = "def solution():\n    return {'a': [1, 2.5, None, True], 'b': (3, 'x')}"
    r = sb.run(code, call="solution")
    assert r.ok
    assert r.value == {"a": [1, 2.5, None, True], "b": [3, "x"]}


def test_call_solution_non_json_value_is_repr(sb: Sandbox) -> None:
    r = sb.run("from fractions import Fraction\ndef solution():\n    return Fraction(1, 3)", call="solution")
    assert r.ok and r.value == "Fraction(1, 3)"


def test_call_without_solution_is_a_clear_error(sb: Sandbox) -> None:
    r = sb.run("x = 1", call="solution")
    assert not r.ok and r.value is None
    assert "did not define a function solution()" in r.error


def test_exception_gives_error_line_and_traceback(sb: Sandbox) -> None:
    r = sb.run("def f():\n    return 1 / 0\nf()")
    assert not r.ok
    assert r.error == "ZeroDivisionError: division by zero"
    assert 'File "<sandbox>", line 2, in f' in r.stderr and "return 1 / 0" in r.stderr


def test_syntax_error_reported_without_running(sb: Sandbox) -> None:
    r = sb.run("def broken(:\n    pass")
    assert not r.ok and r.error.startswith("SyntaxError") and "line 1" in r.error


def test_allowed_stdlib_modules_work(sb: Sandbox) -> None:
    code = (
        "import math, cmath, fractions, decimal, statistics, itertools, functools, operator\n"
        "import collections, heapq, bisect, re, string, datetime, json, random, textwrap\n"
        "import dataclasses, typing, enum, copy\n"
        "from collections import Counter\n"
        "print(math.isqrt(17), statistics.mean([1, 2, 3]), Counter('aab')['a'], json.dumps([1]))"
    )
    r = sb.run(code)
    assert r.ok, r.error
    assert r.stdout == "4 2 2 [1]\n"


def test_precheck_blocks_import_with_clear_message(sb: Sandbox) -> None:
    r = sb.run("import os\nos.system('true')")
    assert not r.ok
    assert r.error.startswith("PolicyViolation: line 1: import of 'os' is not allowed in the sandbox")
    assert "Allowed modules:" in r.error and "math" in r.error


@pytest.mark.parametrize(
    "code, needle",
    [
        ("().__class__.__base__.__subclasses__()", "'__base__'"),
        ("x = ().__class__\nx.__subclasses__()", "'__subclasses__'"),
        ("def f(): pass\nf.__globals__", "'__globals__'"),
        ("__builtins__", "'__builtins__'"),
        ("'{0.__class__.__base__}'.format(1)", "'__base__'"),
        ("def g():\n    yield 1\ng().gi_frame.f_back", "'gi_frame'"),
    ],
)
def test_precheck_blocks_introspection(sb: Sandbox, code: str, needle: str) -> None:
    r = sb.run(code)
    assert not r.ok and r.error.startswith("PolicyViolation") and needle in r.error


def test_optional_import_idiom_is_left_to_the_runtime_guard(sb: Sandbox) -> None:
    r = sb.run("try:\n    import os\nexcept ImportError as e:\n    print('no os:', e)")
    assert r.ok
    assert "no os: import of 'os' is blocked in the sandbox" in r.stdout


def test_runtime_import_guard_without_precheck() -> None:
    with Sandbox(precheck=False, pool_size=0) as box:
        r = box.run("__import__('subprocess')")
    assert not r.ok
    assert r.error.startswith("ImportError: import of 'subprocess' is blocked in the sandbox")


def test_custom_allow_list() -> None:
    with Sandbox(allowed_imports=["math"], pool_size=0) as box:
        assert box.run("import math; print(math.pi > 3)").stdout == "True\n"
        assert "import of 'json' is not allowed" in box.run("import json").error


@pytest.mark.skipif(importlib.util.find_spec("numpy") is None, reason="numpy not installed")
def test_extra_imports_numpy() -> None:
    with Sandbox(extra_imports=("numpy",), pool_size=0, timeout=20) as box:
        r = box.run("import numpy as np\ndef solution():\n    return np.arange(10).sum()", call="solution")
    assert r.ok, (r.error, r.stderr)
    assert r.value == 45


def test_output_is_truncated_with_marker() -> None:
    with Sandbox(output_limit=1000, pool_size=0) as box:
        r = box.run("print('x' * 50_000)")
    assert r.ok
    assert r.stdout.startswith("x" * 1000)
    assert r.stdout.endswith("…[truncated 49001 chars]")


def test_exit_is_handled(sb: Sandbox) -> None:
    assert sb.run("print('a'); exit()").ok
    r = sb.run("exit(3)")
    assert not r.ok and r.error == "SystemExit: 3"


def test_isolation_report_shape(sb: Sandbox) -> None:
    iso = sb.isolation
    assert isinstance(iso, Isolation)
    for layer in ("bubblewrap", "seccomp", "no_new_privs", "uid_drop", "rlimits", "empty_env"):
        assert isinstance(iso.layers[layer], bool)
    assert iso.missing == [k for k, v in iso.layers.items() if not v]
    assert "sandbox isolation" in str(iso)


def test_strict_refuses_when_a_layer_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    degraded = Isolation({"bubblewrap": False, "landlock": True, "seccomp": True}, mode="direct", notes=("no bwrap",))
    monkeypatch.setattr(Sandbox, "isolation", property(lambda self: degraded))
    box = Sandbox(strict=True, pool_size=0)
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        box.run("print(1)")


async def test_strict_refuses_in_arun_too(monkeypatch: pytest.MonkeyPatch) -> None:
    degraded = Isolation({"bubblewrap": True, "seccomp": False}, mode="bwrap-root")
    monkeypatch.setattr(Sandbox, "isolation", property(lambda self: degraded))
    with pytest.raises(SandboxUnavailable):
        await Sandbox(strict=True, pool_size=0).arun("print(1)")


def test_degradation_is_logged_once(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    degraded = Isolation({"bubblewrap": False, "landlock": True, "seccomp": True}, mode="direct", notes=("no bwrap",))
    monkeypatch.setattr(Sandbox, "isolation", property(lambda self: degraded))
    with Sandbox(pool_size=0) as box, caplog.at_level(logging.WARNING, logger="agentlab.sandbox"):
        box.run("pass")
        box.run("pass")
    warnings = [r for r in caplog.records if "reduced protection" in r.getMessage()]
    assert len(warnings) == 1 and "bubblewrap" in warnings[0].getMessage()


def test_strict_runs_when_everything_is_active() -> None:
    box = Sandbox(strict=True, pool_size=0)
    if box.isolation.missing:
        pytest.skip(f"layers missing on this host: {box.isolation.missing}")
    assert box.run("print(2 + 2)").stdout == "4\n"


async def test_arun_basic() -> None:
    with Sandbox() as box:
        r = await box.arun("def solution():\n    return 6 * 7", timeout=5.0, call="solution")
    assert r.ok and r.value == 42


async def test_arun_many_concurrent_and_loop_not_blocked() -> None:
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    with Sandbox(pool_size=2) as box:
        tick_task = asyncio.create_task(ticker())
        slow = "x = 0\nfor i in range(3_000_000):\n    x += i\nprint(x)"
        results = await asyncio.gather(*[box.arun(f"print({i} * 2)") for i in range(12)], box.arun(slow))
        stop.set()
        await tick_task
    assert [r.stdout for r in results[:12]] == [f"{i * 2}\n" for i in range(12)]
    assert results[12].ok and results[12].stdout == f"{sum(range(3_000_000))}\n"
    assert ticks >= 5  # the loop kept running while the workers computed


async def test_arun_timeout_and_cancellation() -> None:
    with Sandbox(pool_size=0) as box:
        started = time.monotonic()
        r = await box.arun("while True:\n    pass", timeout=1.0)
        assert r.timed_out and not r.ok and time.monotonic() - started < 1.0 + 1.5
        before = len(sandbox_children())  # the module's warm pool has workers too
        task = asyncio.create_task(box.arun("while True:\n    pass", timeout=30))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(sandbox_children()) == before  # the cancelled run's worker is killed, not left spinning
        assert (await box.arun("print('still fine')")).stdout == "still fine\n"


def test_close_and_context_manager() -> None:
    box = Sandbox(pool_size=2)
    assert box.run("print(1)").ok
    idle = list(box._idle)
    box.close()
    assert all(not w.alive() for w in idle)
    with pytest.raises(RuntimeError):
        box.run("print(1)")


def test_run_from_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with Sandbox(pool_size=1) as box, ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda i: box.run(f"print({i})").stdout, range(8)))
    assert outs == [f"{i}\n" for i in range(8)]


def test_import_is_cheap() -> None:
    assert loaded_by("import agentlab.sandbox", ("asyncio", "subprocess", "ctypes")) == []


def test_seccomp_program_is_well_formed() -> None:
    for arch in ("x86_64", "aarch64"):
        prog = build_filter(arch)
        assert len(prog) % 8 == 0 and 20 < len(prog) // 8 < 256
