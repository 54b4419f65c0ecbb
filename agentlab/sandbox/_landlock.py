"""Landlock policy for the worker: which paths it may read, where it may write, no TCP.

Landlock (Linux >= 5.13) lets an unprivileged process restrict its *own* file system access (and,
from ABI 4, TCP bind/connect; from ABI 6, abstract unix sockets and signals to processes outside
its domain).  Like the seccomp filter, the policy is decided here, in the trusted parent, and
handed to the worker as plain settings; the worker installs it with three raw syscalls through
``ctypes`` during its start-up (it runs with ``python -I -S`` and cannot import this package or
any binding from site-packages).

Why not a binding from PyPI: ``landlock`` (1.0.0.dev5), ``landlockpy`` (0.2.0) and ``py-landlock``
(0.1.1) are early releases of ctypes wrappers themselves, and none would be importable inside the
worker anyway; the three syscalls and two structs needed fit in a few lines.
"""

from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass

# Syscall numbers are the same on every architecture (added after the tables were unified).
SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446
CREATE_RULESET_VERSION = 1

# File system rights (include/uapi/linux/landlock.h).
EXECUTE = 1 << 0
WRITE_FILE = 1 << 1
READ_FILE = 1 << 2
READ_DIR = 1 << 3
REMOVE_DIR = 1 << 4
REMOVE_FILE = 1 << 5
MAKE_CHAR = 1 << 6
MAKE_DIR = 1 << 7
MAKE_REG = 1 << 8
MAKE_SOCK = 1 << 9
MAKE_FIFO = 1 << 10
MAKE_BLOCK = 1 << 11
MAKE_SYM = 1 << 12
REFER = 1 << 13  # ABI 2: linking/renaming across directories
TRUNCATE = 1 << 14  # ABI 3
IOCTL_DEV = 1 << 15  # ABI 5
# Network rights (ABI 4) and scopes (ABI 6).
NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

# Rights that make sense on a single file (the kernel refuses the others on non-directories).
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV
READ_ONLY = READ_FILE | READ_DIR
# The scratch directory: create, read, write, truncate and delete ordinary files and directories.
# No symlinks, fifos, sockets or devices, no executing, and no REFER (so no hard link or rename can
# bring a file from elsewhere in).
SCRATCH = READ_ONLY | WRITE_FILE | TRUNCATE | MAKE_REG | MAKE_DIR | REMOVE_FILE | REMOVE_DIR
MAX_KNOWN_ABI = 6

# System libraries the interpreter and its extension modules load (libc, libffi, libm, ...).
_SYSTEM_LIBS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/local/lib", "/lib", "/lib64", "/etc/ld.so.cache")
# Devices a computation may open: /dev/null for writing, randomness for reading.
_DEVICES = (("/dev/null", READ_FILE | WRITE_FILE | TRUNCATE), ("/dev/urandom", READ_FILE), ("/dev/zero", READ_FILE))


@functools.lru_cache(maxsize=1)
def host_abi() -> int:
    """The kernel's Landlock ABI version; 0 when Landlock is missing or disabled at boot."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    version = libc.syscall(SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(0, int(version))


def handled_fs(abi: int) -> int:
    """Every file system right the ABI knows: all of them are denied unless a rule grants them."""
    if abi <= 0:
        return 0
    last = {1: MAKE_SYM, 2: REFER, 3: TRUNCATE, 4: TRUNCATE}.get(abi, IOCTL_DEV)
    return (last << 1) - 1


def handled_net(abi: int) -> int:
    return NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0


def scoped(abi: int) -> int:
    return SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0


@dataclass(frozen=True)
class LandlockPolicy:
    """What the worker enforces: ``rules`` are (path as the worker sees it, granted rights)."""

    abi: int
    rules: tuple[tuple[str, int], ...]

    def settings(self) -> str:
        """The worker's line format: ``abi;fs;net;scoped;file_rights`` then rules as ``path\\x1erights``."""
        if self.abi <= 0:
            return ""
        header = f"{self.abi};{handled_fs(self.abi)};{handled_net(self.abi)};{scoped(self.abi)};{FILE_RIGHTS}"
        return "\x1f".join([header, *(f"{path}\x1e{rights}" for path, rights in self.rules)])


def policy(abi: int, read_only: list[str], read_dir_only: list[str], scratch: str | None) -> LandlockPolicy:
    """Read-only on the interpreter, its stdlib and the system libraries; read-write on ``scratch``."""
    if abi <= 0:
        return LandlockPolicy(0, ())
    abi = min(abi, MAX_KNOWN_ABI)
    known = handled_fs(abi)
    rules: list[tuple[str, int]] = [(path, READ_ONLY) for path in (*_SYSTEM_LIBS, *read_only)]
    rules += [(path, READ_DIR) for path in read_dir_only]
    rules += [(path, rights) for path, rights in _DEVICES]
    if scratch:
        rules.append((scratch, SCRATCH))
    unique = dict.fromkeys((os.path.normpath(p), rights & known) for p, rights in rules if p)
    return LandlockPolicy(abi, tuple(unique))
