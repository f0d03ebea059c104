"""Run udocker on a terminal, as a learner's shell does: the test holds a pty and plays the user.

    with OnTerminal(udocker, "run", "-it", rootfs, "sh", rows=33, cols=101) as term:
        term.type("tty; echo done_$((6*7))\\r")
        term.expect("done_42")            # computed: the echo of what was typed cannot match
        term.type("exit 3\\r")
        term.finish().expect_exit(3)

The runtime gets the slave of a pty the test made (os.openpty) as its stdin,
stdout and stderr and as the controlling terminal of a session of its own,
exactly as from an interactive shell; the test reads and writes the master,
like a terminal emulator, resizes the window with TIOCSWINSZ on the master
(the kernel then sends SIGWINCH to the terminal's foreground process group:
the runtime's), and reads the terminal's settings (termios) on the slave,
which it keeps open as the learner's shell does.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import subprocess
import termios
import time

from workshop.testing import DEFAULT_TIMEOUT, Result, Udocker, descendants, kill_tree


def take_controlling_terminal():
    """In the child, after setsid (start_new_session): its stdin, our pty's slave, becomes its terminal."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def set_window_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: [state, ppid, pgrp, session, tty_nr, tpgid, ...]."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def device(number: int) -> str:
    return f"{os.major(number)}:{os.minor(number)}"


class OnTerminal:
    """The runtime, started on a pty of the test's."""

    def __init__(self, udocker: Udocker, *args, rows: int = 24, cols: int = 80, as_user: bool = False,
                 env: dict | None = None):
        argv, shown, full_env, cwd = udocker.command(args, as_user)
        full_env.update(env or {})
        self.master, self.slave = os.openpty()
        set_window_size(self.master, rows, cols)
        self.initial_mode = termios.tcgetattr(self.slave)
        self.argv = argv
        self.shown = f"{shown}   # on a {rows}x{cols} terminal (stdout and stderr both go to it)"
        print(f"$ {self.shown}", flush=True)
        self.proc = subprocess.Popen(argv, stdin=self.slave, stdout=self.slave, stderr=self.slave, env=full_env,
                                     cwd=cwd, start_new_session=True, preexec_fn=take_controlling_terminal)
        self.pid = self.proc.pid
        self.output = bytearray()
        self.seen = 0  # expect() looks at the output after the previous match
        self.returncode: int | None = None
        self.timed_out: float | None = None

    # -- what the user does

    def type(self, text: str) -> None:
        print(f"(typed {text!r})", flush=True)
        os.write(self.master, text.encode())

    def resize(self, rows: int, cols: int) -> None:
        """Resize the window, as a terminal emulator does: the kernel sends SIGWINCH to the runtime."""
        print(f"(window resized to {rows}x{cols})", flush=True)
        set_window_size(self.master, rows, cols)

    def mode(self) -> list:
        """The terminal's settings now (termios.tcgetattr of the slave)."""
        return termios.tcgetattr(self.slave)

    # -- what the user sees

    @property
    def text(self) -> str:
        return self.output.decode(errors="replace")

    def _read(self, timeout: float) -> bool:
        """Read what the terminal shows within timeout; False when nothing came."""
        ready, _, _ = select.select([self.master], [], [], max(timeout, 0))
        if not ready:
            return False
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: nobody else holds the slave (cannot happen while we do)
            return False
        self.output += chunk
        return bool(chunk)

    def expect(self, text: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Wait until the terminal shows TEXT (after the previous match); return what came before it."""
        deadline = time.monotonic() + timeout
        while (at := self.output.find(text.encode(), self.seen)) < 0:
            left = deadline - time.monotonic()
            exited = self.proc.poll() is not None
            if left <= 0 or (exited and not self._read(0.2)):
                self.kill()
                self.result().fail(f"expected the terminal to show {text!r}, got "
                                   + ("nothing like it before the runtime exited" if exited
                                      else f"nothing like it within {timeout:g} s"))
            self._read(min(left, 0.1))
        before = self.output[self.seen:at].decode(errors="replace")
        self.seen = at + len(text)
        return before

    def run_line(self, command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
        """Type COMMAND into the shell and return its output (up to a marker the shell computes)."""
        n = len(self.output) + 1000
        self.type(f"{command}; echo end_$(({n}+1))\r")
        before = self.expect(f"end_{n + 1}", timeout)
        # the output follows the echo of the typed line, which ends with the marker's source text
        return before.rsplit(f"end_$(({n}+1))", 1)[-1]

    # -- the runtime's processes, from the host

    def find_process(self, name: str, timeout: float = 5.0) -> int:
        """The host pid of the runtime's descendant whose argv[0] is NAME."""
        deadline = time.monotonic() + timeout
        while True:
            for pid in descendants(self.pid):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        argv0 = f.read().split(b"\0")[0].decode(errors="replace")
                except OSError:
                    continue
                if os.path.basename(argv0) == name:
                    return pid
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                self.result().fail(f"expected a process {name!r} under the runtime, got none")
            self._read(0.02)

    # -- the end

    def result(self) -> Result:
        return Result(self.argv, self.shown, self.returncode, self.text, "", self.timed_out)

    def finish(self, timeout: float = DEFAULT_TIMEOUT) -> Result:
        """Wait for the runtime to exit (reading the terminal meanwhile), or kill it after TIMEOUT."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.timed_out = timeout
                self.kill()
                return self.result()
            self._read(0.05)
        while self._read(0.05):  # what it wrote just before exiting
            pass
        self.returncode = self.proc.returncode
        result = self.result()
        return result.check("Traceback" not in result.stdout, "no Python traceback on the terminal", "a traceback")

    def kill(self) -> None:
        if self.proc.poll() is None:
            kill_tree(self.pid)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.returncode = self.proc.returncode

    def close(self) -> None:
        self.kill()
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "OnTerminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
