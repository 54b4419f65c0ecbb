"""The program that runs inside the sandbox.

It is passed to ``python -I -S -B -c`` as source text (so neither the project directory nor
site-packages have to be visible inside the sandbox) and uses only the standard library.

Life cycle of one worker process (it is never reused):

1. trusted start-up: close stray fds, drop the bounding set and switch to the unprivileged uid
   (when started as root), set PR_SET_NO_NEW_PRIVS, set resource limits, restrict the file system
   (and TCP) with the Landlock rules decided by the parent, install the seccomp filter built by the
   parent;
2. block on stdin until the parent sends exactly one job (this is where pre-spawned workers of
   the warm pool wait);
3. run the model's code with a guarded ``__import__`` and capped stdout/stderr, stream output to
   the parent as JSON lines, send one final ``{"done": ...}`` line and ``_exit``.

In session mode (the job starts with ``session``; see ``_session.py`` in the parent) step 3 repeats: the
worker runs one snippet per ``exec`` frame in the same globals, where the exposed functions send ``call``
frames and block for the parent's ``result``, until the parent closes stdin or kills it.  It is still
never used for a second session.

Nothing here is a security boundary against the code it runs (that code shares this process);
the boundary is the namespaces, uid, rlimits, Landlock and seccomp set up before the code starts.
"""

import builtins
import io
import os
import resource
import sys
import time
from _json import encode_basestring_ascii as _quote  # the json package would pull in re (slow)

# Annotations name these only as strings: importing typing would cost start-up time on every run, and
# mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import ctypes
    import types
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any, NoReturn, TypedDict

    class _Config(TypedDict):
        """The start-up settings (``LaunchConfig.worker_config`` in the parent writes them)."""

        allowed: list[str]
        paths: list[str]
        seccomp: str
        workdir: str
        landlock: str
        drop_uid: int
        preimport: int
        uid: int
        gid: int
        mem: int
        fsize: int
        nofile: int
        nproc: int
        output_limit: int

    class _Job(TypedDict, total=False):
        """One job from the parent: code to run, a probe, or the start of a session."""

        session: bool
        pending: bytes
        probe: bool
        cpu: float
        call: str
        code: str


_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


def _encode(value: "Any", depth: int = 0) -> str:
    """Minimal JSON encoder (str, int, float, bool, None, list/tuple, dict); ValueError otherwise.

    Base-type methods are called explicitly so that subclasses cannot inject invalid JSON.
    """
    if depth > 100:
        raise ValueError("nested too deeply")
    if isinstance(value, str):
        return _quote(value)
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        text = float.__repr__(value)
        return {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}.get(text, text)
    if isinstance(value, list | tuple):
        return "[" + ",".join([_encode(item, depth + 1) for item in value]) + "]"
    if isinstance(value, dict):
        parts: list[str] = []
        for key, item in dict.items(value):
            if not isinstance(key, str):
                if key is None or key is True or key is False or isinstance(key, int | float):
                    key = _encode(key).strip('"')
                else:
                    raise ValueError("non-string key")
            parts.append(_quote(key) + ":" + _encode(item, depth + 1))
        return "{" + ",".join(parts) + "}"
    raise ValueError(f"{type(value).__name__} is not JSON serializable")


