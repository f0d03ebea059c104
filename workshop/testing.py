"""Test support for the step suites: run the CLI, watch a running container, look at the host.

The step tests are black-box: they run ``python3 -m udocker`` as a subprocess
(as root, or as the unprivileged ROOTLESS_UID through setpriv) and check what it prints, how it
exits, and what the host's /proc and /sys/fs/cgroup say about it. conftest.py
hands tests an :class:`Udocker` as the ``udocker`` fixture::

    def test_exit_status(udocker, rootfs):
        udocker.run("run", rootfs, "sh", "-c", "exit 3").expect_exit(3)

    def test_while_it_runs(udocker, rootfs):
        with udocker.popen("run", rootfs, "sh", "-c", hold("ready")) as c:
            c.wait_for("ready")
            pid = c.find_process("sh")
            ...
            c.finish(input="\\n").expect_exit(0)

A failed check raises :class:`CheckFailure`: an AssertionError that carries
what was expected, what came instead, the exact command line and the
runtime's output (exit code, stdout, stderr), each bounded to a few lines.
Plain pytest shows it as ``expected X, got Y`` and the command; `workshop
check` reads the fields. Every runtime has a timeout, and none outlives
:data:`LIFETIME` seconds: a hung container fails the test and is killed with
all its processes.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from workshop import mountinfo
from workshop.environment import cgroup_layout
from workshop.procfs import all_pids, cmdline, environ, ppid_of, read  # noqa: F401 (the step tests' API)
from workshop.harness.failure import CheckFailure, Output  # noqa: F401 (the step tests' API)
from workshop.mountinfo import Mount

#: the unprivileged user of rootless runs: not nobody (65534), which is also the kernel's overflow
#: id, so a runtime that reads its ids after unshare(CLONE_NEWUSER) would pass unnoticed
ROOTLESS_UID = 4242
SETPRIV = ("setpriv", f"--reuid={ROOTLESS_UID}", f"--regid={ROOTLESS_UID}", "--clear-groups")
#: the system python: the one a rootless user can run (a pyenv one lives under /root, mode 0700)
SYSTEM_PYTHON = "/usr/bin/python3"
#: set in the environment of every runtime the tests start: finds the processes they leave behind
SESSION_ENV = "WORKSHOP_TEST_SESSION"
#: seconds a runtime may take; the cgroup-v2 VM lane (software emulation, slow) raises it
DEFAULT_TIMEOUT = float(os.environ.get("WORKSHOP_TEST_TIMEOUT", "10"))
#: no runtime a test starts lives longer than this, whatever the test does (or forgets) meanwhile
LIFETIME = 15 * DEFAULT_TIMEOUT
#: how long a runtime stopped with SIGTERM at a timeout may take to say why, before SIGKILL
STOP_GRACE = 1.0


def token(prefix: str = "t") -> str:
    """A random word nobody could print by accident."""
    return f"{prefix}{secrets.token_hex(5)}"


def hold(ready: str, tag: str = "") -> str:
    """A shell script that prints READY, then waits for a line on stdin (then exits 0).

    Lets a test look at a running container for as long as it needs, then end
    it with ``finish(input="\\n")``. TAG goes in the script so the container's
    process can be found by its command line.
    """
    return f"echo {ready}; read line; : {tag}"


# --------------------------------------------------------------------------- results


@dataclass
class Result:
    """A finished runtime: its command line, exit code and output."""

    argv: list[str]
    shown: str  # the command line as a learner would type it
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: float | None = None

    def output(self) -> Output:
        return Output.of(self.returncode, self.stdout, self.stderr, self.timed_out)

    def describe(self) -> str:
        return "\n".join([f"$ {self.shown}", *self.output().lines()])

    def fail(self, message: str):
        """Fail the check with MESSAGE (say what was expected and what came), and this run's output."""
        raise CheckFailure(problem=message, command=self.shown, output=self.output())

    def check(self, ok: bool, expected: str, got: str) -> "Result":
        """Fail with "expected EXPECTED, got GOT" and this run's output unless OK."""
        if not ok:
            raise CheckFailure(expected, got, command=self.shown, output=self.output())
        return self

    # -- the common expectations

    def expect_no_traceback(self) -> "Result":
        return self.check("Traceback" not in self.stderr, "no Python traceback on stderr", "a traceback")

    def expect_finished(self) -> "Result":
        if self.timed_out is not None:
            self.check(False, f"the runtime to exit within {self.timed_out:g} s", "a hang")
        return self.expect_no_traceback()

    def expect_exit(self, code: int) -> "Result":
        self.expect_finished()
        return self.check(self.returncode == code, f"exit code {code}", f"{self.returncode}")

    def expect_stdout(self, text: str) -> "Result":
        return self.check(self.stdout == text, f"stdout {text!r}", f"{self.stdout!r}")

    def expect_stderr(self, text: str) -> "Result":
        return self.check(self.stderr == text, f"stderr {text!r}", f"{self.stderr!r}")

    def expect_in_stdout(self, text: str) -> "Result":
        return self.check(text in self.stdout, f"{text!r} in stdout", f"{self.stdout!r}")

    def stdout_lines(self) -> list[str]:
        return self.stdout.splitlines()

    def expect_error(self, code: int, *words: str) -> "Result":
        """Exit CODE with the runtime's one-line message ``udocker: ...`` naming WORDS."""
        self.expect_exit(code)
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        self.check(len(lines) == 1 and lines[0].startswith("udocker: "),
                   "one line 'udocker: <problem>' on stderr", f"{len(lines)} line(s)")
        for word in words:
            self.check(word in lines[0], f"the message to name {word!r}", repr(lines[0]))
        return self


