"""Red-team suite: escape and abuse attempts against agentlab.sandbox.

Every test asserts that the *harmful effect* did not happen (no file on the host, no connection
on the host's socket, no secret in the output, no stray process, host still responsive) - not
merely that an exception was raised.  Most run with the AST pre-check switched off so that the
OS layers (namespaces, uid, rlimits, seccomp) are what is being tested.  A test that needs a
specific layer is skipped only when ``Sandbox().isolation`` reports that layer missing.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from agentlab.sandbox import Sandbox

# Obtains the real `os` and builtins without any blocked import statement: the kind of thing a
# determined model would do; the pre-check is off, so only the OS layers stand in the way.
ESCAPE = """
import typing
_sys = typing.sys
_bi = _sys.modules["builtins"]
os = _bi.__import__("os")
"""
TIMEOUT = 3.0
MARGIN = 1.5


def _isolation():
    return Sandbox(pool_size=0).isolation


def need(*layers: str) -> None:
    missing = [name for name in layers if not _isolation().layers.get(name)]
    if missing:
        pytest.skip(f"isolation layer(s) not available on this host: {', '.join(missing)}")


def _leftover(tag: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if tag.encode() in cmdline:
                pids.append(int(entry))
    return pids


def assert_no_leftover(box: Sandbox) -> None:
    deadline = time.monotonic() + 3.0
    while _leftover(box._tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _leftover(box._tag) == [], "sandbox processes survived the run"


def assert_host_responsive() -> None:
    started = time.monotonic()
    subprocess.run([sys.executable, "-S", "-c", ""], check=True, timeout=5)  # PATH may hide tools
    assert time.monotonic() - started < 2.0


@pytest.fixture
def box():
    with Sandbox(timeout=TIMEOUT, precheck=False, pool_size=0) as sandbox:
        yield sandbox


def _variant(name: str) -> Sandbox:
    """The full sandbox, or one with a single layer removed, to show each layer holds alone."""
    from agentlab.sandbox._detect import detect, launch_config

    mode, use_seccomp, landlock, _ = detect()
    box = Sandbox(timeout=TIMEOUT, precheck=False, pool_size=0)
    params = {"memory_mb": box.memory_mb, "output_limit": box.output_limit, "allowed": box.allowed_imports}
    params |= {"packages": {}, "tag": box._tag}
    if name == "bwrap-without-seccomp":
        if mode == "direct":
            pytest.skip("bubblewrap not available on this host")
        box._config = launch_config(mode, False, landlock, **params)
    elif name == "seccomp-without-bwrap":
        if not use_seccomp:
            pytest.skip("seccomp not available on this host")
        box._config = launch_config("direct", True, landlock, **params)
    return box


# -- process creation and program execution ---------------------------------------------------------


def test_os_system_and_subprocess_cannot_execute(box: Sandbox, tmp_path: Path) -> None:
    need("seccomp")
    host_marker = tmp_path / "executed"
    code = (
        ESCAPE
        + f"""
try:
    sp = _bi.__import__("subprocess")
except ImportError:  # direct mode as root: the stdlib may be unreadable after the uid drop
    sp = None
for attempt in (
    lambda: os.system("touch /tmp/inner-marker {host_marker}"),
    lambda: sp.run(["/usr/bin/id"], capture_output=True).stdout if sp else "no subprocess module",
    lambda: os.execv("/bin/sh", ["sh", "-c", "touch /tmp/inner-marker"]),
    lambda: os.posix_spawn("/usr/bin/touch", ["touch", "/tmp/inner-marker"], {{}}),
):
    try:
        print("result", attempt())
    except OSError as exc:
        print("blocked", type(exc).__name__)
