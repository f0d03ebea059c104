# udocker: from step 1
"""Run a command in a container.

The parent (`run`, `start`, `wait_for`) prepares, forks and waits; the child
(`child_main`, `contain`) isolates itself step by step and finally becomes the
command with execve(2). What one container is made of travels between them in
a small `Container` object, which grows a field or two per step.
"""
import os
# >>> step 9 given
import selectors
# <<<
import signal
import sys

# >>> step 10 given
from udocker import capabilities
# <<<
# >>> step 6 given
from udocker import cgroups
# <<<
# >>> step 4 given
from udocker import devices
# <<<
# >>> step 9 given
from udocker import netfiles, network
# <<<
# >>> step 10 given
from udocker import lockdown
# <<<
# >>> step 8 given
from udocker import process
# <<<
# >>> step 10 given
from udocker import seccomp
# <<<
# >>> step 2 given
from udocker import syscalls
# <<<
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
        # >>> step 2 given
        self.hostname = None  # --hostname, else the id
        # <<<
        # >>> step 3 given
        self.rootfs = None  # the directory that becomes its /
        # <<<
        # >>> step 5 given
        self.rootless = os.geteuid() != 0  # decided now: in its user namespace we are uid 0
        # <<<
        # >>> step 6 given
        self.cgroup = None  # a cgroups.Cgroup, with its limits
        # <<<
        # >>> step 8 given
        self.image = None  # the stored image (udocker.image.lookup.Image), for an image
        self.lease = None  # the store's lease on it, while the container runs (rmi spares it)
        self.layers = None  # an image's unpacked layers, lowest first (None: IMAGE is a directory)
        self.process = None  # a process.Process: argv, env, working directory, user
        self.terminal = None  # a terminal.Terminal, with -t
        # <<<
        # >>> step 9 given
        self.network = None  # a network.Network: its namespace, veth and published ports
        # <<<
        # >>> step 10 given
        self.capabilities = frozenset()  # the capability numbers it keeps (capabilities.resolve)
        self.security = None  # a seccomp.SecurityOptions: seccomp, no_new_privileges, system_paths
        self.privileged = False  # --privileged: every capability, no filter, /sys writable, no nodev
        # <<<


def run(args):
    """Run the container `udocker run` asks for; return its exit status."""
    container = Container(args.command)
    # >>> step 8: IMAGE is a root filesystem directory when it is a path (it starts with / or .).
    # ... Anything else names an image: pull it unless it is stored and run it on an overlay of its
    # ... layers (prepare_image). Either way the process comes from
    # ... process.from_directory/from_image.
    if args.image.startswith(("/", ".")):
        container.rootfs = check_rootfs(args.image)
        container.process = process.from_directory(args)
    else:
        prepare_image(container, args)
    # >>> step 8 given
    if args.tty:  # a pty of its own; terminal.py loads socket, termios and selectors, for -t only
        from udocker.terminal import Terminal

        container.terminal = Terminal(args.interactive)
    # <<<
    # --- before
    # >>> step 3: Check that IMAGE is a directory with something in it, and keep its absolute
    # ... path as the container's rootfs (check_rootfs).
    container.rootfs = check_rootfs(args.image)
    # <<<
    # <<<
    # >>> step 2: The hostname is --hostname, or else the container id.
    container.hostname = args.hostname or container.id
    # <<<
    # >>> step 10 given
    lock_down(container, args)
    # <<<
    # From here on we make things on the host (a cgroup, ...). Hold the signals we
    # forward until the container runs, so that none can end us half-way; one that
    # comes meanwhile is waiting for us (abort_if_signalled, wait_for).
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
    # >>> step 8 given
    if container.image:  # `udocker rmi` refuses to remove an image a container runs
        container.lease = hold_image(container)
    # <<<
    # >>> step 6: Create the container's cgroup with its limits (cgroups.create), start the
    # ... container, and remove the cgroup once it has exited, whatever happens. Explain an
    # ... out-of-memory kill (cgroup.oom_killed).
    container.cgroup = cgroups.create(
        f"udocker-{container.id}",
        memory=args.memory,
        cpus=args.cpus,
        pids=args.pids_limit,
    )
    try:
        # >>> step 9: The network's host side, before anything forks (network.prepare): the -p
        # ... ports bound, a socket helper started, and in bridge mode an address leased and
        # ... udocker0 made.
        container.network = network.prepare(args.network, args.publish, container.id)
        # <<<
        status = start(container)
        if status == 128 + signal.SIGKILL and container.cgroup.oom_killed():
            print(
                f"udocker: the container ran out of memory (--memory {args.memory} bytes)"
                " and the kernel killed it",
                file=sys.stderr,
            )
        return status
    finally:
        # >>> step 9: Whatever happens, take the network down again (container.network.close:
        # ... ports, helper, veth, lease), if it was made: prepare may have failed.
        if container.network:
            container.network.close()
        # <<<
        container.cgroup.remove()
        # >>> step 8 given
        if container.lease:
            container.lease.release()
        # <<<
    # --- before
    return start(container)
    # <<<