# --------------------------------------------------------------------------- /proc


def world_traversable(path: Path) -> bool:
    """May any user reach PATH (every folder up to it lets others pass)?"""
    path = Path(path).resolve()
    return all(os.stat(p).st_mode & stat.S_IXOTH for p in [path, *path.parents])


_readable: dict[Path, Path] = {}


def world_readable(path: os.PathLike | str) -> Path:
    """PATH (a file or folder of the checkout) where another user (uid 4242, docker-registry) can
    read it: PATH itself when others may reach it, else a copy, made once per process and removed
    at its exit. A checkout may sit in a folder only its owner can enter (`mktemp -d`, a home of
    mode 0750); the step tests' copies of an implementation are made the same way."""
    from workshop import scratch

    path = Path(path).resolve()
    if world_traversable(path.parent) and (not path.is_dir() or world_traversable(path)):
        return path
    if path not in _readable:
        base = Path(tempfile.mkdtemp(prefix="workshop-readable-", dir="/tmp"))
        os.chmod(base, 0o755)
        held = scratch.hold(base)  # `workshop clean` removes it if this process is killed outright
        atexit.register(lambda: (shutil.rmtree(base, ignore_errors=True), os.close(held)))
        dest = base / path.name
        if path.is_dir():
            shutil.copytree(path, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        else:
            shutil.copy(path, dest)
        for dirpath, _, filenames in os.walk(dest):
            os.chmod(dirpath, 0o755)
            for name in filenames:
                os.chmod(os.path.join(dirpath, name), 0o644)
        _readable[path] = dest
    return _readable[path]


def descendants(pid: int) -> list[int]:
    """PID's living descendants (children first), from the host's /proc."""
    children: dict[int, list[int]] = {}
    for p in all_pids():
        parent = ppid_of(p)
        if parent is not None:
            children.setdefault(parent, []).append(p)
    result, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(0), []):
            result.append(child)
            todo.append(child)
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/PID/stat."""
    stat = read(f"/proc/{pid}/stat")
    if not stat:
        raise CheckFailure(problem=f"cannot read /proc/{pid}/stat (did the process exit?)")
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def status_field(pid: int, name: str) -> list[str]:
    """A line of /proc/PID/status, split: status_field(pid, 'Uid') -> ['0', '0', '0', '0']."""
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return value.split()
    raise CheckFailure(problem=f"/proc/{pid}/status has no {name} line (did the process exit?)")


def open_fds(pid: int | str) -> list[int]:
    """The file descriptors a process holds open, from /proc/PID/fd."""
    try:
        return sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError as e:
        raise CheckFailure(problem=f"cannot list /proc/{pid}/fd ({e.strerror}; did the process exit?)") from None


def signal_set(pid: int | str, name: str) -> set[str]:
    """The signals of a mask line of /proc/PID/status (SigBlk, SigIgn, SigCgt) by name: {'SIGINT', ...}."""
    mask = int(status_field(pid, name)[0], 16)
    return {signal.Signals(n).name if n in signal.valid_signals() else f"signal {n}"
            for n in range(1, 65) if mask & (1 << (n - 1))}


#: runs a command in a mount namespace of its own whose mounts are shared (among themselves only:
#: made private first, so nothing propagates to the real host), as / is on a systemd machine like the
#: workshop VM: a runtime that forgets to make its mounts private fails here as it would there
SHARED_MOUNT_NAMESPACE = ("unshare", "--mount", "--propagation", "private", "--",
                          "sh", "-c", 'mount --make-rshared / && exec "$@"', "sh")


def namespace(pid: int | str, kind: str) -> str:
    """'pid:[4026531836]': the namespace of a process (pid may be 'self')."""
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def mounts(pid: int | str = "self") -> list[Mount]:
    """The mount table of a process, from /proc/PID/mountinfo (paths as that process sees them)."""
    return mountinfo.read(f"/proc/{pid}/mountinfo")


def mount_table(pid: int | str = "self") -> set[tuple[str, str, str, str]]:
    """Comparable summary of a mount table: (mount id, mount point, type, source)."""
    return {(m.mount_id, m.mountpoint, m.fstype, m.source) for m in mounts(pid)}


def cgroup_hierarchies() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 and v2) on this host."""
    return sorted({Path(m.mountpoint) for m in mounts() if m.fstype in ("cgroup", "cgroup2")})


