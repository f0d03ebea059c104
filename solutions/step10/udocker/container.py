"""Run a command in a container.

The parent (`run`, `start`, `wait_for`) prepares, forks and waits; the child
(`child_main`, `contain`) isolates itself step by step and finally becomes the
command with execve(2). What one container is made of travels between them in
a small `Container` object, which grows a field or two per step.
"""
import os
import selectors
import signal
import sys

from udocker import capabilities
from udocker import cgroups
from udocker import devices
from udocker import netfiles, network
from udocker import lockdown
from udocker import process
from udocker import seccomp
from udocker import syscalls
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
        self.hostname = None  # --hostname, else the id
        self.rootfs = None  # the directory that becomes its /
        self.rootless = os.geteuid() != 0  # decided now: in its user namespace we are uid 0
        self.cgroup = None  # a cgroups.Cgroup, with its limits
        self.image = None  # the stored image (udocker.image.lookup.Image), for an image
        self.lease = None  # the store's lease on it, while the container runs (rmi spares it)
        self.layers = None  # an image's unpacked layers, lowest first (None: IMAGE is a directory)
        self.process = None  # a process.Process: argv, env, working directory, user
        self.terminal = None  # a terminal.Terminal, with -t
        self.network = None  # a network.Network: its namespace, veth and published ports
        self.capabilities = frozenset()  # the capability numbers it keeps (capabilities.resolve)
        self.security = None  # a seccomp.SecurityOptions: seccomp, no_new_privileges, system_paths
        self.privileged = False  # --privileged: every capability, no filter, /sys writable, no nodev


def run(args):
    """Run the container `udocker run` asks for; return its exit status."""
    container = Container(args.command)
    if args.image.startswith(("/", ".")):
        container.rootfs = check_rootfs(args.image)
        container.process = process.from_directory(args)
    else:
        prepare_image(container, args)
    if args.tty:  # a pty of its own; terminal.py loads socket, termios and selectors, for -t only
        from udocker.terminal import Terminal

        container.terminal = Terminal(args.interactive)
    container.hostname = args.hostname or container.id
    lock_down(container, args)
    # From here on we make things on the host (a cgroup, ...). Hold the signals we
    # forward until the container runs, so that none can end us half-way; one that
    # comes meanwhile is waiting for us (abort_if_signalled, wait_for).
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    if container.image:  # `udocker rmi` refuses to remove an image a container runs
        container.lease = hold_image(container)
    container.cgroup = cgroups.create(
        f"udocker-{container.id}",
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids_limit,
    )
    try:
        container.network = network.prepare(args.network, args.publish, container.id)
        status = start(container)
        if status == 128 + signal.SIGKILL and container.cgroup.oom_killed():
            print(
                f"udocker: the container ran out of memory (--memory {args.memory} bytes)"
                " and the kernel killed it",
                file=sys.stderr,
            )
        return status
    finally:
        if container.network:
            container.network.close()
        container.cgroup.remove()
        if container.lease:
            container.lease.release()


