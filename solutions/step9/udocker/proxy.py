"""Publishing a container's port (-p 8080:80) with a userspace proxy, as docker-proxy does.

The waiting parent listens on the host's port (PortProxy); for each
connection it opens one to the container's port and copies bytes both ways
(Splice), all driven by one selector: the parent's wait loop
(network.wait_with).

A socket belongs to the network namespace it was created in, so the
connection to the container is made with a socket created inside the
container's namespace. A small helper process (NamespaceDialer), forked
before the container, joins the container's user and network namespaces with
setns(2) and hands such sockets to the parent over a Unix socket (SCM_RIGHTS).
Why not setns in the parent itself? It would have to setns back into the
host's namespace afterwards, and a rootless parent may not (it has no
privilege over the host's namespace); a process must be single-threaded to
join a user namespace; and a process forked by the parent after the
container would land in the container's PID namespace. The helper works the
same as root and rootless, in every mode.

In step 9 you write PortProxy's listening socket and its accept(); the
socket helper (NamespaceDialer) and the byte copying (Splice) are given.

Docker also adds iptables DNAT rules in bridge mode, so that packets arriving
from outside go straight to the container's address inside the kernel;
docker-proxy remains for the connections DNAT does not see, such as the host's
own connections to 127.0.0.1.
"""
import errno
import os
import selectors
import signal
import socket

from udocker import syscalls
from udocker.errors import UdockerError


class NamespaceDialer:
    """Sockets created inside the container's network namespace, by a helper process.

    Forked before the container exists (so it is in none of the container's
    namespaces, PID namespace included); join(pid) sends it the container's
    /proc/PID/ns/user and /proc/PID/ns/net, which it enters with setns(2) (the
    user namespace only if it is not its own already); then each socket()
    asks it for a new TCP socket, passed back as a file descriptor. The helper
    ends when the parent closes its end (or dies).
    """

    def __init__(self):
        self.channel, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                _serve_sockets(theirs)
            finally:
                os._exit(0)
        theirs.close()

    def join(self, pid):
        """Send the helper the namespaces of process pid; raise OSError if it cannot enter them."""
        fds = [os.open(f"/proc/{pid}/ns/{kind}", os.O_RDONLY | os.O_CLOEXEC) for kind in ("user", "net")]
        try:
            socket.send_fds(self.channel, [b"join"], fds)
        finally:
            for fd in fds:
                os.close(fd)
        answer = self.channel.recv(512).decode()
        if answer != "ok":
            number, _, strerror = answer.partition(" ")
            raise OSError(int(number or errno.EPIPE), strerror or "the socket helper is gone", "setns")

    def socket(self):
        """A new TCP socket in the container's network namespace (not connected yet)."""
        self.channel.send(b"socket")
        _, fds, _, _ = socket.recv_fds(self.channel, 16, 1)
        if not fds:
            raise OSError(errno.EPIPE, "the socket helper is gone")
        return socket.socket(fileno=fds[0])

    def close(self):
        if self.channel is not None:
            self.channel.close()  # the helper reads end-of-file and exits
            self.channel = None
            os.waitpid(self.pid, 0)


