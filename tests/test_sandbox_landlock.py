"""Red-team tests for the Landlock layer and the strict default of agentlab.sandbox.

Each attack runs in every isolation mode this host offers: bubblewrap + Landlock (``Sandbox()``),
Landlock only (``use_bwrap=False``: what a laptop without bubblewrap gets) and Landlock alone
(no bubblewrap and no seccomp, to show the file system rules hold by themselves).  As in
test_sandbox_redteam.py, the pre-check is off and every test asserts that the harmful effect did
not happen (a secret not in the output, a host file not written), not merely that an error came.
test_sandbox_modes.py re-runs this module with bubblewrap hidden from PATH and as a non-root user.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlab.sandbox import Sandbox, SandboxUnavailable

ESCAPE = """
import typing
_sys = typing.sys
_bi = _sys.modules["builtins"]
os = _bi.__import__("os")
"""
TIMEOUT = 5.0
MODES = ["default", "landlock-only", "landlock-alone"]


def _sandbox(mode: str) -> Sandbox:
    box = Sandbox(timeout=TIMEOUT, precheck=False, pool_size=0, use_bwrap=mode == "default")
    if not box.isolation.layers.get("landlock"):
        pytest.skip(f"Landlock not active on this host: {box.isolation}")
    if mode == "landlock-alone":
        from agentlab.sandbox._detect import detect, launch_config

        _, _, abi, _ = detect(False, True)
        params = {"memory_mb": box.memory_mb, "output_limit": box.output_limit, "allowed": box.allowed_imports}
        box._config = launch_config("direct", False, abi, packages={}, tag=box._tag, **params)
    return box


@pytest.fixture(params=MODES)
def box(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    with _sandbox(request.param) as sandbox:
        yield sandbox


def _host_dirs() -> list[Path]:
    """World-writable or private places on the host where a secret or an escape could live."""
    dirs = [Path("/var/tmp"), Path("/tmp"), Path.home()]
    return [d for d in dirs if os.access(d, os.W_OK)]


@pytest.fixture
def secrets() -> Iterator[dict[str, str]]:
    """Host files with a random secret each (path -> secret), readable by anyone."""
    made = {}
    for directory in _host_dirs():
        path = directory / f"agentlab-landlock-secret-{uuid.uuid4().hex}"
        secret = f"s3cret-{uuid.uuid4().hex}"
        path.write_text(secret)
        path.chmod(0o666)
        made[str(path)] = secret
    yield made
    for path in made:
        Path(path).unlink(missing_ok=True)


def test_isolation_reports_landlock_and_its_abi() -> None:
    from agentlab.sandbox._landlock import host_abi

    iso = Sandbox(pool_size=0).isolation
    if host_abi() == 0:
        assert not iso.layers["landlock"] and iso.landlock_abi == 0
        pytest.skip("the kernel has no Landlock")
    assert iso.layers["landlock"] and iso.landlock_abi >= 1
    assert f"Landlock ABI {iso.landlock_abi}" in str(iso)
    assert iso.filesystem_confined


def test_mode_is_what_the_caller_expects() -> None:
    """test_sandbox_modes.py says which mode its child run must be in (bwrap hidden, non-root)."""
    expected = os.environ.get("AGENTLAB_EXPECT_SANDBOX")
    if not expected:
        pytest.skip("only checked when test_sandbox_modes.py re-runs this module")
    iso = Sandbox(pool_size=0).isolation
    active = {name for name, on in iso.layers.items() if on}
    for layer in expected.split(","):
        if layer.startswith("-"):
            assert layer[1:] not in active, iso
        else:
            assert layer in active, iso


def test_reading_host_files_fails_every_way(box: Sandbox, secrets: dict[str, str]) -> None:
    code = (
        ESCAPE
        + f"""
