"""Network interfaces, addresses and routes through rtnetlink, as `ip` does it.

The kernel configures networking through netlink (see `man 7 netlink` and
`man 7 rtnetlink`): a socket on which a program sends request messages and
reads back answers. `ip link add ...` is one message; so is each function
here, named after the `ip` command it replaces:

    link_add_veth("veth0", "veth1")   ip link add veth0 type veth peer name veth1
    link_set_netns("veth1", pid=42)   ip link set veth1 netns 42
    addr_add("eth0", "10.88.0.2/24")  ip addr add 10.88.0.2/24 dev eth0

A message is a header (nlmsghdr) followed by a fixed struct (ifinfomsg for
links, ifaddrmsg for addresses, rtmsg for routes) and then attributes: (length,
type, value) records padded to 4 bytes, which may nest. The kernel answers
every request that asks for it (NLM_F_ACK) with an error message whose error
code is 0 on success or -errno; that is raised as OSError(errno), like the os
module does. Everything happens in the network namespace of the calling thread
at the time the socket is created.

This module is given: the workshop is about using network namespaces, not
about encoding netlink messages.
"""
import _socket  # the socket module's C core: `import socket` also loads enum and selectors (~8 ms)
import errno
import os
import struct

# Message types, from <linux/rtnetlink.h> and <linux/netlink.h>.
NLMSG_ERROR = 2
NLMSG_DONE = 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

# Header flags.
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300  # all the objects of a kind, not one
NLM_F_EXCL = 0x200  # with CREATE: fail with EEXIST rather than change an existing one
NLM_F_CREATE = 0x400

# Link attributes (IFLA_*), from <linux/if_link.h>.
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18  # nested: IFLA_INFO_KIND ("veth", "bridge"), IFLA_INFO_DATA
IFLA_NET_NS_PID = 19
IFLA_NET_NS_FD = 28
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1  # in a veth's IFLA_INFO_DATA: an ifinfomsg and attributes for the peer

# Link flags (ifi_flags), from <linux/if.h>.
IFF_UP = 0x1
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_LOWER_UP = 0x10000

# Address attributes (IFA_*), from <linux/if_addr.h>.
IFA_ADDRESS = 1
IFA_LOCAL = 2

