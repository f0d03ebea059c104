"""Run a command in a container.

The parent (`run`, `start`) prepares, forks and waits; the child (`contain`)
isolates itself step by step and finally becomes the command with execve(2).
"""
import os
import signal
import sys

from udocker import cgroups
# TODO(step 8): Import the process module: the image's command, env, working directory
#   and user.
from udocker import syscalls
from udocker import devices
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
    # TODO(step 8): IMAGE is a root filesystem directory when it is a path (it starts
    #   with / or .); anything else names an image: pull it unless it is stored
    #   (prepare_image), run it on an overlay of its layers, and take the process from
    #   its config (process.from_image).
    args.rootfs = check_rootfs(args.image)
    args.hostname = args.hostname or args.container_id
    args.cgroup = cgroups.create(
        f"udocker-{args.container_id}",
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids_limit,
    )
    try:
        status = start(args)
        if status == 128 + signal.SIGKILL and args.cgroup.oom_killed():
            print(
                f"udocker: the container ran out of memory (--memory {args.memory} bytes)"
                " and the kernel killed it",
                file=sys.stderr,
            )
        return status
    finally:
        args.cgroup.remove()


def start(args):
    """Fork the container's first process, wait for it, and return its exit status."""
    if os.geteuid() != 0:
        enter_user_namespace()
    syscalls.unshare(syscalls.CLONE_NEWPID)
    # TODO(step 8): With -t, make the container's terminal before fork
    #   (terminal.Terminal, given): the child will send us the master end of its pty
    #   over the terminal's socket.
    # Block the forwarded signals until the child's pid is known: a Ctrl-C that
    # arrives in between is then delivered to the handler, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    pid = os.fork()
    if pid == 0:
        child_main(args)
    # TODO(step 8): Wait relaying the container's terminal, if it has one.
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


# TODO(step 8): wait_for also takes the container's terminal (None without -t).
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
    # TODO(step 8): With a terminal, relay it while waiting: terminal.wait(pid) returns
    #   the wait status, as os.waitpid does.
    _, status = os.waitpid(pid, 0)  # retried by Python when a signal interrupts it
    signal.setitimer(signal.ITIMER_REAL, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def contain(args):
    """In the child: isolate this process step by step, then exec the command."""
    args.cgroup.join()
    syscalls.unshare(syscalls.CLONE_NEWUTS)
    syscalls.sethostname(args.hostname)
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    # TODO(step 8): For an image, mount its root filesystem first: the layers under a
    #   fresh writable overlay (mount_overlay).
    enter_rootfs(args.rootfs)
    # TODO(step 8): With -t, the container gets a terminal of its own, now that /dev is
    #   its own (args.terminal.setup_container, given): a new pty's slave as stdin,
    #   stdout, stderr and controlling terminal.
    # TODO(step 8): Become the container's process (process.become: user, working
    #   directory, environment), then run its argv.
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


def enter_rootfs(rootfs):
    """Make rootfs the root mount of this mount namespace, with /proc and /dev."""
    # pivot_root needs the new root to be a mount point: bind-mount it onto itself.
    syscalls.mount(rootfs, rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)
    mount_proc(os.path.join(rootfs, "proc"))
    devices.mount_dev(os.path.join(rootfs, "dev"))
    os.chdir(rootfs)
    # pivot_root(".", ".") stacks the old root on top of the new one, at "/";
    # detaching it leaves the container with no way back to the host's files.
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")


def mount_proc(target):
    """A /proc that shows this PID namespace: the container's processes only."""
    os.makedirs(target, exist_ok=True)
    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("proc", target, "proc", flags)


def enter_user_namespace():
    """Become root of a new user namespace: container uid/gid 0 is our own uid/gid."""
    uid, gid = os.geteuid(), os.getegid()
    try:
        syscalls.unshare(syscalls.CLONE_NEWUSER)
        # An unprivileged process may map just its own ids, and only once it has
        # given up setgroups(2) for good (otherwise it could drop groups).
        write_file("/proc/self/setgroups", "deny")
        write_file("/proc/self/uid_map", f"0 {uid} 1")
        write_file("/proc/self/gid_map", f"0 {gid} 1")
    except PermissionError as error:  # name what failed: it may be the kernel, or the code
        raise UdockerError(
            f"cannot create the user namespace ({error.filename or 'unshare'}: {error.strerror});"
            " if this kernel forbids it to unprivileged users, allow it with"
            " `sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (Ubuntu 24.04)"
            " or `sudo sysctl -w kernel.unprivileged_userns_clone=1`"
        ) from None


def write_file(path, text):
    with open(path, "w") as file:
        file.write(text)


# TODO(step 8): Find the image in the store (pulling it if need be, as `docker run`
#   does), and stack its layers under a writable overlay when the container starts.