class _Channel:
    """Line-delimited JSON to the parent, with output chunks batched to limit syscalls."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.pending: list[tuple[str, str]] = []
        self.pending_chars = 0
        self.chunks = 0
        self.last_flush = time.monotonic()

    def send(self, obj: "Any") -> None:
        self.send_text(_encode(obj))

    def send_text(self, text: str) -> None:
        view = memoryview((text + "\n").encode("ascii"))
        while view:
            view = view[os.write(self.fd, view) :]

    def chunk(self, key: str, text: str) -> None:
        self.pending.append((key, text))
        self.pending_chars += len(text)
        self.chunks += 1
        # The first writes go out at once (so the output printed before a hang survives the
        # wall-clock kill); after that, batch to keep print-heavy loops cheap.
        if self.chunks <= 64 or self.pending_chars >= 4096 or time.monotonic() - self.last_flush >= 0.05:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        merged: list[tuple[str, list[str]]] = []
        for key, text in self.pending:
            if merged and merged[-1][0] == key:
                merged[-1][1].append(text)
            else:
                merged.append((key, [text]))
        self.pending, self.pending_chars = [], 0
        self.last_flush = time.monotonic()
        for key, parts in merged:
            self.send({key: "".join(parts)})


class _CappedStream(io.TextIOBase):
    """stdout/stderr replacement: keeps the first ``limit`` characters, counts the rest."""

    def __init__(self, key: str, channel: _Channel, limit: int) -> None:
        super().__init__()
        self._key, self._channel, self._limit = key, channel, limit
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self._limit - self.kept
        if room > 0 and s:
            part = s[:room]
            self.kept += len(part)
            self._channel.chunk(self._key, part)
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def flush(self) -> None:
        self._channel.flush()


def _open_landlock_paths(spec: str) -> tuple[list[int] | None, list[tuple[int, int]]]:
    """O_PATH fds for the Landlock rules, opened *before* the uid drop (``nobody`` may not be able to
    traverse e.g. ``/root/.pyenv``).  A path that does not exist here simply grants nothing."""
    if not spec:
        return None, []
    header, *entries = spec.split("\x1f")
    opened: list[tuple[int, int]] = []
    for entry in entries:
        path, _, rights = entry.rpartition("\x1e")
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue
        opened.append((fd, int(rights)))
    return [int(v) for v in header.split(";")], opened


def _landlock(libc: "ctypes.CDLL", header: list[int], opened: list[tuple[int, int]]) -> None:
    """Restrict this process (and everything it starts) to the rules; fail closed on any error."""
    import ctypes
    import stat

    abi, fs, net, scope, file_rights = header

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]

    def call(nr: int, *args: object) -> int:
        result: int = libc.syscall(ctypes.c_long(nr), *args)
        if result < 0:
            raise OSError(ctypes.get_errno(), f"landlock syscall {nr} failed")
        return result

    size = 8 if abi < 4 else 16 if abi < 6 else 24  # the struct grew with the ABI
    attr = RulesetAttr(fs, net, scope)
    ruleset = call(444, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    try:
        for fd, rights in opened:
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                rights &= file_rights
            rule = PathBeneath(rights, fd)
            call(445, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0))
        call(446, ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
        for fd, _ in opened:
            os.close(fd)


def _harden(cfg: "_Config") -> None:
    """Trusted start-up: uid drop, no_new_privs, rlimits, Landlock, seccomp (in this order)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    landlock_header, landlock_paths = _open_landlock_paths(cfg["landlock"])

    if cfg["drop_uid"] and os.getuid() == 0:
        # Empty the capability bounding set first (needs CAP_SETPCAP, granted to us by bwrap only
        # for this), then switch all uids/gids; the kernel clears permitted/effective caps then.
        for cap in range(64):
            if prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break
        os.setgroups([])
        os.setresgid(cfg["gid"], cfg["gid"], cfg["gid"])
        os.setresuid(cfg["uid"], cfg["uid"], cfg["uid"])
        if os.getuid() == 0 or os.geteuid() == 0:
            raise RuntimeError("failed to drop root")

    if prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")

    limits = {
        resource.RLIMIT_AS: cfg["mem"],
        resource.RLIMIT_FSIZE: cfg["fsize"],
        resource.RLIMIT_NOFILE: cfg["nofile"],
        resource.RLIMIT_NPROC: cfg["nproc"],
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_MEMLOCK: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))

    # Landlock needs no_new_privs (set above) and must come before seccomp, which is the last word.
    if landlock_header:
        _landlock(libc, landlock_header, landlock_paths)

    if cfg["seccomp"]:
        program = bytes.fromhex(cfg["seccomp"])

        class SockFprog(ctypes.Structure):
            _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

        buf = ctypes.create_string_buffer(program, len(program))
        fprog = SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
        prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
        if prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "installing the seccomp filter failed")


def _fs_confined() -> bool:
    """Whether the file system is confined as seen from here: listing ``/`` must be refused."""
    try:
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    except PermissionError:
        return True
    os.close(fd)
    return False


