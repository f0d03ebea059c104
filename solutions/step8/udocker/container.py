"""Run a command in a container.

The parent (`run`, `start`) prepares, forks and waits; the child (`contain`)
isolates itself step by step and finally becomes the command with execve(2).
"""
import os
import signal
import sys

from udocker import cgroups
from udocker import process
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
    if args.image.startswith(("/", ".")):
        args.rootfs = check_rootfs(args.image)
        args.layers = None
        args.process = process.from_directory(args)
    else:
        prepare_image(args)
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
    args.cgroup.join()
    syscalls.unshare(syscalls.CLONE_NEWUTS)
    syscalls.sethostname(args.hostname)
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    if args.layers:
        mount_overlay(args.layers, args.rootfs, args.rootless)
    enter_rootfs(args.rootfs)
    process.become(args.process, args.hostname)
    execute(args.process.argv)


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


def prepare_image(args):
    """Get IMAGE's layers and config; say where its root filesystem will be mounted."""
    # The image modules load only here, so that `run DIRECTORY` stays quick.
    from udocker.image.lookup import resolve
    from udocker.image.store import Store, default_root

    image = resolve(args.image)
    args.lease = Store().hold(image.reference, image.digest, args.container_id)  # rmi spares it while it runs
    args.layers = image.layer_dirs
    args.rootfs = os.path.join(default_root(), "mnt", "rootfs")
    args.rootless = os.geteuid() != 0  # decided now: inside the user namespace we are uid 0
    args.process = process.from_image(image.config, args)


def mount_overlay(layers, rootfs, rootless):
    """Stack the image's layers under a writable layer, at rootfs (overlayfs).

    The writable layer lives on a tmpfs mounted in the container's own mount
    namespace: when the container's last process exits, the namespace and the
    tmpfs go with it, so nothing is left to clean up, even after a crash.
    """
    scratch = os.path.dirname(rootfs)
    os.makedirs(scratch, exist_ok=True)  # on the host's disk; empty there, for good
    syscalls.mount("tmpfs", scratch, "tmpfs", 0, "mode=755")
    upper, work = os.path.join(scratch, "upper"), os.path.join(scratch, "work")
    for directory in (upper, work, rootfs):
        os.mkdir(directory)
    # overlayfs lists the lower layers topmost first; an image lists them base first.
    options = f"lowerdir={':'.join(reversed(layers))},upperdir={upper},workdir={work}"
    if rootless:  # an unprivileged pull marks opaque directories with user.* xattrs
        options += ",userxattr"
    syscalls.mount("overlay", rootfs, "overlay", 0, options)
