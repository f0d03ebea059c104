"""A network of its own: --network none|bridge|host, -p publishing, and the handshake.

    none    a new network namespace (CLONE_NEWNET) with only lo, up
    bridge  none, plus a veth pair: eth0 inside, with an address leased from
            10.88.0.0/24 and a default route via the bridge; the other end on the
            host, plugged into the bridge udocker0 (which holds the gateway
            address, 10.88.0.1) and masqueraded to the outside world (root only)
    host    no namespace: the host's network, as in steps 1-8

The parent and the child cooperate, as runc's parent and its init do:

    parent (host namespaces)                 child
    prepare(): bind the -p ports, lease
      an address, create udocker0, NAT
    fork() ------------------------------->  enter(): unshare(CLONE_NEWNET), lo up
                       <------- "ready" ---  (the namespace exists now)
    attach(pid): create the veth pair,
      move one end into /proc/PID/ns/net
                       ---- "go" ------->    rename it eth0, its address, up, the
                                             default route; then the rest of contain()
    wait_with(pid, selector): the child's
      exit (a pidfd) and the port proxies,
      in one event loop
    close(): proxies, veth, lease

An error on either side ends both: a child that fails exits (it reports why,
in one line), the parent reads end-of-file instead of "ready"; a parent that
fails closes its pipe, the child reads end-of-file instead of "go" and exits
silently (125), the parent reports why.

Publishing (-p 8080:80) is the proxy module's job: the waiting parent
listens on the host's port and splices each connection to the container's.

In step 9 you write the namespace and the handshake (enter, attach), the
wiring (set_up_eth0, plug_in, ensure_bridge) and the parent's event loop
(wait_with); the command line, prepare(), close() and the Handshake's pipes
are given, and so are netlink.py (the messages), nat.py (the masquerade
rule), ipam.py (the leases) and netfiles.py (/etc/hosts and friends).
"""
import argparse  # already loaded by the command line
import errno
import os
import select
import sys

from udocker import netlink, syscalls
from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError

MODES = ("none", "bridge", "host")
BRIDGE = "udocker0"


# --------------------------------------------------------------- the command line


def network_mode(text):
    """argparse type of --network: none, bridge or host."""
    if text not in MODES:
        raise argparse.ArgumentTypeError(f"network {text!r} not found: use none, bridge or host")
    return text


class Port:
    """One published port: host_ip:host_port on the host -> container_port in the container."""

    def __init__(self, host_ip, host_port, container_port):
        self.host_ip, self.host_port, self.container_port = host_ip, host_port, container_port

    def __repr__(self):
        return f"{self.host_ip}:{self.host_port}->{self.container_port}/tcp"


def publish(text):
    """argparse type of -p/--publish [IP:]HOSTPORT:CONTAINERPORT[/tcp]: a list of Ports.

    Ranges publish several ports at once: -p 8000-8002:80-82. Use it with
    action="extend", so that -p can be repeated and still give one flat list.
    The error messages are docker's.
    """
    spec, _, proto = text.partition("/")
    if proto and proto.lower() != "tcp":
        raise argparse.ArgumentTypeError(
            f"invalid proto: {proto}" if proto.lower() not in ("udp", "sctp")
            else f"cannot publish {text}: udocker publishes tcp ports only"
        )
    parts = spec.split(":")
    if len(parts) > 3 or spec.startswith("["):
        raise argparse.ArgumentTypeError(f"invalid IP address in {text}: udocker publishes on IPv4 addresses only")
    host_ip, host_ports, container_ports = [""] * (3 - len(parts)) + parts
    if not container_ports:
        raise argparse.ArgumentTypeError(f"no port specified: {text}<empty>")
    container_range = _port_range(container_ports, "containerPort")
    if not host_ports:
        raise argparse.ArgumentTypeError(
            f"no host port in {text}: use HOSTPORT:CONTAINERPORT (udocker does not pick ports at random)"
        )
    host_range = _port_range(host_ports, "hostPort")
    if len(host_range) != len(container_range):
        raise argparse.ArgumentTypeError(
            f"invalid ranges specified for container and host Ports: {container_ports} and {host_ports}"
        )
    host_ip = host_ip or "0.0.0.0"
    _check_local(host_ip)
    return [Port(host_ip, host, container) for host, container in zip(host_range, container_range, strict=True)]


def _port_range(text, what):
    """'80' -> range(80, 81); '8000-8002' -> range(8000, 8003); ports are 1 to 65535."""
    first, _, last = text.partition("-")
    if not (first.isdigit() and (last.isdigit() or not last)):
        raise argparse.ArgumentTypeError(f"invalid {what}: {text}")
    start, end = int(first), int(last or first)
    if start > end:
        raise argparse.ArgumentTypeError(f"invalid {what}: {text}")
    if not 1 <= start <= end <= 65535:
        raise argparse.ArgumentTypeError(f"invalid {what}: {text} (ports are 1 to 65535)")
    return range(start, end + 1)


