"""A terminal of the container's own: `udocker run -t` (and `-it`).

Given code. A terminal here is a pty (pty(7)): a pair of character devices.
Programs read and write the *slave* end, /dev/pts/N, as their terminal;
whoever holds the *master* end plays keyboard and screen. Between the two
sits the kernel's line discipline: it echoes what is typed, edits lines, turns
Ctrl-C into SIGINT for the terminal's foreground process group (job control),
and keeps the window size, telling the foreground group of a change with
SIGWINCH.

Like runc with a console socket, the container makes its pty itself, from a
devpts of its own mounted on its /dev/pts (so `tty` says /dev/pts/0, and the
host's ptys are out of reach), and passes the master to the runtime over a
Unix socket (SCM_RIGHTS, unix(7)). The runtime then puts its own terminal in
raw mode, so that every key reaches the container's line discipline instead
of ours, and relays: our stdin to the master (only with -i, as docker does)
and the master to our stdout.

    terminal = Terminal(interactive)     # in the parent, before fork
    terminal.setup_container()           # in the child, after pivot_root (mounts /dev/pts if need be)
    status = terminal.wait(pid)          # in the parent: relay until pid exits

`wait` is a small event loop around a selector; a runtime with a loop of its
own plugs the terminal into it with `register(selector)` (each key's data is
the callback to call with the ready events) and ends with `close()`.
"""
import errno
import fcntl
import os
import selectors
import signal
import socket
import struct
import termios
import tty

from udocker import syscalls
from udocker.errors import UdockerError

# ioctl(2) numbers the termios module lacks (asm-generic/ioctls.h: x86, arm, riscv).
TIOCGPTN = 0x80045430  # the number N of a master's slave, /dev/pts/N
TIOCSPTLCK = 0x40045431  # lock (1) or unlock (0) the slave: it is born locked
TTY_GROUP = 5  # the tty group of most images (docker's devpts mounts use gid=5 too)
BUFFER = 65536