def _self_report(cfg: "_Config", status_fd: int | None) -> dict[str, object]:
    """What this process can observe about its own confinement (sent back with every result).

    ``status_fd`` is ``/proc/self/status``, opened before Landlock hid ``/proc``; procfs renders
    the text at read time, so it shows the state after hardening."""
    status: dict[str, str] = {}
    if status_fd is not None:
        with open(status_fd, closefd=True) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key in ("NoNewPrivs", "Seccomp", "CapEff", "CapPrm", "CapBnd"):
                    status[key] = value.strip()
    namespaces: dict[str, str | None] = {}
    for ns in ("net", "pid", "mnt"):
        try:
            namespaces[ns] = os.readlink(f"/proc/self/ns/{ns}")
        except OSError:
            namespaces[ns] = None
    return {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "status": status,
        "ns": namespaces,
        "env": sorted(os.environ),
        "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0],
        "rlimit_nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
        "landlock": {"abi": int(cfg["landlock"].split(";", 1)[0] or 0), "fs_confined": _fs_confined()},
    }


def _read_job(fd: int) -> "_Job":
    """Job format (from the trusted parent): ``<cpu seconds|probe>\n<call or empty>\n<code>`` up to EOF,
    or ``session\n`` followed by JSON frames, one per line (stdin then stays open; see ``_session``)."""
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            break
        chunks.append(data)
        if len(chunks) == 1 and data.startswith(b"session\n"):
            return {"session": True, "pending": data[len(b"session\n") :]}
    cpu, call, code = b"".join(chunks).decode("utf-8", "surrogatepass").split("\n", 2)
    return {"probe": cpu == "probe", "cpu": 0.0 if cpu == "probe" else float(cpu), "call": call, "code": code}


def _parse_config(text: str) -> "_Config":
    """``key=value`` lines; list values are separated by \x1f; numbers are ints."""
    fields = dict(line.partition("=")[::2] for line in text.split("\n"))

    def listed(key: str) -> list[str]:
        return [v for v in fields[key].split("\x1f") if v]

    def number(key: str) -> int:
        return int(fields[key])

    return {
        "allowed": listed("allowed"),
        "paths": listed("paths"),
        "seccomp": fields["seccomp"],
        "workdir": fields["workdir"],
        "landlock": fields["landlock"],
        "drop_uid": number("drop_uid"),
        "preimport": number("preimport"),
        "uid": number("uid"),
        "gid": number("gid"),
        "mem": number("mem"),
        "fsize": number("fsize"),
        "nofile": number("nofile"),
        "nproc": number("nproc"),
        "output_limit": number("output_limit"),
    }


def _exc_line(exc: BaseException) -> str:
    name = type(exc).__name__
    try:
        text = str(exc)
    except BaseException:
        text = "<unprintable exception>"
    return f"{name}: {text}" if text else name


def _format_traceback(exc: BaseException, source_lines: list[str]) -> str:
    if isinstance(exc, SyntaxError):
        return f"  line {exc.lineno}: {exc.text.strip() if exc.text else ''}\n{_exc_line(exc)}\n"
    frames: list[tuple[int | None, str]] = []
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<sandbox>":
            frames.append((tb.tb_lineno, tb.tb_frame.f_code.co_name))
        tb = tb.tb_next
    if len(frames) > 20:  # deep recursion: keep both ends, like CPython's "[Previous line ...]"
        frames = [*frames[:10], (None, f"[... {len(frames) - 20} more frames ...]"), *frames[-10:]]
    lines = ["Traceback (most recent call last):"]
    for lineno, name in frames:
        if lineno is None:
            lines.append(f"  {name}")
            continue
        lines.append(f'  File "<sandbox>", line {lineno}, in {name}')
        if 0 < lineno <= len(source_lines):
            lines.append("    " + source_lines[lineno - 1].strip())
    lines.append(_exc_line(exc))
    return "\n".join(lines) + "\n"


def _make_builtins(allowed: frozenset[str]) -> dict[str, "Any"]:
    real_import = builtins.__import__
    shown = ", ".join(sorted(allowed))

    def guarded_import(
        name: str,
        globals: "Mapping[str, object] | None" = None,
        locals: "Mapping[str, object] | None" = None,
        fromlist: "Sequence[str]" = (),
        level: int = 0,
    ) -> "types.ModuleType":
        if level:
            raise ImportError("relative imports are not available in the sandbox")
        top = name.partition(".")[0]
        if top not in allowed:
            raise ImportError(f"import of {name!r} is blocked in the sandbox; allowed modules: {shown}", name=name)
        return real_import(name, globals, locals, fromlist, level)

    def _exit(code: object = None) -> "NoReturn":
        raise SystemExit(code)

    ns = dict(builtins.__dict__)
    ns["__import__"] = guarded_import
    ns["exit"] = ns["quit"] = _exit
    for name in ("breakpoint", "input"):
        ns.pop(name, None)
    return ns


