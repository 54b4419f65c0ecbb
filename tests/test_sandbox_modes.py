"""The sandbox red-team suites re-run in the other isolation modes, each in a child pytest.

- bubblewrap hidden from ``PATH``: ``Sandbox()`` must pick Landlock only (the laptop without bwrap);
- as an unprivileged user (CI runs as root): no uid drop is possible, Landlock + seccomp + rlimits
  + a private scratch directory must hold the same policy - with bubblewrap and without.

A child run sets ``AGENTLAB_EXPECT_SANDBOX`` so that test_sandbox_landlock.py checks it really ran in
the intended mode.  The unprivileged user is ``agentlab-ci`` (``.ci/run`` creates it; created here
too when running as root, skipped with the reason when that is impossible).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from agentlab.sandbox._landlock import host_abi

ROOT = Path(__file__).resolve().parents[1]
SUITES = ["tests/test_sandbox_redteam.py", "tests/test_sandbox_landlock.py", "tests/test_codeact_redteam.py"]
CI_USER = "agentlab-ci"

pytestmark = pytest.mark.skipif(host_abi() == 0, reason="the kernel has no Landlock: these modes cannot confine")


def _path_without_bwrap() -> str:
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    return os.pathsep.join(d for d in dirs if d and not os.access(os.path.join(d, "bwrap"), os.X_OK))


def _run_suites(python: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    argv = [*python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", *SUITES]
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


def _assert_passed(run: subprocess.CompletedProcess[str]) -> None:
    tail = (run.stdout + run.stderr)[-4000:]
    assert run.returncode == 0, tail
    assert " passed" in run.stdout and " failed" not in run.stdout, tail


def _base_env() -> dict[str, str]:
    keep = ("LANG", "LC_ALL", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = os.environ.get("PATH", os.defpath)
    return env


def test_redteam_with_bubblewrap_hidden_from_path() -> None:
    if not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed: the main run already is the Landlock-only mode")
    env = _base_env() | {"PATH": _path_without_bwrap(), "AGENTLAB_EXPECT_SANDBOX": "landlock,seccomp,-bubblewrap"}
    _assert_passed(_run_suites([sys.executable], env))


def _ensure_user() -> None:
    if subprocess.run(["id", "-u", CI_USER], capture_output=True).returncode == 0:
        return
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    made = subprocess.run([useradd, "--system", "--no-create-home", CI_USER], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot create the unprivileged user {CI_USER}: {made.stderr.strip()}")


def _as_user(argv: list[str], env: dict[str, str] | None = None) -> list[str]:
    # runuser resets parts of the environment; env(1) sets exactly what the child should see.
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    settings = [f"{k}={v}" for k, v in (env or {}).items()]
    return [runuser, "-u", CI_USER, "--", "/usr/bin/env", "-i", *settings, *argv]


def _python_for_user() -> tuple[list[str], str]:
    """An interpreter the user can run, and the extra PYTHONPATH it needs for pytest and friends.

    The project's venv may sit on an interpreter under a directory only root can enter (pyenv in
    /root); then the system's interpreter of the same version runs with the venv's site-packages.
    """
    candidates = [sys.executable]
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates += [p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}") if os.path.exists(p)]
    site = sysconfig.get_paths()["purelib"]
    for python in candidates:
        extra = "" if python == sys.executable else site
        env = {"PATH": os.defpath, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), extra]))}
        probe = subprocess.run(
            _as_user([python, "-c", "import pytest, agentlab.sandbox"], env), capture_output=True, text=True, cwd=ROOT
        )
        if probe.returncode == 0:
            return [python], extra
    pytest.skip(f"no Python interpreter that {CI_USER} may run can import pytest and this checkout")


@pytest.mark.parametrize("bwrap", ["with-bwrap", "bwrap-hidden"])
def test_redteam_as_unprivileged_user(bwrap: str) -> None:
    if sys.platform != "linux" or os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user (the suite itself ran unprivileged already)")
    if bwrap == "with-bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    _ensure_user()
    python, extra = _python_for_user()
    env = _base_env()
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), extra]))
    env["HOME"] = "/tmp"
    expect = ["landlock", "seccomp", "-uid_drop"]
    if bwrap == "bwrap-hidden":
        env["PATH"] = _path_without_bwrap()
        expect.append("-bubblewrap")
    env["AGENTLAB_EXPECT_SANDBOX"] = ",".join(expect)
    _assert_passed(_run_suites(_as_user(python, env), {"PATH": os.defpath}))