class Terminal:
    """A pty for the container, and the runtime's side of it."""

    def __init__(self, interactive, stdin=0, stdout=1):
        if interactive and not os.isatty(stdin):
            raise UdockerError(
                "the input device is not a TTY (-it needs a terminal on stdin);"
                " run it from a terminal, or drop -t to pass stdin as it is"
            )
        self.interactive = interactive
        self.stdin, self.stdout = stdin, stdout
        # Our terminal, whose window size the container's follows.
        self.host = next((fd for fd in (stdin, stdout) if os.isatty(fd)), None)
        self.socket, self.child_socket = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.master = None
        self.selector = None
        self.saved_mode = None  # our terminal's termios, while it is raw
        self.old_winch = None  # the SIGWINCH handler we replaced
        self.typed = bytearray()  # keys read from stdin, not yet taken by the master
        self.stdin_open = interactive

    # ------------------------------------------------------------------ in the container

    def setup_container(self):
        """In the child, after pivot_root, still root: a new pty, its slave on 0, 1 and 2.

        The slave becomes the controlling terminal of a new session, so that
        the shell's job control works; the master goes to the runtime.
        """
        self.socket.close()  # the parent's end
        if not os.path.exists("/dev/pts/ptmx"):  # step 10's lockdown mounts it with /dev's other extras
            mount_devpts("/dev/pts")
            os.symlink("pts/ptmx", "/dev/ptmx")  # so that /dev/ptmx is this devpts's multiplexer
        master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY)  # a new pair: its master end
        fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt(3)
        (number,) = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, bytes(4)))  # ptsname(3)
        slave = os.open(f"/dev/pts/{number}", os.O_RDWR | os.O_NOCTTY)
        # Hand the master over first: if anything below fails, our stderr is still
        # the runtime's, and the message shows.
        socket.send_fds(self.child_socket, [b"m"], [master])
        os.close(master)
        self.child_socket.close()
        if os.getsid(0) != os.getpid():  # child_main made us a session leader already
            os.setsid()  # a new session, with no controlling terminal...
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)  # ...until we take the slave as ours
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)

    # ------------------------------------------------------------------ in the runtime

    def wait(self, pid):
        """Relay the terminal until process pid exits; return its wait status, as os.waitpid does."""
        exited = False

        def on_exit(events):
            nonlocal exited
            exited = True

        pidfd = os.pidfd_open(pid)  # readable once the process has exited (pidfd_open(2))
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(pidfd, selectors.EVENT_READ, on_exit)
                self.register(selector)
                try:
                    while not exited:
                        for key, events in selector.select():  # retried after a signal (PEP 475)
                            key.data(events)
                finally:
                    self.close()
        finally:
            os.close(pidfd)
        return os.waitpid(pid, 0)[1]

    def register(self, selector):
        """Watch the terminal with selector (after fork): each key's data is its callback(events)."""
        self.selector = selector
        self.child_socket.close()  # the child has its copy: when it dies, ours sees the end
        selector.register(self.socket, selectors.EVENT_READ, self.receive_master)

    def close(self):
        """Relay what the container still had to say, give our terminal back as it was, let go of all.

        Call it on every path (it may be called twice): the user's terminal
        must never stay raw.
        """
        try:
            if self.old_winch is not None:
                signal.signal(signal.SIGWINCH, self.old_winch)
                self.old_winch = None
            self.drain()
        finally:
            if self.saved_mode is not None:
                termios.tcsetattr(self.stdin, termios.TCSADRAIN, self.saved_mode)
                self.saved_mode = None
            for fd in (self.master, self.stdin, self.socket):
                self.watch(fd, 0, None)
            if self.master is not None:
                master, self.master = self.master, None
                os.close(master)
            if self.socket is not None:
                self.socket.close()
                self.socket = None
            self.child_socket.close()

    # ------------------------------------------------------------------ the relay

    def receive_master(self, events):
        """The child sent the master (or died before it could: then we get nothing)."""
        _, fds, _, _ = socket.recv_fds(self.socket, 1, 1)
        self.watch(self.socket, 0, None)
        self.socket.close()
        self.socket = None
        if fds:  # without it, the child has said why on stderr: there is nothing to relay
            self.attach(fds[0])

    def attach(self, master):
        """Start relaying: our terminal raw, the container's window as big as ours."""
        self.master = master
        os.set_inheritable(master, False)  # what recvmsg(2) gives is inheritable
        os.set_blocking(master, False)  # never wait on the container: the loop has others to serve
        if self.host is not None:
            self.old_winch = signal.signal(signal.SIGWINCH, self.copy_window_size)
            self.copy_window_size()
        if self.interactive:
            # Save the mode first, so that close() restores it even if setraw fails half-way.
            self.saved_mode = termios.tcgetattr(self.stdin)
            tty.setraw(self.stdin, termios.TCSANOW)  # TCSANOW: keys typed ahead are kept
        self.update()

    def copy_window_size(self, signum=None, frame=None):
        """Give the container's terminal our window size; the kernel sends SIGWINCH inside."""
        if self.master is None:
            return
        try:
            size = fcntl.ioctl(self.host, termios.TIOCGWINSZ, bytes(8))  # rows, columns, pixels
            fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)
        except OSError:
            pass  # our terminal went away: nothing to copy

    def on_master(self, events):
        if events & selectors.EVENT_WRITE:
            self.pass_typed_keys()
        if events & selectors.EVENT_READ:
            self.copy_output()
        self.update()

    def on_stdin(self, events):
        try:
            data = os.read(self.stdin, BUFFER)
        except OSError:  # EIO: our terminal hung up
            data = b""
        if data:
            self.typed += data
            self.pass_typed_keys()
        else:
            self.stdin_open = False  # the end of our input: nothing more to pass on
        self.update()

    def pass_typed_keys(self):
        try:
            written = os.write(self.master, self.typed)
        except BlockingIOError:  # the container's input queue is full: wait for EVENT_WRITE
            return
        except OSError:  # EIO: nobody holds the slave any more
            written = len(self.typed)
        del self.typed[:written]

    def copy_output(self):
        """Copy what the master has to our stdout; False when it has nothing right now, or ever again."""
        try:
            data = os.read(self.master, BUFFER)
        except BlockingIOError:
            return False
        except OSError as error:
            if error.errno != errno.EIO:
                raise
            data = b""  # EIO: every process in the container has closed the slave
        if not data or not write_all(self.stdout, data):
            self.hang_up()
            return False
        return True

    def hang_up(self):
        """Let go of the master: the container has closed its terminal, or our stdout is gone.

        In the second case the container's terminal hangs up, as when a terminal
        window is closed: its writes fail with EIO, its session gets SIGHUP.
        """
        self.watch(self.master, 0, None)
        master, self.master = self.master, None  # None first: the SIGWINCH handler looks at it
        os.close(master)
        self.stdin_open = False  # nobody to pass keys to

    def drain(self):
        """After the container's exit: the rest of its output, up to the end of the slave."""
        if self.socket is not None and self.master is None:  # it may have sent the master and died
            self.socket.setblocking(False)
            try:
                _, fds, _, _ = socket.recv_fds(self.socket, 1, 1)
            except BlockingIOError:
                fds = []
            if fds:
                self.master = fds[0]
                os.set_blocking(self.master, False)
        while self.master is not None and self.copy_output():
            pass

    def update(self):
        """Watch what there is to watch: the master always, stdin while keys can go somewhere."""
        if self.selector is None:
            return
        if self.master is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.typed else 0)
            self.watch(self.master, events, self.on_master)
        want_keys = self.stdin_open and self.master is not None and not self.typed
        self.watch(self.stdin, selectors.EVENT_READ if want_keys else 0, self.on_stdin)

    def watch(self, fd, events, callback):
        """Have the selector watch fd for events, with callback as its data (0: stop watching it)."""
        if self.selector is None or fd is None:
            return
        watched = fd in self.selector.get_map()
        if events and watched:
            self.selector.modify(fd, events, callback)
        elif events:
            self.selector.register(fd, events, callback)
        elif watched:
            self.selector.unregister(fd)


def mount_devpts(target):
    """Mount a devpts of the container's own on target: its ptys are numbered from 0, the host's are not in it.

    newinstance: not the host's ptys; ptmxmode: anyone in the container may make
    a pty; mode, gid: a new slave is rw for its owner, writable for the tty group
    (when that group exists here: rootless, only gid 0 is mapped).
    """
    os.makedirs(target, exist_ok=True)
    options = "newinstance,ptmxmode=0666,mode=0620"
    if gid_is_mapped(TTY_GROUP):
        options += f",gid={TTY_GROUP}"
    syscalls.mount("devpts", target, "devpts", syscalls.MS_NOSUID | syscalls.MS_NOEXEC, options)


def gid_is_mapped(gid):
    """Is gid a group id of our user namespace (user_namespaces(7): /proc/self/gid_map)?"""
    with open("/proc/self/gid_map") as file:
        for line in file:
            inside, _, count = (int(field) for field in line.split())
            if inside <= gid < inside + count:
                return True
    return False


def write_all(fd, data):
    """Write all of data to fd (a blocking one: our stdout); False when fd is gone."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:  # a non-blocking stdout we were given: wait until it takes more
            with selectors.DefaultSelector() as probe:
                probe.register(fd, selectors.EVENT_WRITE)
                probe.select()
        except OSError:  # EPIPE, EIO: whoever read our stdout is gone
            return False
    return True
