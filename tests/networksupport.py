"""Support of the step 9 tests: a sandbox "host" network per test, the runtime inside it, and
what the host sees of a container's network.

No test touches the machine's own network. Each runs udocker inside a network
namespace of its own making (the ``sandbox``, from workshop/netsandbox.py: lo
up, nothing else), with ``UDOCKER_RUN_DIR`` (the leases) in the test's own
directory; a "remote" server lives in a second namespace, a veth pair away
(198.51.100.2, and 203.0.113.1 "on the internet"). So the bridge udocker0, the
veths, the NAT rule and the published ports all live and die in the sandbox.

What a test checks is read from the host's side, never from what the
container prints: ``/proc/PID/net/*`` and ``ip -j`` (netlink) in the
container's namespace (``nsenter --net=/proc/PID/ns/net``), the sandbox's
links, addresses and listening sockets, the lease files, /proc/PID/root/etc.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from workshop import netsandbox, testing
from workshop.testing import DEFAULT_TIMEOUT

SUBNET_LEASES = "10.88.0.0-24"  # ipam's directory for the default subnet 10.88.0.0/24
GATEWAY = "10.88.0.1"


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def sandbox(tmp_path):
    """A sandbox "host" network namespace (lo up), removed after the test.

    The test fails if a veth is still in it at the end (every container's veth
    must be gone), or if a process was still running inside.
    """
    box = netsandbox.Sandbox(tmp_path / "net")
    print(f"# the sandbox host: nsenter --net={box.path} ...", flush=True)
    problems = []
    try:
        yield box
        left = wait_until(lambda: [link["ifname"] for link in box.ip_json("-d", "link")
                                   if link.get("linkinfo", {}).get("info_kind") == "veth"
                                   and link["ifname"] != "uplink"] or None, timeout=5, negate=True)
        problems += [f"veth {name} still in the sandbox after the test" for name in left or []]
    finally:
        problems += box.close()
    if problems:
        pytest.fail("the test left this behind in its sandbox:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def net(udocker, sandbox, tmp_path):
    """The runtime under test, run inside the sandbox: net.run(...), net.popen(...)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    return Net(udocker, sandbox, run_dir)


@pytest.fixture
def www(private_rootfs):
    """A root filesystem whose /www/index.html holds a word of its own: what httpd serves."""
    word = testing.token("page-")
    (private_rootfs / "www").mkdir()
    (private_rootfs / "www" / "index.html").write_text(word + "\n")
    return Web(private_rootfs, word)


class Web:
    def __init__(self, rootfs: Path, word: str):
        self.rootfs, self.word = rootfs, word


class Net:
    """udocker (the fixture) inside a sandbox, with UDOCKER_RUN_DIR of its own."""

    def __init__(self, udocker, sandbox, run_dir: Path):
        self.udocker, self.sandbox, self.run_dir = udocker, sandbox, run_dir
        self.prefix = ("nsenter", f"--net={sandbox.path}", "--")
        self.env = {"UDOCKER_RUN_DIR": str(run_dir)}

    def run(self, *args, env: dict | None = None, **kw) -> testing.Result:
        return self.udocker.run(*args, prefix=self.prefix, env={**self.env, **(env or {})}, **kw)

    def popen(self, *args, env: dict | None = None, **kw) -> testing.Container:
        return self.udocker.popen(*args, prefix=self.prefix, env={**self.env, **(env or {})}, **kw)

    def leases(self) -> dict[str, str]:
        """{address: the container id that holds it} from the lease files (ipam.py's layout)."""
        directory = self.run_dir / "leases" / SUBNET_LEASES
        if not directory.is_dir():
            return {}
        return {path.name: (path.read_text().split() or ["?"])[0]
                for path in sorted(directory.iterdir()) if path.name != "lock"}

    def links(self) -> dict[str, dict]:
        """The sandbox's links: {name: `ip -j -d link` entry}."""
        return {link["ifname"]: link for link in self.sandbox.ip_json("-d", "link")}

    def veths(self) -> list[str]:
        return [name for name, link in self.links().items()
                if link.get("linkinfo", {}).get("info_kind") == "veth" and name != "uplink"]


# --------------------------------------------------------------------------- a container, seen from the host


def ip_json_in(pid: int, *args: str) -> list:
    """`ip -j ARGS` in the network namespace of process PID (nsenter, from the host)."""
    argv = ["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise AssertionError(f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}")
    return json.loads(done.stdout or "[]")


def links_in(pid: int) -> dict[str, dict]:
    """{name: link} of the container's namespace, through netlink (`ip -j -d link`)."""
    return {link["ifname"]: link for link in ip_json_in(pid, "-d", "link")}


