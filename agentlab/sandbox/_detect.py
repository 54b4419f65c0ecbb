"""Find the strongest launch mode that works here and verify each layer from the inside.

Nothing is assumed: a probe worker is started in each candidate mode and reports what it can
observe about itself (uid, NoNewPrivs, Seccomp mode, capabilities, rlimits, environment,
namespace ids).  Runs once per process, on first use - never at import time.
"""

from __future__ import annotations

import functools
import os
import time

from ._launch import NOBODY, LaunchConfig, bwrap_path
from ._policy import DEFAULT_ALLOWED_IMPORTS
from ._proc import Worker, decode_report
from ._result import Isolation
from ._seccomp import build_filter, supported_arch

# Variables the sandbox itself may define (none of them comes from the host).
SAFE_ENV = frozenset({"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LC_CTYPE", "PWD"})
LAYERS = (
    "bubblewrap", "seccomp", "no_new_privs", "uid_drop", "rlimits", "empty_env",
    "network_namespace", "pid_namespace",
)  # fmt: skip
_PROBE_MEMORY_MB = 256


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    return build_filter() if supported_arch() else None


def _own_namespace(name: str) -> str | None:
    try:
        return os.readlink(f"/proc/self/ns/{name}")
    except OSError:
        return None


def _candidates() -> list[tuple[str, bool]]:
    """(mode, use_seccomp) pairs, strongest first."""
    modes = []
    if bwrap_path():
        modes.append("bwrap-root" if os.geteuid() == 0 else "bwrap-user")
    modes.append("direct")
    out = [(m, True) for m in modes] if seccomp_program() else []
    return out + [(m, False) for m in modes]


def launch_config(mode: str, use_seccomp: bool, **overrides) -> LaunchConfig:
    params = {
        "memory_mb": _PROBE_MEMORY_MB,
        "output_limit": 1000,
        "allowed": DEFAULT_ALLOWED_IMPORTS,
        "packages": {},
        "tag": "probe",
    } | overrides
    return LaunchConfig(
        mode=mode,
        seccomp=seccomp_program() if use_seccomp else None,
        drop_uid=os.geteuid() == 0,
        bwrap=bwrap_path() if mode != "direct" else None,
        **params,
    )


def _probe(config: LaunchConfig) -> tuple[dict | None, str]:
    worker = Worker(config)
    try:
        ex = worker.exchange(b"probe\n\n", time.monotonic() + 10.0, 1 << 20)
    finally:
        worker.kill()
    return decode_report(ex)


def _assess(mode: str, report: dict, notes: list[str]) -> dict[str, bool]:
    status = report.get("status", {})
    ns = report.get("ns", {})
    cap_eff = status.get("CapEff", "")
    layers = {
        "bubblewrap": mode != "direct",
        "seccomp": status.get("Seccomp") == "2",
        "no_new_privs": status.get("NoNewPrivs") == "1",
        "uid_drop": (
            os.geteuid() == 0
            and report.get("uid") == NOBODY
            and report.get("euid") == NOBODY
            and cap_eff.strip("0") == ""
        ),
        "rlimits": report.get("rlimit_as") == _PROBE_MEMORY_MB << 20,
        "empty_env": set(report.get("env", [])) <= SAFE_ENV,
        "network_namespace": ns.get("net") is not None and ns.get("net") != _own_namespace("net"),
        "pid_namespace": ns.get("pid") is not None and ns.get("pid") != _own_namespace("pid"),
    }
    if os.geteuid() != 0:
        notes.append("not root: code runs under the calling user's uid (cannot switch to nobody)")
    if not layers["seccomp"] and not supported_arch():
        notes.append("no seccomp syscall table for this CPU architecture")
    return layers


@functools.lru_cache(maxsize=1)
def detect() -> tuple[str, bool, Isolation]:
    """(mode, use_seccomp, verified isolation report) for this host."""
    import sys

    notes: list[str] = []
    if not sys.platform.startswith("linux"):
        notes.append(f"platform {sys.platform}: namespaces and seccomp need Linux")
    elif not bwrap_path():
        notes.append("bwrap (bubblewrap) not found: no filesystem, network or pid isolation")
    for mode, use_seccomp in _candidates():
        report, why = _probe(launch_config(mode, use_seccomp))
        if report is not None:
            layers = _assess(mode, report, notes)
            return mode, use_seccomp, Isolation(layers=layers, mode=mode, notes=tuple(notes))
        notes.append(f"{mode}{' with seccomp' if use_seccomp else ''} failed: {why.strip()[:300]}")
    return "unavailable", False, Isolation({name: False for name in LAYERS}, "unavailable", tuple(notes))