def start(container):
    """Fork the container's first process, wait for it, and return its exit status."""
    if container.rootless:
        enter_user_namespace()
    syscalls.unshare(syscalls.CLONE_NEWPID)
    abort_if_signalled()
    pid = os.fork()
    if pid == 0:
        child_main(container)
    try:
        container.network.attach(pid)
    except UdockerError:
        os.waitpid(pid, 0)
        raise
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
    with selectors.DefaultSelector() as selector:
        container.network.register(selector)
        if container.terminal:
            container.terminal.register(selector)
        try:
            status = network.wait_with(pid, selector)
        finally:
            if container.terminal:
                container.terminal.close()  # what the container still had to say, our terminal back
            container.network.close()
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
    container.cgroup.join()
    container.network.enter()
    syscalls.unshare(syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWCGROUP)
    syscalls.unshare(syscalls.CLONE_NEWUTS)
    syscalls.sethostname(container.hostname)
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    if container.layers:
        mount_overlay(container.layers, container.rootfs, container.rootless)
    files = container.network.write_files(network_files_dir(container), container.hostname)
    netfiles.bind(files, container.rootfs, create_missing=bool(container.layers))
    readonly = not container.privileged
    lockdown.mount_sysfs(os.path.join(container.rootfs, "sys"), readonly)
    lockdown.mount_cgroup(os.path.join(container.rootfs, "sys", "fs", "cgroup"), readonly)
    enter_rootfs(container.rootfs)
    lockdown.mount_dev_extras("/dev")
    if not container.privileged:
        lockdown.remount("/", syscalls.MS_NODEV)
        lockdown.remount("/dev", syscalls.MS_NODEV)
    if container.security.system_paths:
        lockdown.lock_system_paths()
    if container.terminal:
        container.terminal.setup_container()
    security, keep = container.security, container.capabilities
    if security.no_new_privileges:
        seccomp.set_no_new_privs()
    if security.seccomp and not security.no_new_privileges:
        seccomp.install(seccomp.default_rules(keep))
    capabilities.drop_bounding(keep)
    capabilities.set_keepcaps(True)
    process.become(container.process, container.hostname)
    argv = container.process.argv
    syscalls.close_range(3)
    capabilities.set_keepcaps(False)
    capabilities.set_process_caps(keep)
    if security.seccomp and security.no_new_privileges:
        seccomp.install(seccomp.default_rules(keep))
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


def network_files_dir(container):
    """A directory on a tmpfs of the container's own mount namespace, for its /etc/hosts and friends.

    An image has one: the scratch tmpfs of mount_overlay (UDOCKER_ROOT/mnt).
    For a directory IMAGE we mount one on its /dev, which the container's own
    /dev (enter_rootfs) covers right after: the files are seen only through
    their bind mounts, and vanish with the container, even after a crash.
    """
    if container.layers:
        return os.path.join(os.path.dirname(container.rootfs), "etc")
    scratch = os.path.join(container.rootfs, "dev")
    os.makedirs(scratch, exist_ok=True)
    flags = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
    syscalls.mount("tmpfs", scratch, "tmpfs", flags, "mode=755,size=64k")
    return scratch


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
    if os.path.samefile(rootfs, "/"):
        raise UdockerError(f"{image!r} is the host's own root directory, which would give the container "
                           f"every file of the host; {hint}")
    if not entries:
        raise UdockerError(f"root filesystem {image!r} is empty; {hint}")
    return rootfs


def lock_down(container, args):
    """What --cap-add, --cap-drop, --security-opt and --privileged ask for, checked before anything runs.

    As docker's: --privileged gives every capability we have, no seccomp filter
    and no masked or read-only /proc and /sys paths.
    """
    container.privileged = args.privileged
    container.security = seccomp.security_options(args.security_opt)
    if args.privileged:
        container.security.seccomp = container.security.system_paths = False
    try:
        container.capabilities = capabilities.resolve(args.cap_add, args.cap_drop, args.privileged)
        if container.security.seccomp:
            seccomp.native_arch()  # a machine we have no syscall table for: say so now
    except ValueError as error:
        raise UdockerError(str(error)) from None


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
    """Write TEXT to the file PATH; an error names PATH (a failed write() alone would not)."""
    try:
        with open(path, "w") as file:
            file.write(text)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None


def prepare_image(container, args):
    """Get IMAGE's layers and config; say where its root filesystem will be mounted."""
    # The image modules load only here, so that `run DIRECTORY` stays quick.
    from udocker.image.lookup import resolve
    from udocker.image.store import default_root

    container.image = image = resolve(args.image)
    container.layers = image.layer_dirs
    container.rootfs = os.path.join(default_root(), "mnt", "rootfs")
    container.process = process.from_image(image.config, args)


def hold_image(container):
    """A lease on the container's image in the store, released when it has run (or when we die)."""
    from udocker.image.store import Store

    return Store().hold(container.image.reference, container.image.digest, container.id)


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
