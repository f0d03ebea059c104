"""Run a command in a container.

The parent (`run`, `start`, `wait_for`) prepares, forks and waits; the child
(`child_main`, `contain`) isolates itself step by step and finally becomes the
command with execve(2). What one container is made of travels between them in
a small `Container` object, which grows a field or two per step.
"""
import os
import signal
import sys

from udocker.errors import EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_RUNTIME_ERROR, UdockerError

# Signals a user sends to stop or poke a container: we pass them on to it.
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
# Like `docker stop`: how long a container may ignore SIGINT/SIGTERM before SIGKILL.
STOP_TIMEOUT = float(os.environ.get("UDOCKER_STOP_TIMEOUT", "10"))


class Container:
    """One container: what run() decides about it, for the parent and the child to use."""

    def __init__(self, command):
        self.id = os.urandom(6).hex()  # 12 hex digits, like the short ids docker shows
        self.command = command  # COMMAND [ARG...]


def run(args):
    """Run the container `udocker run` asks for; return its exit status."""
    container = Container(args.command)
    # From here on we make things on the host (a cgroup, ...). Hold the signals we
    # forward until the container runs, so that none can end us half-way; one that
    # comes meanwhile is waiting for us (abort_if_signalled, wait_for).
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    return start(container)


def start(container):
    """Fork the container's first process, wait for it, and return its exit status."""
    abort_if_signalled()
    pid = os.fork()
    if pid == 0:
        child_main(container)
    return wait_for(container, pid)


def abort_if_signalled():
    """A signal that came while we prepared the container ends udocker as it would have: 128+N."""
    pending = signal.sigpending() & set(FORWARDED_SIGNALS)
    if pending:
        signum = min(pending)
        raise UdockerError(f"{signal.Signals(signum).name} before the container started", 128 + signum)


def child_main(container):
    """The child's life: become the container, or report why not. Never returns."""
    # Start the command as runc does: default dispositions (not our handlers, nor the
    # SIG_IGN that Python gives SIGPIPE or a shell its background jobs), no blocked signal.
    for signum in signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP}:
        try:
            signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):  # signals the C library keeps for itself
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, ())
    # A session of its own, as runc makes: our caller's terminal is then not the container's
    # controlling terminal, and the container cannot type into the host's shell with TIOCSTI.
    os.setsid()
    try:
        contain(container)
    except UdockerError as error:
        report(error, error.exit_code)
    except OSError as error:
        report(f"cannot set up the container: {error}", EXIT_RUNTIME_ERROR)
    except BaseException as error:  # a bug in udocker (no traceback module past pivot_root)
        report(f"internal error: {type(error).__name__}: {error}", EXIT_RUNTIME_ERROR)
    finally:  # whatever happened, the child must never return into the parent's code
        os._exit(EXIT_RUNTIME_ERROR)


def report(message, exit_code):
    """Print `udocker: message` and end this (child) process at once."""
    print(f"udocker: {message}", file=sys.stderr, flush=True)
    os._exit(exit_code)


def wait_for(container, pid):
    """Wait for the container's first process, passing signals on to it; return its exit status."""
    stop_timer = StopTimer(pid)

    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        stop_timer.signalled(signum)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    _, status = os.waitpid(pid, 0)  # retried by Python when a signal interrupts it
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)  # pid is gone: nobody to forward to
    stop_timer.cancel()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class StopTimer:
    """`docker stop`'s rule: a container still running STOP_TIMEOUT s after SIGINT or SIGTERM gets SIGKILL.

    A PID 1 ignores every signal it has no handler for (pid_namespaces(7)), so a
    stop signal alone may never end it.
    """

    def __init__(self, pid):
        self.pid = pid
        self.running = False
        signal.signal(signal.SIGALRM, self.expire)

    def signalled(self, signum):
        if signum in (signal.SIGINT, signal.SIGTERM) and not self.running:
            self.running = True
            signal.setitimer(signal.ITIMER_REAL, STOP_TIMEOUT)

    def expire(self, signum, frame):
        print(
            f"udocker: the container did not stop within {STOP_TIMEOUT:g} s of the stop signal"
            " (a PID 1 ignores signals it has no handler for); killing it",
            file=sys.stderr,
            flush=True,
        )
        os.kill(self.pid, signal.SIGKILL)

    def cancel(self):
        signal.setitimer(signal.ITIMER_REAL, 0)


def contain(container):
    """In the child: isolate this process step by step, then exec the command."""
    argv = container.command
    execute(argv)


def execute(argv):
    """Replace this process with the command (execvp(3)); raise UdockerError when that fails."""
    try:
        os.execvp(argv[0], argv)
    except ValueError:  # an empty command name: nothing to find, as docker says
        raise UdockerError("'': command not found", EXIT_NOT_FOUND) from None
    except FileNotFoundError:
        raise UdockerError(not_found(argv[0]), EXIT_NOT_FOUND) from None
    except (PermissionError, IsADirectoryError):
        raise UdockerError(
            f"{argv[0]}: permission denied (is it an executable file?)", EXIT_NOT_EXECUTABLE
        ) from None
    except OSError as error:  # ENOEXEC and friends: a file the kernel cannot run
        raise UdockerError(f"{argv[0]}: cannot execute: {error.strerror}", EXIT_NOT_EXECUTABLE) from None


def not_found(name):
    """Why execvp(3) found no NAME: there is no such file, or the file needs a program that is missing."""
    paths = [name] if "/" in name else [os.path.join(d, name) for d in os.get_exec_path()]
    for path in paths:
        try:
            with open(path, "rb") as file:
                first_line = file.readline(256)
        except OSError:
            continue
        if first_line.startswith(b"#!"):  # execve runs the interpreter the #! line names
            interpreter = (first_line[2:].split() or [b""])[0].decode(errors="replace")
            return f"{name}: its interpreter {interpreter!r} (the #! line) is missing: no such file or directory"
        return f"{name}: exists, but the dynamic loader it needs (its ELF interpreter) is missing"
    return f"{name}: command not found"


def write_file(path, text):
    """Write TEXT to the file PATH; an error names PATH (a failed write() alone would not)."""
    try:
        with open(path, "w") as file:
            file.write(text)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None