secrets = {sorted(secrets)!r}
attempts = []
for path in secrets + ["/etc/hostname", "/etc/passwd"]:
    name = os.path.basename(path)
    attempts += [
        ("plain", lambda p=path: open(p).read()),
        ("proc-root", lambda p=path: open("/proc/self/root" + p).read()),
        ("proc-cwd", lambda p=path: open("/proc/self/cwd/../../../../.." + p).read()),
        ("dotdot", lambda p=path: open("../../../../../.." + p).read()),
        ("listdir", lambda p=path: os.listdir(os.path.dirname(p))),
    ]
    def via_o_path(p=path):
        fd = os.open(p, os.O_PATH)  # Landlock does not stop O_PATH itself, only what it leads to
        for how in (lambda: os.read(fd, 100), lambda: open(f"/proc/self/fd/{{fd}}").read(),
                    lambda: os.open(f"/proc/self/fd/{{fd}}", os.O_RDONLY)):
            try:
                return how()
            except OSError:
                pass
        raise PermissionError("all O_PATH routes refused")
    def via_dir_fd(p=path, n=name):
        dfd = os.open(os.path.dirname(p), os.O_PATH | os.O_DIRECTORY)
        return os.read(os.open(n, os.O_RDONLY, dir_fd=dfd), 100)
    def via_symlink(p=path):
        os.symlink(p, "link")
        return open("link").read()
    def via_hard_link(p=path):
        os.link(p, "hard")
        return open("hard").read()
    attempts += [("o_path", via_o_path), ("dir_fd", via_dir_fd), ("symlink", via_symlink),
                 ("hardlink", via_hard_link)]
for label, attempt in attempts:
    try:
        print("GOT", label, attempt())
    except OSError as exc:
        print("refused", label, type(exc).__name__)
print("done")
"""
    )
    r = box.run(code)
    assert r.ok, r
    assert r.stdout.rstrip().endswith("done")
    for path, secret in secrets.items():
        assert secret not in r.stdout and os.path.basename(path) not in r.stdout, r.stdout
    # Listing a directory may succeed where it is the sandbox's own (bubblewrap's /tmp is the scratch).
    assert [line for line in r.stdout.splitlines() if line.startswith("GOT") and "listdir" not in line] == []
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else ""
    if hostname:
        assert hostname not in r.stdout


def test_writing_outside_the_scratch_dir_fails(box: Sandbox, secrets: dict[str, str]) -> None:
    targets = [str(d / f"agentlab-landlock-escape-{uuid.uuid4().hex}") for d in _host_dirs()]
    targets += ["/dev/shm/agentlab-landlock-escape", "/agentlab-landlock-escape"]
    code = (
        ESCAPE
        + f"""
for path in {targets!r}:
    try:
        with open(path, "w") as fh:
            fh.write("pwned")
        print("WROTE", path)
    except OSError as exc:
        print("refused", path, type(exc).__name__)
for path in {sorted(secrets)!r}:  # existing, world-writable host files: overwrite, truncate, delete
    for label, attempt in (("overwrite", lambda: open(path, "w").write("pwned")),
                           ("append", lambda: open(path, "a").write("pwned")),
                           ("truncate", lambda: os.truncate(path, 0)),
                           ("unlink", lambda: os.unlink(path)),
                           ("rename-in", lambda: os.rename(path, "stolen"))):
        try:
            attempt()
            print("CHANGED", label, path)
        except OSError as exc:
            print("refused", label, type(exc).__name__)
open("scratch.txt", "w").write("ok")
for label, attempt in (("rename-out", lambda: os.rename("scratch.txt", {targets[0]!r})),
                       ("link-out", lambda: os.link("scratch.txt", {targets[0]!r})),
                       ("fifo", lambda: os.mkfifo("fifo")),
                       ("symlink", lambda: os.symlink("/", "root"))):
    try:
        attempt()
        print("DONE", label)
    except OSError as exc:
        print("refused", label, type(exc).__name__)
print("scratch", open("scratch.txt").read())
"""
    )
    try:
        r = box.run(code)
        assert r.ok, r
        assert "scratch ok" in r.stdout  # the private scratch directory stays writable
        # The host is what matters (under bubblewrap, "/tmp" is the sandbox's own scratch tmpfs).
        assert "refused fifo PermissionError" in r.stdout and "refused symlink PermissionError" in r.stdout
        for target in targets:
            assert not Path(target).exists(), f"{target} was written on the host"
        for path, secret in secrets.items():
            assert Path(path).read_text() == secret, f"{path} was changed"
    finally:
        for target in targets:
            Path(target).unlink(missing_ok=True)


def test_no_tcp_even_without_seccomp() -> None:
    """Landlock ABI >= 4 refuses TCP connect/bind by itself (seccomp is off in this variant)."""
    box = _sandbox("landlock-alone")
    if box.isolation.landlock_abi < 4:
        pytest.skip(f"Landlock ABI {box.isolation.landlock_abi} has no network rules")
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        code = (
            ESCAPE
            + f"""