def _check_local(address):
    """Refuse an IP the host does not have: binding to it would fail (EADDRNOTAVAIL)."""
    import socket

    try:
        socket.inet_pton(socket.AF_INET, address)
    except OSError:
        raise argparse.ArgumentTypeError(f"invalid IP address: {address}") from None
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as error:
            if error.errno == errno.EADDRNOTAVAIL:
                raise argparse.ArgumentTypeError(
                    f"cannot publish on {address}: it is not an address of this host;"
                    " use one of its addresses, 127.0.0.1, or 0.0.0.0 (all of them)"
                ) from None
            raise


# --------------------------------------------------------------- parent and child


class Network:
    """The container's network: made by the parent (prepare, attach, close) and the child (enter)."""

    def __init__(self, mode, ports, container_id):
        self.mode, self.ports, self.container_id = mode, ports, container_id
        self.lease = self.dialer = self.handshake = None
        self.proxies = []
        # veth names: at most 15 bytes (IFNAMSIZ); the container end is renamed eth0.
        self.host_end, self.container_end = f"veth{container_id[:11]}", f"ceth{container_id[:11]}"
        self.veth_made = False

    def enter(self):
        """In the child: a network namespace of its own, lo up; in bridge mode, eth0 set up too."""
        if self.mode == "host":
            return
        self.handshake.child_side()
        try:
            syscalls.unshare(syscalls.CLONE_NEWNET)
            netlink.link_set_up("lo")
        except OSError as error:
            raise UdockerError(f"cannot create the container's network namespace: {error}") from None
        self.handshake.tell_parent()
        if not self.handshake.parent_said_go():
            os._exit(EXIT_RUNTIME_ERROR)  # the parent failed: it reports why, we go quietly
        if self.mode == "bridge":
            self.set_up_eth0()

    def set_up_eth0(self):
        """In the child, bridge mode: ip link set CETH name eth0; ip addr add 10.88.0.2/24 dev eth0;
        ip link set eth0 up; ip route add default via 10.88.0.1."""
        try:
            netlink.link_set_name(self.container_end, "eth0")
            netlink.addr_add("eth0", self.lease.cidr)
            netlink.link_set_up("eth0")
            netlink.route_add_default(self.lease.gateway)
        except OSError as error:
            raise UdockerError(f"cannot set up the container's eth0: {error}") from None

    def write_files(self, directory, hostname):
        """In the child: its /etc/hostname, /etc/hosts and /etc/resolv.conf, written in directory.

        Return {container path: file} for netfiles.bind. /etc/hosts names the
        container on its address in bridge mode; resolv.conf is the host's
        without loopback servers in bridge mode (netfiles says why), the host's
        own in host mode, and none without a way out (none).
        """
        from udocker import netfiles

        address = self.lease.address if self.lease else None
        resolv = {"bridge": True, "host": "host"}.get(self.mode, False)
        return netfiles.write(directory, hostname, address, resolv=resolv)

    def attach(self, pid):
        """In the parent, once the child is forked: give it its veth (bridge), let it go on.

        Return False if the child failed before its namespace existed (it said
        why and exits). On an error of ours, the child is told to give up (it
        exits 125 quietly) and UdockerError is raised: reap the child, then report.
        """
        if self.mode == "host":
            return True
        self.handshake.parent_side()
        if not self.handshake.child_is_ready():
            return False
        try:
            self.plug_in(pid)
        except OSError as error:
            self.handshake.give_up()
            raise UdockerError(f"cannot connect the container to the network: {error}") from None
        except BaseException:
            self.handshake.give_up()
            raise
        self.handshake.tell_child_go()
        return True

    def plug_in(self, pid):
        """The veth pair into the namespace of process pid (bridge mode); the socket helper too (-p)."""
        if self.mode == "bridge":
            netlink.link_add_veth(self.host_end, self.container_end)
            self.veth_made = True
            netlink.link_set_master(self.host_end, BRIDGE)
            netlink.link_set_up(self.host_end)
            netlink.link_set_netns(self.container_end, pid=pid)
        if self.dialer:  # -p: the proxy's sockets are made in pid's network namespace from now on
            self.dialer.join(pid)

    def register(self, selector):
        """Let the parent's event loop run the port proxies."""
        for proxy in self.proxies:
            proxy.register(selector)

    def close(self):
        """In the parent, after the container: close the ports, delete the veth, release the lease."""
        for proxy in self.proxies:
            proxy.close()
        self.proxies = []
        if self.handshake:
            self.handshake.close()
        if self.dialer:
            self.dialer.close()  # it holds the container's namespaces: let them go
            self.dialer = None
        if self.veth_made:
            try:
                netlink.link_del(self.host_end)  # takes eth0 with it, if the namespace has not already
            except OSError as error:
                if error.errno != errno.ENODEV:  # gone already, with the container's namespace
                    raise
            self.veth_made = False
        if self.lease:
            self.lease.release()
            self.lease = None