def ipv4_in(pid: int, device: str) -> set[str]:
    """The IPv4 addresses of DEVICE in the container's namespace, as 'a.b.c.d/prefix'."""
    found = set()
    for link in ip_json_in(pid, "addr", "show"):
        if link["ifname"] == device:
            found |= {f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []) if a.get("family") == "inet"}
    return found


def address_of(pid: int) -> str:
    """The container's one eth0 address (fails the test when it has none, or several)."""
    addresses = ipv4_in(pid, "eth0")
    if len(addresses) != 1:
        raise AssertionError(f"expected one IPv4 address on eth0 in the container's namespace "
                             f"(nsenter --net=/proc/{pid}/ns/net ip addr), got {sorted(addresses) or 'none'}; "
                             f"its links: {sorted(links_in(pid))}")
    return next(iter(addresses)).split("/")[0]


def is_up(link: dict) -> bool:
    return "UP" in link.get("flags", [])


def proc_net_devices(pid: int) -> list[str]:
    """The interfaces /proc/PID/net/dev lists: the ones of the process's network namespace."""
    text = testing.read(f"/proc/{pid}/net/dev") or ""
    return sorted(line.split(":")[0].strip() for line in text.splitlines()[2:] if ":" in line)


def default_route(pid: int) -> tuple[str, str] | None:
    """(interface, gateway) of the default route in /proc/PID/net/route, or None."""
    for line in (testing.read(f"/proc/{pid}/net/route") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:  # RTF_GATEWAY
            return fields[0], socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return None


def netns(pid: int | str) -> int | None:
    return netsandbox.netns_inode(pid)


def listening_in(pid: int) -> set[str]:
    """'address:port' of the TCP sockets listening in the container's namespace (/proc/PID/net/tcp)."""
    return netsandbox.in_netns(f"/proc/{pid}/ns/net", netsandbox.listening_sockets)


def wait_until(condition, timeout: float = 5.0, interval: float = 0.02, negate: bool = False):
    """CONDITION() until it is true (or false, with NEGATE) or TIMEOUT; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if bool(value) != negate or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def container_file(pid: int, path: str) -> str | None:
    """A file as the container sees it, read from the host through /proc/PID/root."""
    return testing.read(f"/proc/{pid}/root{path}")


def uts_hostname(pid: int) -> str:
    """The hostname of the container's UTS namespace (nsenter --uts, from the host)."""
    done = subprocess.run(["nsenter", f"--uts=/proc/{pid}/ns/uts", "hostname"], capture_output=True,
                          text=True, timeout=10)
    return done.stdout.strip()


# --------------------------------------------------------------------------- traffic


def serve_web(ready: str, tag: str, port: int = 80, then: str = "read line") -> str:
    """A script: busybox httpd serves /www on PORT (it binds, then goes to the background), READY is
    printed, then THEN runs (by default: wait for a line on stdin), and the container exits."""
    return f"httpd -p {port} -h /www && echo {ready} && {then}; : {tag}"


def http_get(namespace, host: str, port: int, timeout: float = DEFAULT_TIMEOUT) -> str:
    """GET / from HOST:PORT with a socket of NAMESPACE (a netsandbox.Namespace); the body, or 'error: ...'."""
    try:
        with namespace.connect((host, port), timeout) as sock:
            sock.sendall(f"GET / HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            answer = read_all(sock)
    except OSError as error:
        return f"error: {error}"
    head, _, body = answer.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
        return f"error: no 200 answer: {answer[:200]!r}"
    return body.decode(errors="replace")


def read_all(sock) -> bytes:
    received = bytearray()
    while chunk := sock.recv(1 << 16):
        received += chunk
    return bytes(received)


class Responder:
    """A tiny HTTP server on ADDRESS:PORT in NAMESPACE: answers every request with 'hello <peer>'.

    .peers lists the source address of every connection it accepted: what it saw
    of its clients, from its own side (after any NAT).
    """

    def __init__(self, namespace, address: str, port: int):
        self.sock = namespace.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, port))
        self.sock.listen(16)
        self.peers: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return  # closed
            with conn:
                conn.settimeout(5)
                self.peers.append(peer[0])
                try:
                    request = b""
                    while b"\r\n\r\n" not in request:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        request += chunk
                    body = f"hello {peer[0]}\n".encode()
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                                 + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                except OSError:
                    pass

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)

    def __enter__(self) -> "Responder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def check(result: testing.Result, ok: bool, expected: str, got) -> None:
    """result.check with any GOT (the command line of RESULT goes in the message)."""
    result.check(ok, expected, got if isinstance(got, str) else repr(got))