def _serve_sockets(channel):
    """The helper's life: join the namespaces it is sent, then make sockets on request."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)  # a Ctrl-C is for the container; we end with the parent
    # Keep nothing of the parent's: above all not its listening sockets.
    keep = channel.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    while True:
        message, fds, _, _ = socket.recv_fds(channel, 16, 2)
        if not message:
            return  # the parent is gone
        if message == b"join":
            user, net = fds
            try:
                if os.fstat(user).st_ino != os.stat("/proc/self/ns/user").st_ino:
                    syscalls.setns(user, syscalls.CLONE_NEWUSER)  # rootless: root over its network namespace
                syscalls.setns(net, syscalls.CLONE_NEWNET)
                channel.send(b"ok")
            except OSError as error:
                channel.send(f"{error.errno} {error.strerror}".encode())
            for fd in fds:
                os.close(fd)
        elif message == b"socket":
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as made:
                socket.send_fds(channel, [b"s"], [made.fileno()])


class PortProxy:
    """One published port: a listening socket on the host; each connection spliced to the container."""

    def __init__(self, port, dialer, target):
        self.port, self.dialer, self.target = port, dialer, target
        self.selector = None
        self.splices = set()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no reason to fail
        try:
            self.listener.bind((port.host_ip, port.host_port))
        except OSError as error:
            self.listener.close()
            raise UdockerError(_bind_error(port, error)) from None
        self.listener.listen(128)
        self.listener.setblocking(False)

    def register(self, selector):
        self.selector = selector
        selector.register(self.listener, selectors.EVENT_READ, self.accept)

    def accept(self, mask):
        """A client connected: connect to the container, splice the two."""
        try:
            client, _ = self.listener.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        except OSError as error:  # out of file descriptors: refuse this one, keep serving
            if error.errno != errno.EMFILE:
                raise
            return
        upstream = None
        try:
            upstream = self.dialer.socket()
            upstream.setblocking(False)
            error = upstream.connect_ex((self.target, self.port.container_port))
            if error not in (0, errno.EINPROGRESS):
                raise OSError(error, os.strerror(error))
        except OSError:
            client.close()  # the client sees its connection closed, as with docker-proxy
            if upstream is not None:
                upstream.close()
            return
        self.splices.add(Splice(self.selector, client, upstream, self.splices.discard))

    def close(self):
        for splice in list(self.splices):
            splice.close()
        if self.selector is not None:
            self.selector.unregister(self.listener)
            self.selector = None
        self.listener.close()


def _bind_error(port, error):
    where = f"{port.host_ip}:{port.host_port}"
    if error.errno == errno.EADDRINUSE:
        return f"cannot publish port {where}: it is already in use; choose another host port (-p OTHER:{port.container_port})"
    if error.errno == errno.EACCES:
        return (f"cannot publish port {where}: permission denied (ports below 1024 need root,"
                " see sysctl net.ipv4.ip_unprivileged_port_start); choose a host port above 1023")
    return f"cannot publish port {where}: {error.strerror}"


class Splice:
    """Copy bytes both ways between two sockets until both sides have finished.

    Each socket is registered with the selector for what it can do next:
    readable when we have room for more of its bytes (one chunk at most is
    held: a slow reader slows the writer down, nothing piles up), writable
    when its peer's bytes wait to be sent to it, or while it is still
    connecting. End-of-file is passed on as a half-close (shutdown(SHUT_WR)),
    so that a client can say "that was all" and still read the answer.
    """

    CHUNK = 1 << 16

    def __init__(self, selector, client, upstream, on_close):
        self.selector, self.on_close = selector, on_close
        self.peer = {client: upstream, upstream: client}
        self.pending = {client: b"", upstream: b""}  # read from this socket, not yet written to its peer
        self.eof = {client: False, upstream: False}  # this socket will send nothing more
        self.shut = {client: False, upstream: False}  # we have half-closed this socket
        self.events = {client: 0, upstream: 0}  # what each is registered for
        self.callbacks = {sock: self._callback(sock) for sock in (client, upstream)}
        self.connecting = upstream  # until its non-blocking connect completes
        self.closed = False
        client.setblocking(False)
        self.update()

    def _callback(self, sock):
        return lambda mask: self.ready(sock, mask)

    def ready(self, sock, mask):
        if self.closed:  # closed by an earlier event of the same select()
            return
        try:
            if sock is self.connecting:
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # how the connect ended
                if error:
                    raise OSError(error, os.strerror(error))
                self.connecting = None
                self.flush(self.peer[sock])
            elif mask & selectors.EVENT_WRITE:
                self.flush(self.peer[sock])
            if mask & selectors.EVENT_READ:
                data = sock.recv(self.CHUNK)
                if data:
                    self.pending[sock] = data
                else:
                    self.eof[sock] = True
                self.flush(sock)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # a reset, a refused connection: end both
            self.close()
            return
        if all(self.eof.values()) and not any(self.pending.values()):
            self.close()
        else:
            self.update()

    def flush(self, source):
        """Send what was read from source to its peer, as much as it takes now; pass end-of-file on."""
        target = self.peer[source]
        if target is self.connecting:
            return
        if self.pending[source]:
            try:
                sent = target.send(self.pending[source])
            except BlockingIOError:
                sent = 0
            self.pending[source] = self.pending[source][sent:]
        if self.eof[source] and not self.pending[source] and not self.shut[target]:
            target.shutdown(socket.SHUT_WR)
            self.shut[target] = True

    def update(self):
        """Register each socket for what it waits for now (and not at all when nothing)."""
        for sock in self.peer:
            wanted = 0
            if not self.eof[sock] and not self.pending[sock] and sock is not self.connecting:
                wanted |= selectors.EVENT_READ
            if self.pending[self.peer[sock]] or sock is self.connecting:
                wanted |= selectors.EVENT_WRITE
            if wanted == self.events[sock]:
                continue
            if not self.events[sock]:
                self.selector.register(sock, wanted, self.callbacks[sock])
            elif not wanted:
                self.selector.unregister(sock)
            else:
                self.selector.modify(sock, wanted, self.callbacks[sock])
            self.events[sock] = wanted

    def close(self):
        if self.closed:
            return
        self.closed = True
        for sock in self.peer:
            if self.events[sock]:
                self.selector.unregister(sock)
            sock.close()
        self.on_close(self)