def process_cgroups(pid: int | str) -> dict[str, Path]:
    """{controller: cgroup directory} of a process for memory, cpu and pids, v1 or v2
    (on a hybrid machine, each controller where it is usable)."""
    _, where = cgroup_layout()  # controller -> mount point of the hierarchy that has it
    cg_mounts = {m.mountpoint: m for m in mounts() if m.fstype in ("cgroup", "cgroup2")}
    text = read(f"/proc/{pid}/cgroup")
    if text is None:
        raise CheckFailure(problem=f"cannot read /proc/{pid}/cgroup (did the process exit?)")
    result: dict[str, Path] = {}
    for line in text.splitlines():
        hid, controllers, path = line.split(":", 2)
        if hid == "0":  # the v2 line: every controller that lives in the cgroup2 hierarchy
            names = [c for c, mp in where.items() if cg_mounts.get(str(mp)) and cg_mounts[str(mp)].fstype == "cgroup2"]
        else:
            names = controllers.split(",")
        for controller in names:
            if controller not in ("memory", "cpu", "pids") or controller not in where:
                continue
            mountpoint = where[controller]
            root = cg_mounts[str(mountpoint)].root if str(mountpoint) in cg_mounts else "/"
            rel = path
            if root != "/" and rel.startswith(root):
                rel = rel[len(root):] or "/"
            result[controller] = mountpoint / rel.lstrip("/")
    return result


def cgroup_layout_mount(controller: str) -> Path:
    """The mount point of the hierarchy where CONTROLLER is usable."""
    _, where = cgroup_layout()
    if controller not in where:
        raise CheckFailure(problem=f"no cgroup hierarchy has the {controller} controller")
    return where[controller]


def cgroup_v2_only() -> bool:
    """Do memory, cpu and pids all live in a cgroup2 hierarchy (a pure v2 machine)?"""
    _, where = cgroup_layout()
    fstypes = {m.mountpoint: m.fstype for m in mounts()}
    return all(fstypes.get(str(where.get(c))) == "cgroup2" for c in ("memory", "cpu", "pids"))


def kill_tree(pid: int, also: list[int] = ()) -> None:
    """SIGKILL a process and all its descendants (deepest first), then the processes ALSO
    (descendants it had before it died: they are no longer its)."""
    for p in [*reversed(descendants(pid)), pid, *reversed(also)]:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


# --------------------------------------------------------------------------- the runtime