ct = _sys.modules["ctypes"]  # raw calls: as nobody, the stdlib's socket module may be unreadable
libc = ct.CDLL(None, use_errno=True)
fd = libc.socket(2, 1, 0)  # AF_INET, SOCK_STREAM
print("socket created" if fd >= 0 else "socket refused")
addr = (2).to_bytes(2, "little") + ({port}).to_bytes(2, "big") + bytes([127, 0, 0, 1]) + bytes(8)
any_port = (2).to_bytes(2, "little") + bytes(2) + bytes([127, 0, 0, 1]) + bytes(8)
for label, args in (("connect", (fd, addr, 16)), ("bind", (fd, any_port, 16))):
    result = getattr(libc, label)(*args)
    print("ALLOWED" if result == 0 else "refused", label, ct.get_errno())
"""
        )
        with box:
            r = box.run(code)
        assert r.ok, r
        assert "socket created" in r.stdout  # seccomp really is off: Landlock is what refuses
        assert "refused connect 13" in r.stdout and "refused bind 13" in r.stdout  # EACCES from Landlock
        server.settimeout(0.5)
        with pytest.raises(TimeoutError):
            server.accept()
    finally:
        server.close()


def test_host_processes_cannot_be_signalled(box: Sandbox) -> None:
    """Same uid (non-root caller) or not: the code cannot kill a process outside its sandbox."""
    sleeper = subprocess.Popen([sys.executable, "-S", "-c", "import time; time.sleep(30)"])
    try:
        code = (
            ESCAPE
            + f"""
try:
    os.kill({sleeper.pid}, 9)
    print("SENT")
except OSError as exc:
    print("refused", type(exc).__name__)
"""
        )
        r = box.run(code)
        assert r.ok, r
        assert sleeper.poll() is None, "the sandboxed code killed a host process"
        if box.isolation.landlock_abi >= 6 or os.geteuid() == 0 or box.isolation.layers["pid_namespace"]:
            assert "SENT" not in r.stdout
    finally:
        sleeper.send_signal(signal.SIGKILL)
        sleeper.wait()


# -- strict by default ---------------------------------------------------------------------------


def test_refuses_to_run_without_bubblewrap_and_landlock(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    box = Sandbox(pool_size=0, precheck=False, use_bwrap=False, use_landlock=False)
    assert not box.isolation.filesystem_confined
    with pytest.raises(SandboxUnavailable) as refused:
        box.run(ESCAPE + f"open({str(marker)!r}, 'w').write('x')")
    message = str(refused.value)
    assert "apt-get install bubblewrap" in message and "Landlock" in message and "allow_weak=True" in message
    assert not marker.exists()


async def test_refuses_in_arun_too() -> None:
    with pytest.raises(SandboxUnavailable, match="neither bubblewrap nor Landlock"):
        await Sandbox(pool_size=0, use_bwrap=False, use_landlock=False).arun("print(1)")


def test_allow_weak_runs_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with Sandbox(pool_size=0, use_bwrap=False, use_landlock=False, allow_weak=True) as box:
        r = box.run("print(6 * 7)")
    assert r.ok and r.stdout == "42\n"
    assert any("reduced protection" in rec.getMessage() and "landlock" in rec.getMessage() for rec in caplog.records)


def test_strict_and_allow_weak_contradict() -> None:
    with pytest.raises(ValueError, match="contradicts allow_weak"):
        Sandbox(strict=True, allow_weak=True)


def test_landlock_only_still_runs_ordinary_code() -> None:
    with Sandbox(pool_size=1, use_bwrap=False) as box:
        if not box.isolation.layers.get("landlock"):
            pytest.skip(f"Landlock not active on this host: {box.isolation}")
        code = "import json, math, random, datetime\ndef solution():\n    return json.loads(json.dumps([math.pi]))"
        for _ in range(2):  # cold, then a pre-spawned worker
            r = box.run(code, call="solution")
            assert r.ok and r.value == [3.141592653589793], r