print("inner-marker", os.path.exists("/tmp/inner-marker"))
"""
    )
    r = box.run(code)
    assert "inner-marker False" in r.stdout, r
    assert "uid=" not in r.stdout
    assert not host_marker.exists()


@pytest.mark.parametrize("variant", ["full", "seccomp-without-bwrap"])
def test_fork_is_refused(variant: str) -> None:
    need("seccomp")
    with _variant(variant) as box:
        r = box.run(ESCAPE + "pid = os.fork()\nprint('CHILD' if pid == 0 else 'PARENT')")
        assert "CHILD" not in r.stdout and "PARENT" not in r.stdout
        assert r.error == "PermissionError: [Errno 1] Operation not permitted"
        assert_no_leftover(box)


@pytest.mark.parametrize("variant", ["full", "bwrap-without-seccomp", "seccomp-without-bwrap"])
def test_fork_bomb_is_contained(variant: str) -> None:
    with _variant(variant) as box:
        code = ESCAPE + "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
        started = time.monotonic()
        r = box.run(code, timeout=2.0)
        assert time.monotonic() - started < 2.0 + MARGIN
        assert not r.ok
        assert_no_leftover(box)
    assert_host_responsive()


def test_ctypes_raw_syscalls_are_refused(box: Sandbox) -> None:
    need("seccomp")
    if platform.machine() != "x86_64":
        pytest.skip("raw syscall numbers below are for x86_64")
    code = (
        ESCAPE
        + """
ct = _bi.__import__("ctypes")
libc = ct.CDLL(None, use_errno=True)
pid = libc.syscall(57)  # fork
if pid == 0:
    libc._exit(0)
