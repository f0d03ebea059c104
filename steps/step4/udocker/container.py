"""Run a command in a container.

The parent (`run`, `start`) prepares, forks and waits; the child (`contain`)
isolates itself step by step and finally becomes the command with execve(2).
"""
import os
import signal
import sys

from udocker import syscalls
# TODO(step 4): Import the devices module (given): it fills the container's /dev.
from udocker.errors import (
    EXIT_NOT_EXECUTABLE,
    EXIT_NOT_FOUND,
    EXIT_RUNTIME_ERROR,
    UdockerError,
)

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


def run(args):
    """Run args.command in a new container; return its exit status."""
    args.container_id = os.urandom(6).hex()
    args.rootfs = check_rootfs(args.image)
    args.hostname = args.hostname or args.container_id
    return start(args)


def start(args):
    """Fork the container's first process, wait for it, and return its exit status."""
    # TODO(step 4): A new PID namespace: unshare(CLONE_NEWPID) puts our *next child* in
    #   it, as its PID 1.
    # Block the forwarded signals until the child's pid is known: a Ctrl-C that
    # arrives in between is then delivered to the handler, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    pid = os.fork()
    if pid == 0:
        child_main(args)
    return wait_for(pid)


def child_main(args):
    """The child's life: become the container, or report why not. Never returns."""
    # Start the command with default dispositions, as runc does: not with our
    # handlers, nor with the SIG_IGN a shell gives its background jobs.
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    try:
        contain(args)
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


def wait_for(pid):
    """Wait for the container, passing signals on to it; return its exit status."""
    stop_requested = False

    def forward(signum, frame):
        nonlocal stop_requested
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return  # already gone: waitpid is about to return
        if signum in (signal.SIGINT, signal.SIGTERM) and not stop_requested:
            stop_requested = True
            signal.setitimer(signal.ITIMER_REAL, STOP_TIMEOUT)

    def kill(signum, frame):
        print(
            f"udocker: the container did not stop within {STOP_TIMEOUT:g} s of the stop signal"
            " (a PID 1 ignores signals it has no handler for); killing it",
            file=sys.stderr,
            flush=True,
        )
        os.kill(pid, signal.SIGKILL)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    signal.signal(signal.SIGALRM, kill)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    _, status = os.waitpid(pid, 0)  # retried by Python when a signal interrupts it
    signal.setitimer(signal.ITIMER_REAL, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def contain(args):
    """In the child: isolate this process step by step, then exec the command."""
    syscalls.unshare(syscalls.CLONE_NEWUTS)
    syscalls.sethostname(args.hostname)
    # TODO(step 4): A mount table of its own: a new mount namespace (CLONE_NEWNS) in
    #   which every mount is made private (mount(2) with MS_REC | MS_PRIVATE), so that
    #   nothing we mount propagates to the host. Then switch into the root filesystem
    #   with pivot_root (enter_rootfs) instead of chroot.
    os.chroot(args.rootfs)
    os.chdir("/")
    execute(args.command)


def execute(argv):
    """Replace this process with the command (execvp(3)); raise UdockerError when that fails."""
    try:
        os.execvp(argv[0], argv)
    except ValueError:  # an empty command name: nothing to find, as docker says
        raise UdockerError("'': command not found", EXIT_NOT_FOUND) from None
    except FileNotFoundError:
        raise UdockerError(f"{argv[0]}: command not found", EXIT_NOT_FOUND) from None
    except (PermissionError, IsADirectoryError):
        raise UdockerError(
            f"{argv[0]}: permission denied (is it an executable file?)", EXIT_NOT_EXECUTABLE
        ) from None
    except OSError as error:  # ENOEXEC and friends: a file the kernel cannot run
        raise UdockerError(f"{argv[0]}: cannot execute: {error.strerror}", EXIT_NOT_EXECUTABLE) from None


def check_rootfs(image):
    """Return IMAGE's absolute path, or raise UdockerError saying what is wrong with it."""
    rootfs = os.path.abspath(image)
    hint = "give a root filesystem directory, such as /var/lib/container-workshop/busybox (setup.sh builds it)"
    try:
        entries = os.listdir(rootfs)
    except (FileNotFoundError, NotADirectoryError):
        raise UdockerError(f"root filesystem {image!r} is not a directory; {hint}") from None
    except PermissionError:
        raise UdockerError(
            f"cannot read the root filesystem {image!r} (permission denied); "
            "give a directory this user can read, or run as root"
        ) from None
    if not entries:
        raise UdockerError(f"root filesystem {image!r} is empty; {hint}")
    return rootfs


# TODO(step 4): Switch into the root filesystem for good: mount the container's own
#   /proc in it (mount_proc) and its /dev (devices.mount_dev, given), then pivot_root(2)
#   into it and detach the host's old root.