def prepare(mode, ports, container_id):
    """In the parent, before fork: check the mode, bind the ports, lease an address, make the bridge."""
    if mode == "host":
        if ports:
            print("udocker: warning: published ports are discarded when using host network mode", file=sys.stderr)
        return Network(mode, [], container_id)
    if mode == "bridge" and os.geteuid() != 0:
        raise UdockerError(
            "--network bridge needs root (it creates a bridge and NAT rules on the host);"
            " run as root, or publish ports with -p from the default network (none)"
        )
    net = Network(mode, ports, container_id)
    try:
        target = "127.0.0.1"  # none: the container's own loopback is all there is
        if mode == "bridge":
            from udocker import ipam, nat

            net.lease = ipam.allocate(container_id)
            ensure_bridge(net.lease)
            nat.enable(net.lease.network, BRIDGE)
            target = net.lease.address  # as docker-proxy: the container's address on the bridge
        if ports:
            from udocker import proxy

            net.dialer = proxy.NamespaceDialer()  # now, before the container: see its docstring
            net.proxies = [proxy.PortProxy(port, net.dialer, target) for port in ports]
        net.handshake = Handshake()
    except BaseException:
        net.close()
        raise
    return net


def ensure_bridge(lease):
    """ip link add udocker0 type bridge; ip addr add GATEWAY/24 dev udocker0; ip link set udocker0 up."""
    try:
        netlink.link_add_bridge(BRIDGE)
    except FileExistsError:  # made by an earlier container (or by one starting right now)
        if netlink.link(BRIDGE).kind != "bridge":
            raise UdockerError(f"{BRIDGE} exists and is not a bridge; delete it (ip link del {BRIDGE})") from None
    try:
        netlink.addr_add(BRIDGE, lease.gateway_cidr)
    except FileExistsError:
        pass
    netlink.link_set_up(BRIDGE)


class Handshake:
    """Two pipes, made before fork: the child says "ready", the parent says "go".

    Each side closes the other's ends at once, so that end-of-file means the
    other side is gone: that is how each learns that the other failed.
    """

    def __init__(self):
        self.ready_r, self.ready_w = os.pipe()  # child -> parent
        self.go_r, self.go_w = os.pipe()  # parent -> child

    def child_side(self):
        self._close("ready_r", "go_w")

    def parent_side(self):
        self._close("ready_w", "go_r")

    def tell_parent(self):
        os.write(self.ready_w, b"ready\n")
        self._close("ready_w")

    def child_is_ready(self):
        ready = self._wait_for_ready() == b"ready\n"  # b"": the child died before
        self._close("ready_r")
        return ready

    def _wait_for_ready(self):
        """Read the child's word. The parent holds its signals (container.py), so a wait that
        never ends (a handshake in the wrong order) would hold Ctrl-C too: a signal that came
        ends the wait instead, as container.abort_if_signalled does before the fork, and the
        child, told nothing, gives up."""
        from udocker.container import abort_if_signalled  # loaded already: it imports us

        while not select.select([self.ready_r], [], [], 0.05)[0]:
            try:
                abort_if_signalled()
            except UdockerError as error:
                self.give_up()
                raise UdockerError(f"{error} (while the network handshake waited for the child's \"ready\")",
                                   error.exit_code) from None
        return os.read(self.ready_r, 16)

    def tell_child_go(self):
        os.write(self.go_w, b"go\n")
        self._close("go_w")

    def give_up(self):
        self._close("go_w")  # the child reads end-of-file

    def parent_said_go(self):
        go = os.read(self.go_r, 16) == b"go\n"
        self._close("go_r")
        return go

    def close(self):
        self._close("ready_r", "ready_w", "go_r", "go_w")

    def _close(self, *names):
        for name in names:
            fd = getattr(self, name)
            if fd is not None:
                os.close(fd)
                setattr(self, name, None)


# --------------------------------------------------------------- the parent's wait


def wait_with(pid, selector):
    """Wait for child pid while running what is registered with selector; return its wait status.

    The loop of the waiting parent: the child's exit arrives as a readable
    pidfd (pidfd_open(2)); every other registration's data is a callback,
    called with the event mask. select() sleeps until something happens (no
    busy loop); a signal handler (the forwarding of steps 1-8) runs in the
    middle of it, and Python then retries the select (PEP 475).
    """
    import selectors

    pidfd = os.pidfd_open(pid)
    selector.register(pidfd, selectors.EVENT_READ, None)
    try:
        while True:
            for key, mask in selector.select():
                if key.data is None:  # the pidfd: the child has exited
                    _, status = os.waitpid(pid, 0)
                    return status
                key.data(mask)
    finally:
        selector.unregister(pidfd)
        os.close(pidfd)