print("fork", pid)
print("vfork", libc.syscall(58))
print("clone", libc.syscall(56, 17, 0, 0, 0, 0))  # SIGCHLD, i.e. a plain fork
print("unshare", libc.unshare(0x10000000))  # CLONE_NEWUSER
print("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
print("ptrace", libc.ptrace(16, 1, 0, 0))  # PTRACE_ATTACH to pid 1
print("setuid", libc.setuid(0))
print("socket", libc.socket(2, 1, 0))  # AF_INET
print("execv", libc.execv(b"/bin/sh", (ct.c_char_p * 2)(b"sh", None)))
print("still here")
"""
    )
    r = box.run(code)
    assert r.ok, r
    for name in ("fork", "vfork", "clone", "unshare", "mount", "ptrace", "setuid", "socket", "execv"):
        assert f"{name} -1\n" in r.stdout
    assert "still here" in r.stdout


def test_thread_bomb_is_bounded(box: Sandbox) -> None:
    code = (
        ESCAPE
        + """
_thread = _bi.__import__("_thread")
time = _bi.__import__("time")
n = 0
try:
    while True:
        _thread.start_new_thread(time.sleep, (60,))
        n += 1
except Exception as exc:
    print("stopped after", n, type(exc).__name__)
"""
    )
    started = time.monotonic()
    r = box.run(code)
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert "stopped after" in r.stdout or r.timed_out
    assert_no_leftover(box)
    assert_host_responsive()


# -- file system ------------------------------------------------------------------------------------


def test_cannot_read_host_secrets(box: Sandbox) -> None:
    need("bubblewrap")
    project = Path(__file__).resolve().parents[1]
    host_root = set(os.listdir("/root")) if os.access("/root", os.R_OK) else set()
    code = (
        ESCAPE
        + f"""
for path in ("/etc/shadow", "/etc/passwd", "/etc/hostname", "{project}/pyproject.toml", "/root/.bashrc",
             "/root/.ssh/id_rsa", "/proc/1/environ"):
    try:
        print(path, open(path).read()[:200])
    except OSError as exc:
        print(path, "->", type(exc).__name__)
try:
    print("ROOT", sorted(os.listdir("/root")))
except OSError:  # Landlock: not even the bind-mount skeleton can be listed; or no /root at all
    print("ROOT", [])
print("WORK", os.path.exists("{project}"), os.path.exists("/home"), os.path.exists("/run"))
"""
    )
    r = box.run(code)
    assert r.ok, r
    assert "pyproject.toml ->" in r.stdout and "/etc/shadow ->" in r.stdout and "/etc/passwd ->" in r.stdout
    assert "agentlab" not in r.stdout.replace("agentlab-sandbox", "")
    assert "WORK False False False" in r.stdout
    visible_root = eval(r.stdout.split("ROOT ", 1)[1].splitlines()[0])  # a list of names we printed
    assert set(visible_root) <= {".pyenv"} and not (host_root - {".pyenv"}) & set(visible_root)
    if os.access("/etc/shadow", os.R_OK):
        for line in Path("/etc/shadow").read_text().splitlines():
            assert line not in r.stdout


@pytest.mark.parametrize("variant", ["full", "bwrap-without-seccomp", "seccomp-without-bwrap"])
def test_cannot_write_outside_the_work_dir(variant: str, tmp_path: Path) -> None:
    stdlib = os.path.dirname(os.__file__)
    targets = [tmp_path / "escape.txt", Path(stdlib) / "agentlab_evil.py", Path("/usr/agentlab_evil.txt")]
    targets.append(Path("/etc/agentlab_evil.txt"))
    code = (
        ESCAPE
        + f"""
for path in {[str(t) for t in targets]!r} + ["/agentlab_evil.txt"]:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
with open("scratch.txt", "w") as fh:  # the work dir itself is writable
    fh.write("ok")
print("scratch", open("scratch.txt").read())
"""
    )
    try:
        with _variant(variant) as box:
            r = box.run(code)
        assert r.ok, r
        assert "scratch ok" in r.stdout
        for target in targets:
            assert not target.exists(), f"{target} was written on the host"
    finally:
        for target in targets[1:]:
            target.unlink(missing_ok=True)


def test_disk_and_file_size_limits(box: Sandbox) -> None:
    code = (
        ESCAPE
        + """
try:
    with open("big.bin", "wb") as fh:
        for _ in range(1000):
            fh.write(b"x" * (1 << 20))
except OSError as exc:
    print("limited", exc.errno)
"""
    )
    r = box.run(code)
    assert "limited" in r.stdout  # EFBIG from RLIMIT_FSIZE or ENOSPC from the capped tmpfs
    assert_host_responsive()


# -- network ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["full", "bwrap-without-seccomp", "seccomp-without-bwrap"])
def test_no_network_to_host_loopback(variant: str) -> None:
    if variant == "full":
        need("network_namespace", "seccomp")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(5)
        udp.bind(("127.0.0.1", 0))
        tport, uport = tcp.getsockname()[1], udp.getsockname()[1]
        code = (
            ESCAPE
            + f"""
try:
    socket = _bi.__import__("socket")
except ImportError:  # direct mode: the stdlib may be unreadable after the uid drop - use ctypes
    ct = _sys.modules["ctypes"]
    libc = ct.CDLL(None, use_errno=True)
    fd = libc.socket(2, 1, 0)
    addr = (2).to_bytes(2, "little") + ({tport}).to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(8)
    print("raw socket", fd, "connect", libc.connect(fd, addr, 16) if fd >= 0 else None)
    if fd >= 0 and libc.connect(fd, addr, 16) == 0:
        print("CONNECTED")
else:
    try:
        c = socket.create_connection(("127.0.0.1", {tport}), timeout=1)
        c.sendall(b"PWNED")
        print("CONNECTED")
    except OSError as exc:
        print("tcp refused", type(exc).__name__)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"PWNED", ("127.0.0.1", {uport}))
        print("SENT")
    except OSError as exc:
        print("udp refused", type(exc).__name__)
"""
        )
        with _variant(variant) as box:
            r = box.run(code)
        assert "CONNECTED" not in r.stdout
        tcp.settimeout(0.5)
        with pytest.raises(TimeoutError):
            tcp.accept()
        udp.settimeout(0.5)
        with pytest.raises(TimeoutError):
            udp.recvfrom(100)
    finally:
        tcp.close()
        udp.close()


def test_host_unix_socket_not_reachable(box: Sandbox, tmp_path: Path) -> None:
    need("bubblewrap")
    path = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(str(path))
        server.listen(1)
        code = (
            ESCAPE
            + f"""
