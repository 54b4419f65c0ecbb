"""Find the strongest launch mode that works here and verify each layer from the inside.

Nothing is assumed: a probe worker is started in each candidate mode and reports what it can
observe about itself (uid, NoNewPrivs, Seccomp mode, capabilities, rlimits, environment,
namespace ids).  Runs once per process, on first use - never at import time.
"""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from ._landlock import MAX_KNOWN_ABI, host_abi
from ._launch import NOBODY, LaunchConfig, bwrap_path
from ._policy import DEFAULT_ALLOWED_IMPORTS
from ._proc import Worker, decode_report
from ._result import Isolation
from ._seccomp import build_filter, supported_arch

# Variables the sandbox itself may define (none of them comes from the host).
SAFE_ENV = frozenset({"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LC_CTYPE", "PWD"})
LAYERS = (
    "bubblewrap", "landlock", "seccomp", "no_new_privs", "uid_drop", "rlimits", "empty_env",
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


def landlock_abi(use_landlock: bool = True) -> int:
    """The ABI the worker will enforce: the kernel's, capped at the newest one this code knows."""
    return min(host_abi(), MAX_KNOWN_ABI) if use_landlock else 0


def _candidates(use_bwrap: bool = True, use_landlock: bool = True) -> list[tuple[str, bool, int]]:
    """(mode, use_seccomp, landlock ABI) triples, strongest first."""
    modes = []
    if use_bwrap and bwrap_path():
        modes.append("bwrap-root" if os.geteuid() == 0 else "bwrap-user")
    modes.append("direct")
    abi = landlock_abi(use_landlock)
    seccomp = [True, False] if seccomp_program() else [False]
    return [(m, sc, ll) for sc in seccomp for m in modes for ll in ([abi, 0] if abi else [0])]


def launch_config(
    mode: str,
    use_seccomp: bool,
    landlock: int = 0,
    *,
    memory_mb: int = _PROBE_MEMORY_MB,
    output_limit: int = 1000,
    allowed: frozenset[str] = DEFAULT_ALLOWED_IMPORTS,
    packages: dict[str, str] | None = None,
    tag: str = "probe",
) -> LaunchConfig:
    """The worker's launch settings for a mode and layers; the defaults are the probe's."""
    return LaunchConfig(
        mode=mode,
        seccomp=seccomp_program() if use_seccomp else None,
        drop_uid=os.geteuid() == 0,
        bwrap=bwrap_path() if mode != "direct" else None,
        landlock_abi=landlock,
        memory_mb=memory_mb,
        output_limit=output_limit,
        allowed=allowed,
        packages=packages if packages is not None else {},
        tag=tag,
    )


def _probe(config: LaunchConfig) -> tuple[dict[str, Any] | None, str]:
    worker = Worker(config)
    try:
        ex = worker.exchange(b"probe\n\n", time.monotonic() + 10.0, 1 << 20)
    finally:
        worker.kill()
    return decode_report(ex)


def _assess(mode: str, report: dict[str, Any], notes: list[str]) -> dict[str, bool]:
    status = report.get("status", {})
    ns = report.get("ns", {})
    cap_eff = status.get("CapEff", "")
    landlock = report.get("landlock")
    if not isinstance(landlock, dict):
        landlock = {}
    layers = {
        "bubblewrap": mode != "direct",
        "landlock": landlock.get("abi", 0) > 0 and landlock.get("fs_confined") is True,
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
    if not layers["landlock"]:
        notes.append(_landlock_note())
    if not layers["seccomp"] and not supported_arch():
        notes.append("no seccomp syscall table for this CPU architecture")
    return layers


def _landlock_note() -> str:
    if host_abi() <= 0:
        return "Landlock not available (needs Linux >= 5.13 with 'landlock' in the lsm= boot parameter)"
    return "Landlock switched off (use_landlock=False) or refused by the kernel"


@functools.lru_cache(maxsize=8)
def detect(use_bwrap: bool = True, use_landlock: bool = True) -> tuple[str, bool, int, Isolation]:
    """(mode, use_seccomp, landlock ABI, verified isolation report) for this host and these choices."""
    import sys

    notes: list[str] = []
    if not sys.platform.startswith("linux"):
        notes.append(f"platform {sys.platform}: namespaces, Landlock and seccomp need Linux")
    elif not use_bwrap:
        notes.append("bubblewrap switched off (use_bwrap=False): no mount, network or pid namespaces")
    elif not bwrap_path():
        notes.append("bwrap (bubblewrap) not found on PATH: no mount, network or pid namespaces")
    for mode, use_seccomp, abi in _candidates(use_bwrap, use_landlock):
        report, why = _probe(launch_config(mode, use_seccomp, abi))
        if report is not None:
            layers = _assess(mode, report, notes)
            used = abi if layers["landlock"] else 0
            return mode, use_seccomp, used, Isolation(layers, mode, tuple(notes), landlock_abi=used)
        extras = (" with seccomp" if use_seccomp else "") + (f" with Landlock ABI {abi}" if abi else "")
        notes.append(f"{mode}{extras} failed: {why.strip()[:300]}")
    unavailable = Isolation({name: False for name in LAYERS}, "unavailable", tuple(notes))
    return "unavailable", False, 0, unavailable
