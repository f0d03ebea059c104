"""Network namespaces for tests: a sandbox "host", a "remote", and a leak check of network state.

No test may add an address, a bridge, a route, a veth or a NAT rule to the
machine's own network namespace. A test that needs them builds its own world::

    with Sandbox(tmp_path) as host:             # a network namespace with lo up
        host.run(["ip", "link"])                # any command, inside it (nsenter --net)
        remote = host.add_remote()              # a second namespace, a veth pair away
        server = remote.popen([...])            # a server "on the internet"
        sock = host.socket()                    # a socket of the sandbox, for this process
        host.call(some_function, arg)           # a function run in a thread inside it

The namespaces are files: `unshare --net=FILE` keeps a namespace alive by
bind-mounting it on FILE (as `ip netns add` does under /run/netns, but in the
test's own directory, so that parallel sessions cannot collide), and
`nsenter --net=FILE` runs a command in it. Closing the sandbox kills what
still runs in its namespaces, unmounts the files and removes them: the
namespaces (and every link, address, route and rule in them) are gone.

The addresses of the sandbox world are from the documentation ranges
(RFC 5737), which no real network routes (not 192.0.2.0/24, which some
sandboxed machines, this one included, use for real):

    sandbox host  uplink 198.51.100.1/24, default route via 198.51.100.2
    remote        eth0   198.51.100.2/24, and 203.0.113.1/32 on lo: "an address on the internet"

snapshot() and leftovers() compare the machine's own network state (links,
addresses, routes, listening TCP sockets, the nftables ruleset, where
iptables-nft's rules live too, ip_forward) and the network namespaces in use
(by a process, or by a bind mount), so that a test that touched the host's
network or left a namespace behind fails. Take them from the host's namespace.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from workshop import mountinfo

CLONE_NEWNET = 0x40000000
MNT_DETACH = 2
TIMEOUT = 10

UPLINK_HOST, UPLINK_REMOTE, INTERNET = "198.51.100.1", "198.51.100.2", "203.0.113.1"

_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) == -1:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), "setns")


def _umount(path: str) -> None:
    if _libc.umount2(os.fsencode(path), MNT_DETACH) == -1:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):  # not mounted (any more)
            raise OSError(err, os.strerror(err), path)


def netns_inode(pid: int | str = "self") -> int | None:
    """The inode of PID's network namespace (None when PID is gone)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def in_netns(path: str | os.PathLike, function, *args, **kwargs):
    """FUNCTION(*ARGS) in a thread that has joined the network namespace PATH (a namespace file
    or /proc/PID/ns/net): what it opens (sockets, netlink, /proc/thread-self/net, processes
    it starts) belongs to that namespace. Its exceptions come back to the caller."""
    outcome = {}

    def inside():
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd, CLONE_NEWNET)  # this thread only; it ends in there
            finally:
                os.close(fd)
            outcome["value"] = function(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - handed back to the caller
            outcome["error"] = error

    thread = threading.Thread(target=inside, name=f"in-{path}")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Namespace:
    """A network namespace kept alive by a bind mount on a file of ours."""

    def __init__(self, path: Path, name: str):
        self.path, self.name = Path(path), name
        self.path.touch()
        made = subprocess.run(["unshare", f"--net={self.path}", "true"], timeout=TIMEOUT,
                              capture_output=True, text=True)
        if made.returncode != 0:  # not root, or no network namespaces in this kernel
            raise AssertionError(f"cannot create the {name} network namespace (`unshare --net={self.path} true`,"
                                 f" as root): {made.stderr.strip()}")
        self.inode = os.stat(self.path).st_ino
        self.run(["ip", "link", "set", "lo", "up"], check=True)

    # -- commands inside

    def argv(self, argv: list[str]) -> list[str]:
        """ARGV run inside this namespace (nsenter joins the network namespace only)."""
        return ["nsenter", f"--net={self.path}", "--", *argv]

    def run(self, argv: list[str], check: bool = False, timeout: float = TIMEOUT, **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        result = subprocess.run(self.argv(argv), timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise AssertionError(f"in the {self.name} namespace, `{' '.join(argv)}` failed"
                                 f" ({result.returncode}): {result.stderr.strip()}")
        return result

    def popen(self, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.argv(argv), **kwargs)

    def ip_json(self, *args: str) -> list:
        """`ip -j ARGS` inside, parsed."""
        return json.loads(self.run(["ip", "-j", *args], check=True).stdout or "[]")

    # -- this process, inside

    def call(self, function, *args, **kwargs):
        """FUNCTION(*ARGS) in a thread that has joined this namespace (see in_netns)."""
        return in_netns(self.path, function, *args, **kwargs)

    def socket(self, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket of this namespace (connect/bind/listen from anywhere happen in there)."""
        return self.call(socket.socket, family, kind)

    def connect(self, address: tuple[str, int], timeout: float = TIMEOUT) -> socket.socket:
        sock = self.socket()
        sock.settimeout(timeout)
        try:
            sock.connect(address)
        except OSError:
            sock.close()
            raise
        return sock

    def listening(self) -> set[str]:
        """'ADDRESS:PORT' of the TCP sockets listening in this namespace."""
        return self.call(listening_sockets)

    # -- the end

    def processes(self) -> list[int]:
        """The processes whose network namespace this is."""
        return [pid for pid in _pids() if netns_inode(pid) == self.inode]

    def close(self) -> list[str]:
        """Kill what runs inside, unmount and remove the file; return what had to be killed."""
        killed = []
        for pid in self.processes():
            killed.append(f"process {pid} ({_cmdline(pid)}) in the {self.name} namespace")
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + TIMEOUT
        while self.processes() and time.monotonic() < deadline:
            time.sleep(0.02)
        _umount(str(self.path))
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        return killed


class Sandbox(Namespace):
    """A sandbox "host": a network namespace of a test's own, lo up, in DIRECTORY."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.remotes: list[Namespace] = []
        super().__init__(self.directory / "sandbox.net", "sandbox")

    def add_remote(self) -> Namespace:
        """A "remote" namespace, joined to the sandbox by a veth pair (addresses in the module docstring)."""
        if self.remotes:
            raise AssertionError("one remote per sandbox")
        remote = Namespace(self.directory / "remote.net", "remote")
        self.remotes.append(remote)
        self.run(["ip", "link", "add", "uplink", "type", "veth", "peer", "name", "eth0", "netns", str(remote.path)], check=True)
        self.run(["ip", "addr", "add", f"{UPLINK_HOST}/24", "dev", "uplink"], check=True)
        self.run(["ip", "link", "set", "uplink", "up"], check=True)
        self.run(["ip", "route", "add", "default", "via", UPLINK_REMOTE], check=True)
        remote.run(["ip", "addr", "add", f"{UPLINK_REMOTE}/24", "dev", "eth0"], check=True)
        remote.run(["ip", "addr", "add", f"{INTERNET}/32", "dev", "lo"], check=True)
        remote.run(["ip", "link", "set", "eth0", "up"], check=True)
        return remote

    def close(self) -> list[str]:
        killed = []
        for remote in self.remotes:
            killed += remote.close()
        killed += super().close()
        self.remotes = []
        return killed

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --------------------------------------------------------------------------- the leak check


@dataclass
class NetState:
    links: set  # (name, kind) of the host's own namespace
    addresses: set  # (link, cidr)
    routes: set  # (table, destination, gateway, device)
    listening: set  # 'address:port' of the TCP sockets listening in the host's namespace
    nat: str  # the host's nftables ruleset ('' without nft)
    ip_forward: str
    netns: set  # inodes of the network namespaces that a process or a mount keeps alive
    netns_files: set  # /run/netns entries


def snapshot() -> NetState:
    """The machine's own network state, and the network namespaces in use (run it from the host's namespace)."""
    links = {(link["ifname"], (link.get("linkinfo") or {}).get("info_kind", ""))
             for link in _ip_json("-d", "link", "show")}
    addresses = {(link["ifname"], f"{a['local']}/{a['prefixlen']}")
                 for link in _ip_json("addr", "show") for a in link.get("addr_info", [])}
    routes = {(r.get("table", "main"), r.get("dst", ""), r.get("gateway", ""), r.get("dev", ""))
              for r in _ip_json("route", "show", "table", "all") if r.get("type", "unicast") == "unicast"}
    return NetState(links, addresses, routes, listening_sockets(), _nat_rules(), _read("/proc/sys/net/ipv4/ip_forward"),
                    netns_in_use(), set(_listdir("/run/netns")))


def leftovers(before: NetState, after: NetState | None = None) -> list[str]:
    """What changed in the host's network, or which namespaces appeared, since BEFORE."""
    after = after or snapshot()
    problems = []
    labels = {"links": "link", "addresses": "address", "routes": "route", "listening": "listening socket",
              "netns_files": "file in /run/netns:"}
    for what, label in labels.items():
        for item in sorted(getattr(after, what) - getattr(before, what), key=str):
            problems.append(f"host network: new {label} {item}")
        for item in sorted(getattr(before, what) - getattr(after, what), key=str):
            problems.append(f"host network: {label} {item} is gone")
    if after.nat != before.nat:
        problems.append(f"host network: the nftables ruleset changed:\n{after.nat or '(empty)'}")
    if after.ip_forward != before.ip_forward:
        problems.append(f"host network: ip_forward went from {before.ip_forward} to {after.ip_forward}")
    for inode in sorted(after.netns - before.netns):
        problems.append(f"network namespace net:[{inode}] left behind ({_holders(inode)})")
    return problems


def wait_for_no_leftovers(before: NetState, grace: float = 2.0) -> list[str]:
    """leftovers(), retried for GRACE seconds: processes take a moment to exit and be reaped."""
    deadline = time.monotonic() + grace
    while True:
        problems = leftovers(before)
        if not problems or time.monotonic() > deadline:
            return problems
        time.sleep(0.05)


def listening_sockets() -> set[str]:
    """'address:port' of every listening TCP socket of the calling thread's network namespace."""
    found = set()
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/thread-self/net/{table}") as file:
                lines = file.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            raw, port = fields[1].split(":")
            # /proc/net/tcp prints each 32-bit word of the address in host byte order
            packed = b"".join(int(raw[i:i + 8], 16).to_bytes(4, "little") for i in range(0, len(raw), 8))
            found.add(f"{socket.inet_ntop(family, packed)}:{int(port, 16)}")
    return found


def netns_in_use() -> set[int]:
    """Network namespaces that a process is in, or that a bind mount keeps (nsfs)."""
    inodes = {inode for pid in _pids() if (inode := netns_inode(pid)) is not None}
    for mount in mountinfo.read("/proc/self/mountinfo"):
        if mount.fstype == "nsfs" and mount.root.startswith("net:["):
            inodes.add(int(mount.root[5:-1]))
    return inodes


def _holders(inode: int) -> str:
    pids = [pid for pid in _pids() if netns_inode(pid) == inode]
    mounts = [m.mountpoint for m in mountinfo.read("/proc/self/mountinfo") if m.root == f"net:[{inode}]"]
    parts = [f"process {pid} ({_cmdline(pid)})" for pid in pids] + [f"mounted on {m}" for m in mounts]
    return ", ".join(parts) or "held by an open file"


def _ip_json(*args: str) -> list:
    if not shutil.which("ip"):
        raise AssertionError("the network leak check needs iproute2's `ip`: apt-get install iproute2")
    result = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=TIMEOUT)
    return json.loads(result.stdout or "[]")


def _nat_rules() -> str:
    if not shutil.which("nft"):
        return ""
    result = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, timeout=TIMEOUT)
    return result.stdout


def _pids() -> list[int]:
    return [int(name) for name in _listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            return file.read().replace(b"\0", b" ").decode(errors="replace").strip() or "?"
    except OSError:
        return "?"


def _read(path: str) -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return ""


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