def start(container):
    """Fork the container's first process, wait for it, and return its exit status."""
    # >>> step 5: Not root? Then make ourselves root of a new user namespace first: that is what
    # ... lets an unprivileged user create the other namespaces (enter_user_namespace).
    if container.rootless:
        enter_user_namespace()
    # <<<
    # >>> step 4: A new PID namespace: unshare(CLONE_NEWPID) puts our *next child* in it, as its
    # ... PID 1.
    syscalls.unshare(syscalls.CLONE_NEWPID)
    # <<<
    abort_if_signalled()
    # >>> step 1: fork(2) a child that runs child_main(container) and never returns; in the
    # ... parent, wait for it (wait_for) and return its exit status.
    pid = os.fork()
    if pid == 0:
        child_main(container)
    # >>> step 9: Plug the child in (container.network.attach(pid): the parent's side of the
    # ... handshake). When that raises, the child gives up by itself: reap it (os.waitpid), then
    # ... let the error go on.
    try:
        container.network.attach(pid)
    except UdockerError:
        os.waitpid(pid, 0)
        raise
    # <<<
    return wait_for(container, pid)
    # --- before
    raise UdockerError("starting a container is not implemented yet: that is step 1")
    # <<<


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
        # >>> step 1: Pass the signal on to the container (os.kill). It may have exited and
        # ... been reaped just now: then there is nobody to tell (ProcessLookupError).
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        # <<<
        stop_timer.signalled(signum)

    # >>> step 1: Make forward() the handler of each of FORWARDED_SIGNALS (signal.signal), then
    # ... unblock them (run() blocked them: one that came meanwhile is delivered now).
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    # <<<
    # >>> step 9: Wait in an event loop: one selector (selectors.DefaultSelector) for the
    # ... published ports (container.network.register) and, with -t, the terminal
    # ... (container.terminal.register); network.wait_with(pid, selector) runs it until the
    # ... child exits. Then, on every path and while the selector is open, close the terminal
    # ... (with -t) and the network.
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
    # --- before
    # >>> step 8: With -t, the parent relays the container's terminal while it waits:
    # ... container.terminal.wait(pid) returns the wait status, as os.waitpid does.
    if container.terminal:
        status = container.terminal.wait(pid)
    else:
        _, status = os.waitpid(pid, 0)  # retried by Python when a signal interrupts it
    # --- before
    _, status = os.waitpid(pid, 0)  # retried by Python when a signal interrupts it
    # <<<
    # <<<
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)  # pid is gone: nobody to forward to
    stop_timer.cancel()
    # >>> step 1: Turn the wait status into an exit status: the command's exit code, or 128+N when
    # ... signal N killed it (os.waitstatus_to_exitcode returns -N then).
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
    # --- before
    return 0
    # <<<


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
    # >>> step 6: Join the container's cgroup before anything else, so that all the container does
    # ... is counted.
    container.cgroup.join()
    # <<<
    # >>> step 9: A network of its own (container.network.enter: the namespace, the handshake,
    # ... eth0), made inside the user namespace the parent made (so that the container's root
    # ... owns it) and before the mounts.
    container.network.enter()
    # <<<
    # >>> step 10: Two more namespaces (unshare(2)): IPC (CLONE_NEWIPC: System V IPC and POSIX
    # ... message queues of its own) and cgroup (CLONE_NEWCGROUP: the cgroup we are in becomes the
    # ... root of all it sees of cgroups, so it comes after the cgroup join).
    syscalls.unshare(syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWCGROUP)
    # <<<
    # >>> step 2: A hostname of its own: a new UTS namespace (unshare(2) with CLONE_NEWUTS), then
    # ... sethostname(2).
    syscalls.unshare(syscalls.CLONE_NEWUTS)
    syscalls.sethostname(container.hostname)
    # <<<
    # >>> step 4: A mount table of its own: a new mount namespace (CLONE_NEWNS) in which every mount
    # ... is made private (mount(2) with MS_REC | MS_PRIVATE), so that nothing we mount propagates
    # ... to the host. Then switch into the root filesystem with pivot_root (enter_rootfs) instead
    # ... of chroot.
    syscalls.unshare(syscalls.CLONE_NEWNS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    # >>> step 8: For an image, mount its root filesystem first: the layers under a fresh writable
    # ... overlay (mount_overlay).
    if container.layers:
        mount_overlay(container.layers, container.rootfs, container.rootless)
    # <<<
    # >>> step 9: Its own /etc/hostname, /etc/hosts (and /etc/resolv.conf): written by
    # ... container.network.write_files in network_files_dir(container), then bind-mounted over
    # ... the rootfs's with netfiles.bind (create_missing only on an image's overlay: never
    # ... write into a directory IMAGE), before pivot_root hides the host's side.
    files = container.network.write_files(network_files_dir(container), container.hostname)
    netfiles.bind(files, container.rootfs, create_missing=bool(container.layers))
    # <<<
    # >>> step 10: The kernel's views, on the root filesystem while the host's mount table is still
    # ... there to read: /sys (lockdown.mount_sysfs) and the container's own cgroups on
    # ... /sys/fs/cgroup (lockdown.mount_cgroup), read-only unless --privileged. enter_rootfs's
    # ... recursive bind mount of the rootfs takes them along.
    readonly = not container.privileged
    lockdown.mount_sysfs(os.path.join(container.rootfs, "sys"), readonly)
    lockdown.mount_cgroup(os.path.join(container.rootfs, "sys", "fs", "cgroup"), readonly)
    # <<<
    enter_rootfs(container.rootfs)
    # >>> step 10: Now that / and /dev are the container's: docker's /dev extras
    # ... (lockdown.mount_dev_extras); unless --privileged, nodev on / and /dev (lockdown.remount),
    # ... so that no device node it makes can be opened; then the read-only and masked /proc and
    # ... /sys paths (lockdown.lock_system_paths), unless --security-opt systempaths=unconfined.
    lockdown.mount_dev_extras("/dev")
    if not container.privileged:
        lockdown.remount("/", syscalls.MS_NODEV)
        lockdown.remount("/dev", syscalls.MS_NODEV)
    if container.security.system_paths:
        lockdown.lock_system_paths()
    # <<<
    # >>> step 8: With -t, give the container its terminal now that /dev is its own
    # ... (container.terminal.setup_container: a pty of its own devpts as stdio and
    # ... controlling terminal).
    if container.terminal:
        container.terminal.setup_container()
    # <<<
    # --- before
    # >>> step 3: Make the container's rootfs the root directory with chroot(2), then chdir("/"):
    # ... chroot does not move the working directory, which would stay outside.
    os.chroot(container.rootfs)
    os.chdir("/")
    # <<<
    # <<<
    # >>> step 10: Still root, in runc's order: no_new_privs if asked (seccomp.set_no_new_privs);
    # ... without it the seccomp filter now (seccomp.install), while we hold the CAP_SYS_ADMIN that
    # ... loading it needs; the bounding set (capabilities.drop_bounding), while we hold
    # ... CAP_SETPCAP; and PR_SET_KEEPCAPS (set_keepcaps), so that the user switch keeps the
    # ... permitted set.
    security, keep = container.security, container.capabilities
    if security.no_new_privileges:
        seccomp.set_no_new_privs()
    if security.seccomp and not security.no_new_privileges:
        seccomp.install(seccomp.default_rules(keep))
    capabilities.drop_bounding(keep)
    capabilities.set_keepcaps(True)
    # <<<
    # >>> step 8: Become the container's process (process.become: user, working directory,
    # ... environment), then run its argv.
    process.become(container.process, container.hostname)
    argv = container.process.argv
    # --- before
    argv = container.command
    # <<<
    # >>> step 3: Close every file descriptor above 2 (syscalls.close_range): one that our caller
    # ... left open would be the container's way back to the host's files, whatever its root.
    syscalls.close_range(3)
    # <<<
    # >>> step 10: Last, as the container's user: keepcaps off, the permitted and effective sets
    # ... exactly what it keeps (capabilities.set_process_caps: capset(2)), and with no_new_privs
    # ... the filter now, so that it judges nothing of ours but execve.
    capabilities.set_keepcaps(False)
    capabilities.set_process_caps(keep)
    if security.seccomp and security.no_new_privileges:
        seccomp.install(seccomp.default_rules(keep))
    # <<<
    execute(argv)


def execute(argv):
    """Replace this process with the command (execvp(3)); raise UdockerError when that fails."""
    # >>> step 1: Run the command with os.execvp. When it fails, raise UdockerError with exit
    # ... status 127 (not found: say why with not_found) or 126 (found but not executable).
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
    # --- before
    raise UdockerError("executing the command is not implemented yet: that is step 1")
    # <<<


# >>> step 9 given
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
# <<<


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


# >>> step 3: Check the root filesystem before starting: it must be a directory, not the host's /,
# ... and not an empty one.
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
# <<<


# >>> step 10 given
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
# <<<


# >>> step 4: Switch into the root filesystem for good: mount the container's own /proc in it
# ... (mount_proc) and its /dev (devices.mount_dev, given), then pivot_root(2) into it and detach
# ... the host's old root.
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
# <<<


# >>> step 5: Enter a new user namespace and map uid and gid 0 in it to our own uid and gid
# ... (user_namespaces(7)): write 'deny' to /proc/self/setgroups, then the uid_map and gid_map
# ... files (write_file, given, names the file that failed).
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
# <<<


def write_file(path, text):
    """Write TEXT to the file PATH; an error names PATH (a failed write() alone would not)."""
    try:
        with open(path, "w") as file:
            file.write(text)
    except OSError as error:
        raise type(error)(error.errno, error.strerror, path) from None


# >>> step 8: Find the image in the store (pulling it if need be, as `docker run` does), and stack
# ... its layers under a writable overlay when the container starts.
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
# <<<
