"""How a worker process is started on this host: bubblewrap command line, uid, limits.

Three launch modes, chosen once per process by probing (see :func:`detect`):

``bwrap-root``
    We are root: bwrap runs privileged (no user namespace needed) with fresh mount, pid, net,
    ipc, uts and cgroup namespaces and only CAP_SETUID/SETGID/SETPCAP kept, which the worker
    uses during its trusted start-up to empty the bounding set and become uid/gid 65534 for
    real (on the host, not just inside a user namespace).  Sources such as the interpreter under
    ``/root/.pyenv`` stay readable for bwrap, which would not be the case as ``nobody``.
``bwrap-user``
    Not root: bwrap creates a user namespace as well; the code runs as the calling user's uid.
``direct``
    No usable bwrap: a plain child process in its own session, with rlimits, seccomp, empty
    environment and (as root) the uid drop - but it sees the host filesystem and network
    namespace.  Reported as degraded.

In every mode the worker also restricts itself with Landlock where the kernel has it (see
``_landlock.py``): the file system layer that still holds without bubblewrap and without root.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import sysconfig
from dataclasses import dataclass

from ._landlock import LandlockPolicy
from ._landlock import policy as landlock_policy

NOBODY = 65534
WORKDIR = "/tmp"
SITE_DIR = "/opt/agentlab-site"
FSIZE_BYTES = 16 << 20
TMPFS_BYTES = 32 << 20
NOFILE = 64
NPROC = 64
ARGV_TAG = "agentlab-sandbox-worker"

# Packages that an extra import needs on its path without being importable by the model.
_DEPENDENCIES = {"sympy": ("mpmath",)}


@dataclass(frozen=True)
class Interpreter:
    """The CPython that runs the worker and the few paths it needs to start."""

    executable: str
    paths: tuple[str, ...]  # files/dirs to bind read-only at the same location
    needed: tuple[str, ...] = ()  # every file/dir it reads, /usr ones included (the Landlock rules)


@functools.lru_cache(maxsize=1)
def interpreter() -> Interpreter:
    """The base interpreter of this (virtual) environment: binary, libpython, stdlib only."""
    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    paths = [exe, os.path.dirname(os.__file__)]  # the stdlib (of the base install, not the venv)
    libdir = sysconfig.get_config_var("LIBDIR")
    ldlib = sysconfig.get_config_var("INSTSONAME")
    if libdir and ldlib and os.path.exists(os.path.join(libdir, ldlib)):
        paths.append(os.path.realpath(os.path.join(libdir, ldlib)))
        paths.append(os.path.join(libdir, ldlib))
    dynload = sysconfig.get_config_var("DESTSHARED")
    if dynload:
        paths.append(dynload)
    needed = sorted({os.path.normpath(p) for p in paths if p and os.path.exists(p)})
    # /usr is bound wholesale anyway; only add what lives elsewhere, once, outermost first.
    unique: list[str] = []
    for path in needed:
        if path.startswith("/usr/") or any(path.startswith(u + "/") for u in unique):
            continue
        unique.append(path)
    return Interpreter(exe, tuple(unique), tuple(needed))


@functools.lru_cache(maxsize=1)
def worker_source() -> str:
    with open(os.path.join(os.path.dirname(__file__), "_worker.py"), encoding="utf-8") as fh:
        return fh.read()


def find_packages(names: tuple[str, ...]) -> dict[str, str]:
    """Map import name -> file system path of each installed extra package (and its deps)."""
    import importlib.util

    found: dict[str, str] = {}
    wanted = list(names) + [dep for n in names for dep in _DEPENDENCIES.get(n, ())]
    for name in wanted:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            path = next(iter(spec.submodule_search_locations))
        elif spec.origin and os.path.exists(spec.origin):
            path = spec.origin
        else:
            continue
        found[name] = path
        libs = os.path.join(os.path.dirname(path), f"{name}.libs")  # auditwheel-vendored .so files
        if os.path.isdir(libs):
            found[f"{name}.libs"] = libs
    return found


@dataclass
class LaunchConfig:
    """Everything needed to spawn one worker; immutable per Sandbox."""

    mode: str  # "bwrap-root" | "bwrap-user" | "direct"
    memory_mb: int
    output_limit: int
    allowed: frozenset[str]
    packages: dict[str, str]
    seccomp: bytes | None
    drop_uid: bool
    tag: str
    bwrap: str | None = None
    landlock_abi: int = 0  # 0: no Landlock layer in the worker

    def worker_config(self, workdir: str | None) -> str:
        """Start-up settings in the worker's line format (it avoids importing json)."""
        values: dict[str, object] = {
            "drop_uid": int(self.drop_uid),
            "preimport": int(self.mode == "direct" and self.drop_uid),
            "uid": NOBODY,
            "gid": NOBODY,
            "mem": self.memory_mb << 20,
            "fsize": FSIZE_BYTES,
            "nofile": NOFILE,
            "nproc": NPROC,
            "seccomp": self.seccomp.hex() if self.seccomp else "",
            "output_limit": self.output_limit,
            "allowed": "\x1f".join(sorted(self.allowed)),
            "workdir": workdir or "",
            "paths": "\x1f".join(self.sys_path_extra()),
            "landlock": self.landlock_policy(workdir).settings(),
        }
        for value in values.values():
            if any(c in str(value) for c in "\n\x00"):
                raise ValueError(f"unsupported character in sandbox setting {value!r}")
        return "\n".join(f"{key}={value}" for key, value in values.items())

    def python_argv(self, workdir: str | None) -> list[str]:
        interp = interpreter()
        return [
            interp.executable, "-I", "-S", "-B", "-X", "utf8", "-c", worker_source(),
            f"{ARGV_TAG}:{self.tag}", self.worker_config(workdir),
        ]  # fmt: skip

    def env(self) -> dict[str, str]:
        # Nothing from the host: only what makes numerical libraries behave under rlimits.
        return {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def bwrap_argv(self) -> list[str]:
        assert self.bwrap is not None
        argv = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        if self.mode == "bwrap-root":
            argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
            argv += ["--unshare-cgroup-try", "--cap-add", "CAP_SETUID,CAP_SETGID,CAP_SETPCAP"]
        else:
            argv += ["--unshare-all", "--unshare-user", "--disable-userns"]
            argv += ["--uid", str(NOBODY), "--gid", str(NOBODY)]
        argv += ["--hostname", "sandbox"]
        for name, value in self.env().items():
            argv += ["--setenv", name, value]
        # Filesystem: an empty read-only root with /usr, the interpreter and a small tmpfs.
        argv += ["--ro-bind", "/usr", "/usr"]
        for link in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
            path = f"/{link}"
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        if os.path.exists("/etc/ld.so.cache"):
            argv += ["--ro-bind", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        targets = [(path, path) for path in interpreter().paths]
        for name, path in self.packages.items():
            targets.append((path, f"{SITE_DIR}/{name}" + (".py" if path.endswith(".py") else "")))
        # Parent dirs would otherwise copy the host's modes (e.g. /root is 0700, which would
        # lock uid 65534 out of the stdlib); create them traversable, containing nothing else.
        made: set[str] = set()
        for _, target in targets:
            parent = os.path.dirname(target)
            chain = []
            while parent not in ("/", "") and parent not in made and not parent.startswith("/usr"):
                chain.append(parent)
                parent = os.path.dirname(parent)
            for directory in reversed(chain):
                argv += ["--perms", "0755", "--dir", directory]
                made.add(directory)
        for source, target in targets:
            argv += ["--ro-bind", source, target]
        argv += ["--dev", "/dev", "--proc", "/proc"]
        argv += ["--size", str(TMPFS_BYTES), "--perms", "1777", "--tmpfs", WORKDIR]
        argv += ["--remount-ro", "/", "--chdir", WORKDIR, "--"]
        return argv

    def landlock_policy(self, workdir: str | None) -> LandlockPolicy:
        """Read-only: interpreter, stdlib, system libraries, extra packages; read-write: the work dir."""
        read_only = list(interpreter().needed)
        read_dir_only: list[str] = []
        if self.mode == "direct":
            read_only += self.packages.values()
            # The import system lists the directory on sys.path to find a package in it; listing
            # names is all it gets there, files stay unreadable outside the packages themselves.
            read_dir_only += self.sys_path_extra()
        elif self.packages:
            read_only.append(SITE_DIR)
        return landlock_policy(self.landlock_abi, read_only, read_dir_only, workdir)

    def sys_path_extra(self) -> list[str]:
        if not self.packages:
            return []
        if self.mode == "direct":
            return sorted({os.path.dirname(p) for p in self.packages.values()})
        return [SITE_DIR]


def bwrap_path() -> str | None:
    """bwrap as found on ``PATH`` (so removing it from ``PATH`` really switches bubblewrap off)."""
    if not sys.platform.startswith("linux"):
        return None
    return shutil.which("bwrap")