socket = _bi.__import__("socket")
try:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect({str(path)!r})
    print("CONNECTED")
except OSError as exc:
    print("refused", type(exc).__name__)
"""
        )
        r = box.run(code)
        assert "CONNECTED" not in r.stdout
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


# -- environment, processes, privileges -------------------------------------------------------------


@pytest.mark.parametrize("variant", ["full", "bwrap-without-seccomp", "seccomp-without-bwrap"])
def test_host_environment_is_not_visible(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENTLAB_SANDBOX_SECRET", secret)
    code = (
        ESCAPE
        + """
print(dict(os.environ))
for pid in ["self", "1"] + [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        print(pid, open(f"/proc/{pid}/environ").read())
    except OSError as exc:
        print(pid, type(exc).__name__)
"""
    )
    with _variant(variant) as box:
        r = box.run(code)
    assert "AGENTLAB_SANDBOX_SECRET" not in r.stdout + r.stderr
    assert secret not in r.stdout + r.stderr
    assert "dict" not in r.stderr  # the code ran


def test_format_string_attribute_walk_finds_no_secret(box: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = f"s3cret-{uuid.uuid4().hex}"
    monkeypatch.setenv("AGENTLAB_FORMAT_SECRET", secret)
    code = "import random\nprint('{0.__init__.__globals__[_os].environ}'.format(random.Random()))"
    r = box.run(code)
    assert r.ok, r  # the walk itself works in Python - the environment is simply empty
    assert secret not in r.stdout and "AGENTLAB_FORMAT_SECRET" not in r.stdout
    with Sandbox() as checked:
        blocked = checked.run(code)
    assert not blocked.ok and blocked.error.startswith("PolicyViolation") and secret not in blocked.stdout


def test_frame_walk_to_worker_internals_gains_nothing(box: Sandbox, tmp_path: Path) -> None:
    need("uid_drop", "seccomp")
    code = f"""
def g():
    yield gen.gi_frame.f_back
gen = g()
frame = next(gen)
while frame.f_back is not None:
    frame = frame.f_back
wg = frame.f_globals
os, resource = wg["os"], wg["resource"]
for name, attempt in [
    ("setuid", lambda: os.setuid(0)),
    ("rlimit", lambda: resource.setrlimit(resource.RLIMIT_AS, (-1, -1))),
    ("system", lambda: os.system("touch {tmp_path}/frame-escape")),
    ("kill1", lambda: os.kill(1, 9)),
]:
    try:
        print(name, "->", attempt())
    except (OSError, ValueError) as exc:
        print(name, "blocked", type(exc).__name__)
print("uid", os.getuid(), os.geteuid())
"""
    r = box.run(code)
    assert r.ok, r
    assert "setuid blocked" in r.stdout and "rlimit blocked" in r.stdout and "kill1 blocked" in r.stdout
    assert "uid 65534 65534" in r.stdout
    assert not (tmp_path / "frame-escape").exists()


def test_subclasses_walk_gains_nothing(box: Sandbox, tmp_path: Path) -> None:
    need("seccomp")
    code = f"""
for cls in ().__class__.__base__.__subclasses__():
    if cls.__name__ == "_wrap_close":
        system = cls.__init__.__globals__["system"]
        print("status", system("touch {tmp_path}/subclass-escape"))
        break
"""
    r = box.run(code)
    assert "status" in r.stdout, r  # the walk reaches os.system; running a program still fails
    assert not (tmp_path / "subclass-escape").exists()


def test_import_tricks_are_refused(box: Sandbox, tmp_path: Path) -> None:
    code = f"""
for attempt in (
    "__import__('os').system('touch {tmp_path}/imp')",
    "__builtins__['__import__']('os').system('touch {tmp_path}/imp')",
    "import importlib; importlib.import_module('os').system('touch {tmp_path}/imp')",
    "import builtins; builtins.__import__('os')",
    "from . import os",
):
    try:
        exec(attempt, {{}})
        print("ALLOWED", attempt)
    except ImportError as exc:
        print("refused", exc.msg[:40] if hasattr(exc, "msg") else exc)
"""
    r = box.run(code)
    assert r.ok, r
    assert "ALLOWED" not in r.stdout and r.stdout.count("refused") == 5
    assert not (tmp_path / "imp").exists()


def test_unpickling_is_contained_and_parent_never_unpickles(box: Sandbox, tmp_path: Path) -> None:
    need("seccomp")
    host_marker = tmp_path / "unpickled"
    code = (
        ESCAPE
        + f"""
# The gadget runs with the *real* builtins (an escape we grant on purpose), so only the OS
# layers can stop it: unpickling calls os.system, the marshalled code calls os.fork.
gadget = '''
import pickle, marshal
payload = b"cos\\\\nsystem\\\\n(S'touch /tmp/inner-pickle {host_marker}'\\\\ntR."
print("loads", pickle.loads(payload))
code_obj = marshal.loads(marshal.dumps(compile("import os; print('forked', os.fork())", "m", "exec")))
try:
    exec(code_obj, {{}})
except OSError as exc:
    print("marshal blocked", exc)
'''
try:
    exec(gadget, {{"__builtins__": _bi}})
except ImportError:  # direct mode as root: pickle may be unreadable after the uid drop
    print("no pickle")
print("inner", os.path.exists("/tmp/inner-pickle"))

class Evil:
    def __reduce__(self):
        return (os.system, ("touch {host_marker}",))

def solution():
    return Evil()
"""
    )
    r = box.run(code, call="solution")
    assert r.ok, r
    if "no pickle" not in r.stdout:
        assert "loads " in r.stdout and "loads 0\n" not in r.stdout  # system() could not run sh
        assert "marshal blocked" in r.stdout
    assert "inner False" in r.stdout and "forked" not in r.stdout
    assert isinstance(r.value, str) and "Evil object" in r.value  # a repr string, never an object
    assert not host_marker.exists()


@pytest.mark.parametrize("use_landlock", [True, False], ids=["landlock", "no-landlock"])
def test_privileges_are_dropped_inside(use_landlock: bool) -> None:
    need("uid_drop", "no_new_privs", "seccomp")
    code = (
        ESCAPE
        + """
print(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
try:
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
except PermissionError:
    print("proc refused")
else:
    print({k: status[k].strip() for k in ("CapEff", "CapPrm", "CapBnd", "NoNewPrivs", "Seccomp")})
"""
    )
    with Sandbox(timeout=TIMEOUT, precheck=False, pool_size=0, use_landlock=use_landlock, allow_weak=True) as box:
        r = box.run(code)
    assert r.ok, r
    assert "65534 65534 65534 []" in r.stdout
    if use_landlock and box.isolation.layers["landlock"]:
        assert "proc refused" in r.stdout  # Landlock hides /proc altogether
        return
    for field in ("'CapEff': '0000000000000000'", "'CapPrm': '0000000000000000'",
                  "'CapBnd': '0000000000000000'", "'NoNewPrivs': '1'", "'Seccomp': '2'"):  # fmt: skip
        assert field in r.stdout


def test_host_processes_invisible_and_unkillable(box: Sandbox) -> None:
    need("pid_namespace")
    with Sandbox(pool_size=1) as other:
        other.run("pass")  # leaves one pre-spawned worker idle (also uid 65534)
        idle = list(other._idle)
        code = (
            ESCAPE
            + """
signal = _bi.__import__("signal")
try:
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    cmdlines = [open(f"/proc/{p}/cmdline", "rb").read() for p in pids]
except PermissionError:  # Landlock hides /proc altogether
    pids, cmdlines = [], []
print(len(pids), b"pytest" in b"".join(cmdlines))
try:
    os.kill(-1, signal.SIGKILL)
except OSError as exc:
    print("kill -1:", type(exc).__name__)
"""
        )
        r = box.run(code)
        assert "False" in r.stdout.splitlines()[0]
        assert int(r.stdout.split()[0]) <= 5
        assert idle and all(w.alive() for w in idle)
        assert other.run("print('alive')").stdout == "alive\n"


# -- resource limits --------------------------------------------------------------------------------


def test_infinite_loop_is_killed_at_the_deadline(box: Sandbox) -> None:
    started = time.monotonic()
    r = box.run("while True:\n    pass", timeout=1.0)
    elapsed = time.monotonic() - started
    assert r.timed_out and not r.ok and "time limit of 1 s" in r.error
    assert elapsed < 1.0 + MARGIN
    assert_no_leftover(box)


def test_timeout_keeps_partial_output(box: Sandbox) -> None:
    r = box.run("print('before', flush=True)\nwhile True:\n    pass", timeout=1.0)
    assert r.timed_out and r.stdout.startswith("before")


def test_sleeping_code_is_killed_too(box: Sandbox) -> None:
    started = time.monotonic()
    r = box.run(ESCAPE + "_bi.__import__('time').sleep(60)", timeout=1.0)
    assert r.timed_out and time.monotonic() - started < 1.0 + MARGIN
    assert_no_leftover(box)


@pytest.mark.parametrize(
    "code",
    ["x = bytearray(10 ** 10)", "blocks = []\nwhile True:\n    blocks.append(bytearray(10 ** 7))"],
    ids=["one-shot", "gradual"],
)
def test_memory_bomb_ends_cleanly(box: Sandbox, code: str) -> None:
    need("rlimits")
    started = time.monotonic()
    r = box.run(code)
    assert not r.ok and not r.timed_out
    assert r.error == "MemoryError: memory limit of 256 MB exceeded"
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert_host_responsive()


def test_huge_output_is_truncated(box: Sandbox) -> None:
    started = time.monotonic()
    r = box.run("for _ in range(2000):\n    print('y' * 10_000)")
    assert r.ok
    assert len(r.stdout) <= box.output_limit + 40
    assert r.stdout.endswith(f"…[truncated {2000 * 10_001 - box.output_limit} chars]")
    assert time.monotonic() - started < TIMEOUT + MARGIN


def test_flooding_the_result_pipe_is_cut_off(box: Sandbox) -> None:
    code = (
        ESCAPE
        + """
stat = _bi.__import__("stat")
for fd in range(3, 20):
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            while True:
                os.write(fd, b"A" * 65536)
    except OSError:
        pass
"""
    )
    started = time.monotonic()
    r = box.run(code)
    assert not r.ok and "more output than the protocol allows" in r.error
    assert len(r.stdout) <= box.output_limit + 40
    assert time.monotonic() - started < TIMEOUT + MARGIN
    assert_no_leftover(box)


def test_deep_recursion_is_an_error_not_a_hang(box: Sandbox) -> None:
    r = box.run("def f(n):\n    return f(n + 1)\nf(0)")
    assert not r.ok and r.error.startswith("RecursionError")
    assert "more frames" in r.stderr and len(r.stderr) < 5000


# -- no state survives between runs -----------------------------------------------------------------


@pytest.mark.parametrize("pool_size", [0, 2])
def test_no_state_leaks_between_runs(pool_size: int) -> None:
    with Sandbox(precheck=False, pool_size=pool_size, timeout=TIMEOUT) as box:
        first = box.run(
            ESCAPE
            + """
import json
json.LEAKED = True
_sys.modules["leak_marker"] = object()
try:
    open("/tmp/state.txt", "w").write("leak")
except PermissionError:  # Landlock without bubblewrap: the host's /tmp is not the scratch dir
    pass
open("state2.txt", "w").write("leak")
LEAK_GLOBAL = 1
print("written")
"""
        )
        assert first.stdout == "written\n", first
        second = box.run(
            ESCAPE
            + """
import json
print(hasattr(json, "LEAKED"), "leak_marker" in _sys.modules, os.path.exists("/tmp/state.txt"),
      os.path.exists("state2.txt"), "LEAK_GLOBAL" in globals())
"""
        )
    assert second.stdout == "False False False False False\n", second