def _encode_value(value: "Any", limit: int) -> "tuple[str, bool]":
    """JSON text of ``value``, and whether it is only a (capped) repr string of it (not JSON-able, or too
    large): a caller that needs the value itself (PAL's answer) can then tell."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        try:  # noqa: SIM105 - contextlib is deliberately not imported (start-up time)
            value = value.tolist()
        except BaseException:
            pass
    try:
        text = _encode(value)
    except (ValueError, RecursionError):
        text = None
    if text is not None and len(text) <= limit:
        return text, False
    try:
        shown = repr(value)
    except BaseException:
        shown = f"<unrepresentable {type(value).__name__}>"
    if len(shown) > limit:
        shown = shown[:limit] + f"…[truncated {len(shown) - limit} chars]"
    return _quote(shown), True


def _run(job: "_Job", cfg: "_Config", channel: _Channel) -> dict[str, object]:
    # CPU limit for this job on top of what start-up has already used.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + job["cpu"]) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    namespace = {"__name__": "__main__", "__builtins__": _make_builtins(frozenset(cfg["allowed"]))}
    return _execute(job["code"], job.get("call"), namespace, cfg, channel)


class _FinalAnswer(BaseException):
    """Raised by ``final_answer(value)`` in a session: ends the snippet (and, for the caller, the run)."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.value = value


def _execute(
    code: str, call: str | None, namespace: dict[str, "Any"], cfg: "_Config", channel: _Channel, session: bool = False
) -> dict[str, object]:
    """Run ``code`` in ``namespace`` with captured output; the ``done`` report for the parent."""
    limit = cfg["output_limit"]
    out = _CappedStream("o", channel, limit)
    err = _CappedStream("e", channel, limit)
    sys.stdout, sys.stderr = out, err
    reserve = bytearray(1 << 20)  # released on MemoryError so reporting it cannot fail too
    done: dict[str, object] = {"ok": True, "error": None}
    try:
        compiled = compile(code, "<sandbox>", "exec", dont_inherit=True)
        exec(compiled, namespace)
        if call:
            func = namespace.get(call)
            if not callable(func):
                raise NameError(f"the code did not define a function {call}()")
            done["value"], done["shown"] = _encode_value(func(), max(limit, 65536))
    except _FinalAnswer as final:
        encoded, shown = _encode_value(final.value, max(limit, 65536))
        done.update(final=True, value=encoded, shown=shown)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            done.update(ok=False, error=f"SystemExit: {exc.code!r}")
    except MemoryError as exc:
        del reserve
        if not session:
            # One program: free what it built so the report can be made. A session's globals (its tools,
            # final_answer, the guarded builtins) must stay: cleared, the next snippet would run with the
            # real builtins and no tools. The parent replaces that worker instead.
            namespace.clear()
        exc.__traceback__ = None
        done.update(ok=False, error=f"MemoryError: memory limit of {cfg['mem'] >> 20} MB exceeded")
    except BaseException as exc:
        done.update(ok=False, error=_exc_line(exc))
        err.write(_format_traceback(exc, code.splitlines()))
    sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
    channel.flush()
    done["dropped"] = {"o": out.dropped, "e": err.dropped}
    return done


# -- session mode: one worker, many snippets, shared globals, functions that call the parent ------------


