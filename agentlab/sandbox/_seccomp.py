"""Build the seccomp-BPF program for the "compute" profile.

The filter is assembled here, in the trusted parent, as raw classic-BPF bytes and handed to the
worker, which installs it with ``prctl(PR_SET_SECCOMP)`` after its own start-up is finished (so
``execve`` of the interpreter itself is not affected).  Writing the dozen BPF instructions by hand
avoids a dependency on libseccomp bindings, which are not installable into a virtualenv from
Debian packages.

Policy: everything a single-process Python computation needs is allowed; process creation
(fork/vfork/clone without CLONE_THREAD), program execution, sockets (any family; ``socketpair``
stays, it reaches nothing outside), debugging,
mounting, namespaces, kernel keyrings, BPF, io_uring, perf, module loading and other
administrative calls return ``EPERM``.  A foreign architecture (e.g. the i386 ``int 0x80`` entry
on x86-64) kills the process; x32 syscall numbers are refused.
"""

from __future__ import annotations

import platform
import struct
from typing import Any

# Syscalls refused with EPERM.  Numbers come from the kernel's uapi headers
# (asm/unistd_64.h for x86-64, asm-generic/unistd.h for aarch64).
_DENIED = (
    "execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv", "process_vm_writev",
    "process_madvise", "mount", "umount2", "pivot_root", "chroot", "bpf", "io_uring_setup",
    "io_uring_enter", "io_uring_register", "keyctl", "add_key", "request_key", "unshare", "setns",
    "perf_event_open", "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "userfaultfd", "acct", "swapon", "swapoff", "reboot", "sethostname", "setdomainname", "iopl", "ioperm",
    "quotactl", "quotactl_fd", "name_to_handle_at", "open_by_handle_at", "lookup_dcookie", "fanotify_init",
    "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "pidfd_getfd",
    "kcmp", "personality", "syslog", "vhangup", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "uselib", "modify_ldt", "memfd_secret",
)  # fmt: skip

_X86_64 = {
    "execve": 59, "execveat": 322, "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "socket": 41,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "process_madvise": 440,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "bpf": 321,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 250,
    "add_key": 248, "request_key": 249, "unshare": 272, "setns": 308, "perf_event_open": 298,
    "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "userfaultfd": 323, "acct": 163, "swapon": 167, "swapoff": 168,
    "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
    "quotactl": 179, "quotactl_fd": 443, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "lookup_dcookie": 212, "fanotify_init": 300, "open_tree": 428, "move_mount": 429,
    "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442,
    "pidfd_getfd": 438, "kcmp": 312, "personality": 135, "syslog": 103, "vhangup": 153,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
    "uselib": 134, "modify_ldt": 154, "memfd_secret": 447,
}  # fmt: skip

# aarch64 uses the generic table; it has no fork/vfork/iopl/ioperm/uselib/modify_ldt.
_AARCH64 = {
    "execve": 221, "execveat": 281, "clone": 220, "clone3": 435, "socket": 198, "ptrace": 117,
    "process_vm_readv": 270, "process_vm_writev": 271, "process_madvise": 440, "mount": 40,
    "umount2": 39, "pivot_root": 41, "chroot": 51, "bpf": 280, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "keyctl": 219, "add_key": 217,
    "request_key": 218, "unshare": 97, "setns": 268, "perf_event_open": 241, "kexec_load": 104,
    "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
    "userfaultfd": 282, "acct": 89, "swapon": 224, "swapoff": 225, "reboot": 142,
    "sethostname": 161, "setdomainname": 162, "quotactl": 60, "quotactl_fd": 443,
    "name_to_handle_at": 264, "open_by_handle_at": 265, "lookup_dcookie": 18, "fanotify_init": 262,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "mount_setattr": 442, "pidfd_getfd": 438, "kcmp": 272, "personality": 92,
    "syslog": 116, "vhangup": 58, "settimeofday": 170, "clock_settime": 112, "clock_adjtime": 266,
    "adjtimex": 171, "memfd_secret": 447,
}  # fmt: skip

_ARCHES: dict[str, tuple[int, dict[str, int]]] = {
    "x86_64": (0xC000003E, _X86_64),  # AUDIT_ARCH_X86_64
    "aarch64": (0xC00000B7, _AARCH64),  # AUDIT_ARCH_AARCH64
}

# Classic BPF opcodes.
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06

_RET_KILL_PROCESS = 0x80000000
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_EPERM = 1
_ENOSYS = 38

_CLONE_THREAD = 0x00010000
# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET: never allowed, even for threads.
_CLONE_NAMESPACES = 0x7E020000
_X32_SYSCALL_BIT = 0x40000000

# Offsets into struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];} (little endian:
# the low 32 bits of args[0] are at offset 16).
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16


def supported_arch() -> str | None:
    """The machine name if we have a syscall table for it, else None."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if machine in _ARCHES else None


def build_filter(arch: str | None = None) -> bytes:
    """Return the compute-profile filter as packed ``struct sock_filter`` entries."""
    arch = arch or supported_arch()
    if arch not in _ARCHES:
        raise ValueError(f"no seccomp syscall table for architecture {arch!r}")
    audit_arch, table = _ARCHES[arch]
    denied = [table[name] for name in _DENIED if name in table]

    # Assemble with symbolic jump targets, resolved below.  Each entry:
    # (code, jt_label_or_0, jf_label_or_0, k) or ("label", name).
    prog: list[tuple[Any, ...]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 0, "kill", audit_arch),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch == "x86_64":
        prog.append((_JGE_K, "deny", 0, _X32_SYSCALL_BIT))
    prog += [
        (_JEQ_K, "clone", 0, table["clone"]),
        (_JEQ_K, "deny", 0, table["socket"]),  # every family: a unix socket path can lead to host services
        (_JEQ_K, "enosys", 0, table["clone3"]),  # glibc then falls back to clone(), checked below
    ]
    prog += [(_JEQ_K, "deny", 0, nr) for nr in denied]
    prog += [
        (_RET_K, 0, 0, _RET_ALLOW),
        ("label", "clone"),
        (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JSET_K, "deny", 0, _CLONE_NAMESPACES),
        (_JSET_K, "allow", "deny", _CLONE_THREAD),
        ("label", "allow"),
        (_RET_K, 0, 0, _RET_ALLOW),
        ("label", "deny"),
        (_RET_K, 0, 0, _RET_ERRNO | _EPERM),
        ("label", "enosys"),
        (_RET_K, 0, 0, _RET_ERRNO | _ENOSYS),
        ("label", "kill"),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]

    labels: dict[str, int] = {}
    insns: list[tuple[Any, ...]] = []
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = len(insns)
        else:
            insns.append(item)

    out = bytearray()
    for index, (code, jt, jf, k) in enumerate(insns):
        offsets = []
        for target in (jt, jf):
            if isinstance(target, str):
                delta = labels[target] - index - 1
                if not 0 <= delta <= 255:
                    raise AssertionError("BPF jump out of range")
                offsets.append(delta)
            else:
                offsets.append(target)
        out += struct.pack("<HBBI", code, offsets[0], offsets[1], k)
    return bytes(out)