# Route fields and attributes (RTA_*), from <linux/rtnetlink.h>.
RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route add` records as the route's origin
RT_SCOPE_UNIVERSE = 0
RTN_UNICAST = 1

OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

# The fixed structs, in the machine's byte order ("=": no padding of their own).
NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence number, port id
NLMSGERR = struct.Struct("=i")  # -errno (0: success), followed by the request's header
IFINFOMSG = struct.Struct("=BxHiII")  # family, (pad), device type, index, flags, change mask
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefix length, flags, scope, link index
RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst len, src len, tos, table, protocol, scope, type, flags
RTATTR = struct.Struct("=HH")  # attribute length (header included), type


# --------------------------------------------------------------- encoding


def attr(kind, value):
    """One attribute: its header, its value, padding to a multiple of 4 bytes."""
    length = RTATTR.size + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def attr_str(kind, text):
    return attr(kind, text.encode() + b"\0")  # strings are NUL-terminated


def attr_u32(kind, number):
    return attr(kind, struct.pack("=I", number))


def parse_attrs(data):
    """Attributes -> {type: value} (the last one wins; a nested value stays bytes)."""
    attrs = {}
    while len(data) >= RTATTR.size:
        length, kind = RTATTR.unpack_from(data)
        if length < RTATTR.size:
            break
        attrs[kind & 0x3FFF] = data[RTATTR.size:length]  # the top bits flag nesting and byte order
        data = data[(length + 3) & ~3:]
    return attrs


def ip_bytes(address, context=None):
    """'10.88.0.2' -> (AF_INET, 4 bytes); an IPv6 address -> (AF_INET6, 16 bytes)."""
    family = _socket.AF_INET6 if ":" in address else _socket.AF_INET
    try:
        return family, _socket.inet_pton(family, address)
    except OSError:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), context or address) from None


def ip_text(family, raw):
    return _socket.inet_ntop(family, raw)


# --------------------------------------------------------------- the socket


class Netlink:
    """A NETLINK_ROUTE socket: send requests, check the kernel's answers.

        with Netlink() as nl:
            nl.request(RTM_NEWLINK, IFINFOMSG.pack(...) + attrs)
    """

    def __init__(self):
        self.sock = _socket.socket(
            _socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, _socket.NETLINK_ROUTE
        )
        self.sock.bind((0, 0))  # port id 0: the kernel picks one for us
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def send(self, kind, flags, payload):
        """Send one request message; return its sequence number."""
        self.seq += 1
        header = NLMSGHDR.pack(NLMSGHDR.size + len(payload), kind, NLM_F_REQUEST | flags, self.seq, 0)
        self.sock.send(header + payload)
        return self.seq

    def replies(self, seq, context=None):
        """Yield (type, body) of the kernel's answers to request seq, up to the last.

        An error message ends the answer: raised as OSError unless it is 0,
        the acknowledgement. NLMSG_DONE ends a dump.
        """
        while True:
            data = self.sock.recv(1 << 16)
            while len(data) >= NLMSGHDR.size:
                length, kind, _flags, msg_seq, _port = NLMSGHDR.unpack_from(data)
                body, data = data[NLMSGHDR.size:length], data[(length + 3) & ~3:]
                if msg_seq != seq:
                    continue  # the answer to an earlier request, or a notification
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (code,) = NLMSGERR.unpack_from(body)
                    if code:
                        raise OSError(-code, os.strerror(-code), context)
                    return
                yield kind, body

    def request(self, kind, payload, flags=0, context=None):
        """Send a request that changes something; wait for its acknowledgement."""
        seq = self.send(kind, flags | NLM_F_ACK, payload)
        for _ in self.replies(seq, context):
            pass

    def dump(self, kind, payload):
        """Send a dump request; return the bodies of every object in the answer."""
        seq = self.send(kind, NLM_F_DUMP, payload)
        return [body for _, body in self.replies(seq)]


def _request(kind, payload, flags=0, context=None):
    with Netlink() as nl:
        nl.request(kind, payload, flags, context)


def _ifinfo(index=0, flags=0, change=0):
    return IFINFOMSG.pack(_socket.AF_UNSPEC, 0, index, flags, change)


def _linkinfo(kind, data=b""):
    info = attr_str(IFLA_INFO_KIND, kind)
    if data:
        info += attr(IFLA_INFO_DATA, data)
    return attr(IFLA_LINKINFO, info)


def _change_link(name, payload_attrs=b"", flags=0, change=0):
    """RTM_NEWLINK on an existing link: new flags under a change mask, and attributes."""
    _request(RTM_NEWLINK, _ifinfo(link_index(name), flags, change) + payload_attrs, context=name)


# --------------------------------------------------------------- links


def link_index(name):
    """ip link show NAME: the link's index (OSError ENODEV when there is none)."""
    with Netlink() as nl:
        seq = nl.send(RTM_GETLINK, 0, _ifinfo() + attr_str(IFLA_IFNAME, name))
        for _, body in nl.replies(seq, name):
            return IFINFOMSG.unpack_from(body)[2]
    raise OSError(errno.ENODEV, os.strerror(errno.ENODEV), name)  # not reached: the kernel says it


def link_exists(name):
    """ip link show NAME >/dev/null: is there a link of that name?"""
    try:
        link_index(name)
    except OSError as error:
        if error.errno == errno.ENODEV:
            return False
        raise
    return True


def link_add_veth(name, peer):
    """ip link add NAME type veth peer name PEER: a pair of linked virtual interfaces."""
    peer_info = attr(VETH_INFO_PEER, _ifinfo() + attr_str(IFLA_IFNAME, peer))
    payload = _ifinfo() + attr_str(IFLA_IFNAME, name) + _linkinfo("veth", peer_info)
    _request(RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL, name)


def link_add_bridge(name):
    """ip link add NAME type bridge: a virtual switch to attach interfaces to."""
    payload = _ifinfo() + attr_str(IFLA_IFNAME, name) + _linkinfo("bridge")
    _request(RTM_NEWLINK, payload, NLM_F_CREATE | NLM_F_EXCL, name)


def link_del(name):
    """ip link del NAME (a veth takes its peer with it)."""
    _request(RTM_DELLINK, _ifinfo(link_index(name)), context=name)


def link_set_up(name):
    """ip link set NAME up."""
    _change_link(name, flags=IFF_UP, change=IFF_UP)


def link_set_down(name):
    """ip link set NAME down."""
    _change_link(name, flags=0, change=IFF_UP)


def link_set_master(name, bridge):
    """ip link set NAME master BRIDGE: plug the interface into the bridge."""
    _change_link(name, attr_u32(IFLA_MASTER, link_index(bridge)))


def link_set_name(old, new):
    """ip link set OLD name NEW (the link must be down)."""
    _change_link(old, attr_str(IFLA_IFNAME, new))


def link_set_netns(name, pid=None, *, fd=None):
    """ip link set NAME netns PID: move the link into the network namespace of process PID
    (or of the namespace file open as fd: /proc/PID/ns/net, /run/netns/NAME)."""
    if (pid is None) == (fd is None):
        raise TypeError("link_set_netns needs a pid or an fd, not both")
    target = attr_u32(IFLA_NET_NS_PID, pid) if fd is None else attr_u32(IFLA_NET_NS_FD, fd)
    _change_link(name, target)


class Link:
    """A network interface as `ip -d link` shows it."""

    __slots__ = ("index", "name", "flags", "kind", "master", "peer", "mtu", "mac", "operstate")

    def __init__(self, **fields):
        for key in self.__slots__:
            setattr(self, key, fields.get(key))

    @property
    def up(self):
        return bool(self.flags & IFF_UP)

    def __repr__(self):
        return f"Link({self.index}: {self.name} kind={self.kind} up={self.up} master={self.master})"


def _link(body):
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(body)
    attrs = parse_attrs(body[IFINFOMSG.size:])
    info = parse_attrs(attrs.get(IFLA_LINKINFO, b""))
    mac = attrs.get(IFLA_ADDRESS, b"")
    return Link(
        index=index,
        name=attrs[IFLA_IFNAME].rstrip(b"\0").decode(),
        flags=flags,
        kind=info[IFLA_INFO_KIND].rstrip(b"\0").decode() if IFLA_INFO_KIND in info else None,
        master=_u32(attrs.get(IFLA_MASTER)),
        peer=_u32(attrs.get(IFLA_LINK)),  # a veth's peer index (in the peer's namespace)
        mtu=_u32(attrs.get(IFLA_MTU)),
        mac=":".join(f"{b:02x}" for b in mac),
        operstate=OPERSTATES[attrs[IFLA_OPERSTATE][0]] if IFLA_OPERSTATE in attrs else None,
    )


def _u32(raw):
    return None if raw is None else struct.unpack("=I", raw[:4])[0]


def links():
    """ip link show: every link of this network namespace."""
    with Netlink() as nl:
        return [_link(body) for body in nl.dump(RTM_GETLINK, _ifinfo())]


def link(name):
    """ip link show NAME: one link (OSError ENODEV when there is none)."""
    index = link_index(name)
    for found in links():
        if found.index == index:
            return found
    raise OSError(errno.ENODEV, os.strerror(errno.ENODEV), name)


# --------------------------------------------------------------- addresses


def addr_add(name, cidr):
    """ip addr add CIDR dev NAME (CIDR: 10.88.0.2/24)."""
    address, _, prefix = cidr.partition("/")
    family, raw = ip_bytes(address, cidr)
    bits = 32 if family == _socket.AF_INET else 128
    prefix = prefix or str(bits)
    if not prefix.isdigit() or not 0 <= int(prefix) <= bits:
        raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), cidr)
    payload = IFADDRMSG.pack(family, int(prefix), 0, RT_SCOPE_UNIVERSE, link_index(name))
    # IFA_LOCAL is the interface's own address; IFA_ADDRESS its peer's, the same on a LAN.
    payload += attr(IFA_LOCAL, raw) + attr(IFA_ADDRESS, raw)
    _request(RTM_NEWADDR, payload, NLM_F_CREATE | NLM_F_EXCL, f"{cidr} on {name}")


class Address:
    """An address of an interface, as `ip addr` shows it."""

    __slots__ = ("ifname", "index", "family", "address", "prefix")

    def __init__(self, ifname, index, family, address, prefix):
        self.ifname, self.index, self.family, self.address, self.prefix = ifname, index, family, address, prefix

    @property
    def cidr(self):
        return f"{self.address}/{self.prefix}"

    def __repr__(self):
        return f"Address({self.cidr} dev {self.ifname})"


def addresses(name=None):
    """ip addr show [dev NAME]: the addresses of every link, or of link NAME."""
    names = {found.index: found.name for found in links()}
    with Netlink() as nl:
        bodies = nl.dump(RTM_GETADDR, IFADDRMSG.pack(_socket.AF_UNSPEC, 0, 0, 0, 0))
    found = []
    for body in bodies:
        family, prefix, _flags, _scope, index = IFADDRMSG.unpack_from(body)
        attrs = parse_attrs(body[IFADDRMSG.size:])
        raw = attrs.get(IFA_LOCAL, attrs.get(IFA_ADDRESS))
        if raw is None or (name is not None and names.get(index) != name):
            continue
        found.append(Address(names.get(index), index, family, ip_text(family, raw), prefix))
    return found


# --------------------------------------------------------------- routes


def route_add_default(gateway, dev=None):
    """ip route add default via GATEWAY [dev DEV]."""
    family, raw = ip_bytes(gateway)
    payload = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
    payload += attr(RTA_GATEWAY, raw)
    if dev is not None:
        payload += attr_u32(RTA_OIF, link_index(dev))
    _request(RTM_NEWROUTE, payload, NLM_F_CREATE | NLM_F_EXCL, f"default via {gateway}")


class Route:
    """A route of the main table, as `ip route` shows it."""

    __slots__ = ("destination", "gateway", "ifname")

    def __init__(self, destination, gateway, ifname):
        self.destination, self.gateway, self.ifname = destination, gateway, ifname

    def __repr__(self):
        via = f" via {self.gateway}" if self.gateway else ""
        return f"Route({self.destination}{via} dev {self.ifname})"


def routes(family=_socket.AF_INET):
    """ip route show: the main table's routes ('default' or a CIDR, gateway or None, device)."""
    names = {found.index: found.name for found in links()}
    with Netlink() as nl:
        bodies = nl.dump(RTM_GETROUTE, RTMSG.pack(family, 0, 0, 0, 0, 0, 0, 0, 0))
    found = []
    for body in bodies:
        fam, dst_len, _src, _tos, table, _proto, _scope, kind, _flags = RTMSG.unpack_from(body)
        if table != RT_TABLE_MAIN or kind != RTN_UNICAST:
            continue  # the local and broadcast routes the kernel keeps for itself
        attrs = parse_attrs(body[RTMSG.size:])
        destination = "default" if dst_len == 0 else f"{ip_text(fam, attrs[RTA_DST])}/{dst_len}"
        gateway = ip_text(fam, attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None
        found.append(Route(destination, gateway, names.get(_u32(attrs.get(RTA_OIF)))))
    return found