class _JsonContext:
    """Settings for the C JSON scanner (``json`` itself would import ``re``, and after the uid drop the
    standard library may no longer be readable)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo = None

    @staticmethod
    def parse_constant(name: str) -> "NoReturn":
        raise ValueError(f"{name} is not allowed in a frame")


class _HostLink:
    """Frames from the parent on fd 0: one JSON object per line.  The parent is trusted; this code only
    has to be correct, not defensive."""

    def __init__(self, fd: int, pending: bytes, channel: _Channel) -> None:
        from _json import make_scanner

        self.fd = fd
        self.buffer = bytearray(pending)
        self.channel = channel
        # typeshed types the context as a make_scanner (which has the same attributes); any such object works.
        self.scan = make_scanner(_JsonContext())  # type: ignore[arg-type]

    def frame(self) -> "Any":
        while b"\n" not in self.buffer:
            data = os.read(self.fd, 65536)
            if not data:
                os._exit(0)  # the parent ended the session
            self.buffer += data
        line, _, rest = bytes(self.buffer).partition(b"\n")
        self.buffer = bytearray(rest)
        value, _ = self.scan(line.decode("utf-8", "surrogatepass"), 0)
        return value

    def call(self, name: str, arguments: dict[str, object]) -> object:
        """Ask the parent to run ``name(**arguments)``; its JSON result, or ToolError."""
        try:
            request = _encode({"call": {"name": name, "arguments": arguments}})
        except (ValueError, RecursionError) as exc:
            shown = "str, number, bool, None, list, dict"
            raise TypeError(f"arguments of {name}() must be JSON values ({shown}): {exc}") from None
        self.channel.flush()  # output printed before the call stays before it
        self.channel.send_text(request)
        reply = self.frame()
        result = reply.get("result") if isinstance(reply, dict) else None
        if not isinstance(result, dict):
            raise RuntimeError("protocol error: expected a result frame from the parent")
        if result.get("ok") is True:
            return result.get("value")
        raise _ToolError(str(result.get("error")))


class _ToolError(Exception):
    """A function call the parent refused or that failed there (shown to the code as ``ToolError``)."""


def _proxy(name: str, params: tuple[str, ...], link: _HostLink) -> "Callable[..., object]":
    def call(*args: object, **kwargs: object) -> object:
        if len(args) > len(params):
            raise TypeError(f"{name}() takes at most {len(params)} positional arguments ({len(args)} given)")
        arguments = dict(zip(params, args, strict=False))
        for key, value in kwargs.items():
            if key in arguments:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            arguments[key] = value
        return link.call(name, arguments)

    call.__name__ = call.__qualname__ = name
    return call


def _final_answer(value: object) -> "NoReturn":
    raise _FinalAnswer(value)


def _session(job: "_Job", cfg: "_Config", channel: _Channel) -> "NoReturn":
    """Serve ``exec`` frames until the parent closes stdin; globals persist from snippet to snippet."""
    link = _HostLink(0, job["pending"], channel)
    setup = link.frame()["setup"]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = int(usage.ru_utime + usage.ru_stime)
    hard = used + int(setup["cpu_total"]) + 1
    session_builtins = _make_builtins(frozenset(cfg["allowed"]))
    session_builtins["ToolError"] = _ToolError
    session_builtins["final_answer"] = _final_answer
    namespace: dict[str, object] = {"__name__": "__main__", "__builtins__": session_builtins}
    for name, params in setup["functions"].items():
        namespace[name] = _proxy(name, tuple(params), link)
    channel.send({"ready": True})
    while True:
        request = link.frame()["exec"]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        soft = min(int(usage.ru_utime + usage.ru_stime + request["cpu"]) + 1, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
        done = _execute(request["code"], None, namespace, cfg, channel, session=True)
        channel.send({"done": done})


def main() -> "NoReturn":
    cfg = _parse_config(sys.argv[2])
    os.closerange(3, 4096)
    result_fd = os.dup(1)
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 1)
    if cfg.get("workdir"):
        os.chdir(cfg["workdir"])
    sys.path.extend(cfg["paths"])
    if cfg["preimport"]:
        # Direct mode as root: after the uid drop the interpreter's stdlib may be unreadable
        # (e.g. under /root), so load the allowed modules while we still can.
        for name in cfg["allowed"]:
            try:  # noqa: SIM105 - contextlib is deliberately not imported (start-up time)
                __import__(name)
            except Exception:
                pass
    try:
        status_fd = os.open("/proc/self/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        status_fd = None
    _harden(cfg)
    os.dup2(devnull, 2)  # from here on nothing may write to the parent except the channel
    report = _self_report(cfg, status_fd)
    channel = _Channel(result_fd)

    job = _read_job(0)
    if job.get("session"):
        _session(job, cfg, channel)  # never returns: the worker exits when the parent closes stdin
    os.dup2(devnull, 0)
    done: dict[str, object]
    done = {"ok": True, "error": None, "dropped": {"o": 0, "e": 0}} if job.get("probe") else _run(job, cfg, channel)
    done["iso"] = report
    channel.send({"done": done})
    os._exit(0)


main()