class Container:
    """A runtime started with Udocker.popen: read its output while it runs, signal it, finish it.

    It is killed with all its processes when it still runs LIFETIME seconds after it started,
    whatever the test does meanwhile: no test can hang on it.
    """

    def __init__(self, argv: list[str], shown: str, env: dict, cwd: str, stdin_data: str | None = None,
                 lifetime: float = LIFETIME, pass_fds: tuple = ()):
        self.argv, self.shown = argv, shown
        print(f"$ {shown}", flush=True)
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, start_new_session=True, pass_fds=pass_fds,
        )
        self.pid = self.proc.pid
        self._out, self._err = bytearray(), bytearray()
        self._cond = threading.Condition()
        self._eof = 0
        self._readers = [threading.Thread(target=self._pump, args=(s, b), daemon=True)
                         for s, b in ((self.proc.stdout, self._out), (self.proc.stderr, self._err))]
        for t in self._readers:
            t.start()
        self.returncode: int | None = None
        self.timed_out: float | None = None
        self._feeder: threading.Thread | None = None
        self._watchdog = threading.Timer(lifetime, self._expire, args=(lifetime,))
        self._watchdog.daemon = True
        self._watchdog.start()
        if stdin_data is not None:
            self.feed(stdin_data, close=True)

    def _expire(self, lifetime: float) -> None:
        if self.proc.poll() is None:
            self.timed_out = lifetime
            self._terminate()

    def _terminate(self) -> None:
        """SIGTERM the runtime and give it a moment, then SIGKILL it and all it started: a runtime
        stuck before its container started (a handshake in the wrong order) can say where."""
        tree = descendants(self.pid)  # now: once the runtime is gone they are no longer its
        try:
            os.kill(self.pid, signal.SIGTERM)
            self.proc.wait(STOP_GRACE)
        except (OSError, subprocess.TimeoutExpired):
            pass
        kill_tree(self.pid, also=tree)

    def _pump(self, stream, buffer: bytearray):
        while True:
            chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
            with self._cond:
                if not chunk:
                    self._eof += 1
                    self._cond.notify_all()
                    return
                buffer.extend(chunk)
                self._cond.notify_all()

    @property
    def stdout(self) -> str:
        with self._cond:
            return self._out.decode(errors="replace")

    @property
    def stderr(self) -> str:
        with self._cond:
            return self._err.decode(errors="replace")

    def result(self) -> Result:
        return Result(self.argv, self.shown, self.returncode, self.stdout, self.stderr, self.timed_out)

    def write(self, text: str) -> None:
        try:
            self.proc.stdin.write(text.encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass

    def feed(self, text: str, close: bool = False) -> None:
        """Write TEXT to stdin from a thread (a command that does not read cannot block the test)."""
        def writer():
            self.write(text)
            if close:
                self.close_stdin()
        self._feeder = threading.Thread(target=writer, daemon=True)
        self._feeder.start()

    def close_stdin(self) -> None:
        try:
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):
            pass

    def wait_for(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait until stdout contains TEXT; fail (and kill everything) when it does not come."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while text.encode() not in self._out:
                left = deadline - time.monotonic()
                if self._eof == 2 or left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            found = text.encode() in self._out
            closed = self._eof == 2
        if not found:
            if closed:  # the output ended: the runtime has exited, or is about to
                try:
                    self._reap(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
            exited = self.returncode is not None
            if not exited:
                self.kill(gently=True)
            self.result().check(False, f"the container to print {text!r}",
                                "nothing like it before the runtime exited" if exited
                                else f"nothing like it within {timeout:g} s")

    def find_process(self, name: str, tag: str = "", timeout: float = 5.0) -> int:
        """The pid (on the host) of the container's process running NAME (argv[0]'s basename)
        whose command line contains TAG: the runtime itself or one of its descendants."""
        deadline = time.monotonic() + timeout
        while True:
            for pid in [self.pid, *descendants(self.pid)]:
                argv = cmdline(pid)
                if argv and os.path.basename(argv[0]) == name and tag in " ".join(argv[1:]):
                    return pid
            if time.monotonic() > deadline or self.proc.poll() is not None:
                tree = "\n".join(f"{p} {' '.join(cmdline(p))}" for p in [self.pid, *descendants(self.pid)])
                self.kill()
                self.result().check(False, f"a process {name!r} (with {tag!r} in its arguments) among the "
                                    "runtime's processes", f"these:\n{tree}" if tree else "none")
            time.sleep(0.01)

    def signal(self, signum: int) -> None:
        """Send SIGNUM to the runtime (the process the learner's shell would signal)."""
        print(f"$ kill -{signal.Signals(signum).name.removeprefix('SIG')} {self.pid}   # udocker", flush=True)
        os.kill(self.pid, signum)

    def kill_process(self, pid: int, signum: int) -> None:
        """Send SIGNUM to one of the container's processes, from the host."""
        print(f"$ kill -{signal.Signals(signum).name.removeprefix('SIG')} {pid}   # {' '.join(cmdline(pid))}",
              flush=True)
        os.kill(pid, signum)

    def _reap(self, timeout: float | None = None) -> None:
        if self.returncode is not None:
            return
        self.proc.wait(timeout)
        self.returncode = self.proc.returncode
        self._watchdog.cancel()
        for t in self._readers:
            t.join(2.0)  # a process the runtime left behind may hold the pipes open
        # closing a stream that another thread is reading or writing would block
        streams = [s for s, t in zip((self.proc.stdout, self.proc.stderr), self._readers) if not t.is_alive()]
        if self._feeder is None or not self._feeder.is_alive():
            streams.append(self.proc.stdin)
        for s in streams:
            try:
                s.close()
            except Exception:  # noqa: BLE001
                pass

    def kill(self, gently: bool = False) -> None:
        """Kill the runtime and every process under it (gently: SIGTERM the runtime first)."""
        if self.returncode is None:
            self._terminate() if gently else kill_tree(self.pid)
            self._reap(timeout=5)

    def finish(self, input: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """Send INPUT (if any), close stdin, wait for the runtime to exit (or kill it after TIMEOUT)."""
        if input is not None:
            self.feed(input, close=True)
        elif self._feeder is None:
            self.close_stdin()
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.timed_out = timeout
                self.kill(gently=True)
                return self.result()
            time.sleep(0.005)
        self._reap()
        return self.result()

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        if self.returncode is None:
            self.kill()


@dataclass
class Udocker:
    """One implementation folder (``solutions/step4``, the learner's ``steps/step4``...)."""

    impl: Path  # the folder that holds the udocker package
    shared_impl: Path | None = None  # a world-readable copy, for rootless runs
    session: str = field(default_factory=lambda: secrets.token_hex(8))
    home: Path | None = None  # HOME of rootless runs

    def __post_init__(self):
        self.impl = Path(self.impl).resolve()

    def command(self, args, as_user: bool, prefix: tuple = ()) -> tuple[list[str], str, dict, str]:
        """The runtime's argv, as shown to the learner, its environment and directory.

        PREFIX goes before it all: e.g. ``("unshare", "-m", "--propagation", "shared", "--")``
        runs the runtime in a mount namespace of the test's making."""
        argv, shown, env, cwd = self._command([str(a) for a in args], as_user)
        if prefix:
            argv, shown = [*prefix, *argv], f"{shlex.join(prefix)} {shown}"
        return argv, shown, env, cwd

    def _command(self, args, as_user: bool) -> tuple[list[str], str, dict, str]:
        if as_user:
            impl = self.shared_impl or self.impl
            env = {
                "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME": str(self.home or "/nonexistent"),
                "LANG": "C.UTF-8",
            }
            argv = [*SETPRIV, SYSTEM_PYTHON, "-m", "udocker", *args]
            shown = f"{' '.join(SETPRIV)} env PYTHONPATH={shlex.quote(str(impl))} {SYSTEM_PYTHON} -m udocker " \
                    + shlex.join(args)
        else:
            impl = self.impl
            env = dict(os.environ)
            argv = [sys.executable, "-m", "udocker", *args]
            shown = f"PYTHONPATH={shlex.quote(str(impl))} python3 -m udocker " + shlex.join(args)
        env.update({"PYTHONPATH": str(impl), "PYTHONDONTWRITEBYTECODE": "1", SESSION_ENV: self.session})
        return argv, shown, env, str(impl)

    def popen(self, *args, as_user: bool = False, env: dict | None = None, input: str | None = None,
              prefix: tuple = (), pass_fds: tuple = ()) -> Container:
        """Start the runtime; the caller reads, signals and finishes it (use it as a context manager).

        PASS_FDS: descriptors of the test that the runtime inherits (as a careless caller's would)."""
        argv, shown, full_env, cwd = self.command(args, as_user, prefix)
        full_env.update(env or {})
        return Container(argv, shown, full_env, cwd, stdin_data=input, pass_fds=pass_fds)

    def run(self, *args, input: str | None = None, as_user: bool = False, timeout: float = DEFAULT_TIMEOUT,
            env: dict | None = None, prefix: tuple = (), pass_fds: tuple = ()) -> Result:
        """Run the runtime to its end with INPUT on stdin; a hang is killed after TIMEOUT seconds."""
        with self.popen(*args, as_user=as_user, env=env, input=input, prefix=prefix, pass_fds=pass_fds) as c:
            return c.finish(timeout=timeout)


# --------------------------------------------------------------------------- whose processes


def ours(pid: int, session: str, paths: list[str]) -> bool:
    """Was process PID started by this test session? (Its environment carries the session's
    token, it descends from this test process, or it lives in / names one of our directories.)"""
    if session and f"{SESSION_ENV}={session}".encode() in environ(pid):
        return True
    p, me = pid, os.getpid()
    for _ in range(64):
        p = ppid_of(p)
        if p is None or p <= 1:
            break
        if p == me:
            return True
    text = " ".join(cmdline(pid))
    try:
        root = os.readlink(f"/proc/{pid}/root")
    except OSError:
        root = "/"
    return any(path and (path in text or root == path or root.startswith(path + "/")) for path in paths)
