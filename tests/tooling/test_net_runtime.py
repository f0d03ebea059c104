"""The handshake, the port proxy and the parent's event loop, end to end in a sandbox.

tests/tooling/net_driver.py is a minimal runtime around udocker.network (what
container.py will do with it); its "container" is net_container.py, an echo
server in a network namespace of its own. Everything runs in a sandbox
namespace: the proxy publishes on the sandbox's loopback, the bridge and the
NAT rule are the sandbox's, the "internet" is a remote namespace. What is
checked is read from the host side: netlink and `ip -j` in the container's
namespace (/proc/PID/ns/net), the sandbox's links and listening sockets, the
lease files.
"""
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import (  # noqa: E402,F401
    CONTAINER, check, exchange, nothing_left_on_the_network, read_all, run_dir, sandbox, start, wait_until,
)
from udocker import netlink  # noqa: E402
from workshop import netsandbox, testing  # noqa: E402


def in_container(pid, function, *args):
    """FUNCTION in the container's network namespace, from the host side."""
    return netsandbox.in_netns(f"/proc/{pid}/ns/net", function, *args)


def container_links(pid):
    return {link.name: link for link in in_container(pid, netlink.links)}


# --------------------------------------------------------------------------- none, and the handshake


def test_none_has_only_lo_up(sandbox):
    with start(sandbox, "--network", "none") as run:
        pid = run.serving()
        check(netsandbox.netns_inode(pid) != sandbox.inode, "the container in a namespace of its own",
              f"the sandbox's net:[{sandbox.inode}]")
        links = container_links(pid)
        check(list(links) == ["lo"] and links["lo"].up, "only lo, up", links)
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_handshake_child_error_ends_both(sandbox):
    """The child cannot create its namespace (uid 4242, no user namespace): one line, 125, the parent silent."""
    with start(sandbox, "--network", "none", user=True) as run:
        result = run.finish()
    result.expect_error(125, "cannot create the container's network namespace", "Operation not permitted")


def test_handshake_parent_error_ends_both(sandbox, run_dir):
    """The parent cannot create the veth (its name is taken): one line, 125; the child goes quietly, nothing left."""
    container_id = "abcdef012345"
    sandbox.run(["ip", "link", "add", f"veth{container_id[:11]}", "type", "bridge"], check=True)
    with start(sandbox, "--network", "bridge", "--id", container_id, env={"UDOCKER_RUN_DIR": str(run_dir)}) as run:
        result = run.finish()
    result.expect_error(125, "cannot connect the container to the network", "File exists")
    leases = [p.name for p in (run_dir / "leases" / "10.88.0.0-24").iterdir() if p.name != "lock"]
    check(leases == [], "the lease released", leases)
    names = {link["ifname"] for link in sandbox.ip_json("link")}
    check(f"ceth{container_id[:11]}" not in names, "no half-made veth in the sandbox", names)


def test_exit_status_and_signals(sandbox):
    """The event loop keeps steps 1-8's rules: the command's status, signals forwarded."""
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        run.write("exit 7\n")
        run.finish().expect_exit(7)
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        run.signal(signal.SIGTERM)
        wait_until(lambda: run.proc.poll() is not None, timeout=10)  # before finish() closes its stdin
        run.finish().expect_exit(128 + signal.SIGTERM)


def test_stop_timeout_with_a_proxy_running(sandbox):
    """A container that ignores SIGTERM is killed after UDOCKER_STOP_TIMEOUT, connections open or not."""
    with start(sandbox, "-p", "127.0.0.1:8080:80", ignore_term=True, env={"UDOCKER_STOP_TIMEOUT": "0.5"}) as run:
        run.serving()
        with sandbox.connect(("127.0.0.1", 8080)):
            begin = time.monotonic()
            run.signal(signal.SIGTERM)
            result = run.finish()
            took = time.monotonic() - begin
    result.expect_exit(128 + signal.SIGKILL)
    check("did not stop within 0.5 s" in result.stderr, "the stop-timeout message", result.stderr)
    check(0.4 < took < 3, "killed about 0.5 s after SIGTERM", f"{took:.2f} s")


# --------------------------------------------------------------------------- the proxy


def test_bytes_both_ways_and_half_close(sandbox):
    """What the client sends reaches the container; its answer after our half-close comes back, then EOF."""
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        with sandbox.connect(("127.0.0.1", 8080)) as client:
            got = exchange(client, b"hello")
        check(got == b"hellobye", "b'hellobye' (echo, then 'bye' after our end-of-file)", got)
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_large_transfer(sandbox):
    """32 MiB each way, with a client that does not read at first: nothing lost, nothing piles up in the proxy."""
    payload = os.urandom(1 << 25)
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        with sandbox.connect(("127.0.0.1", 8080), timeout=30) as client:
            rss_before = int(testing.status_field(run.pid, "VmRSS")[0])
            sender = threading.Thread(target=lambda: (client.sendall(payload), client.shutdown(socket.SHUT_WR)))
            sender.start()
            time.sleep(0.5)  # the buffers fill up: the proxy must stop reading, not keep it all
            growth = int(testing.status_field(run.pid, "VmRSS")[0]) - rss_before
            received = read_all(client)
            sender.join()
        check(received == payload + b"bye", f"{len(payload)} bytes back, then 'bye'", f"{len(received)} bytes")
        check(growth < 2 * 1024, "the proxy growing by less than 2 MiB while the client does not read",
              f"{growth} kB")
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_many_connections_at_once(sandbox):
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        clients = [sandbox.connect(("127.0.0.1", 8080)) for _ in range(64)]
        try:
            for number, client in enumerate(clients):
                client.sendall(f"client {number}".encode())
                client.shutdown(socket.SHUT_WR)
            answers = [read_all(client) for client in clients]
        finally:
            for client in clients:
                client.close()
        wrong = [n for n, answer in enumerate(answers) if answer != f"client {n}bye".encode()]
        check(not wrong, "each of 64 clients its own answer", f"wrong answers for {wrong[:5]}")
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_port_ranges(sandbox):
    with start(sandbox, "-p", "127.0.0.1:8080-8081:80-81", port=81) as run:
        run.serving()
        with sandbox.connect(("127.0.0.1", 8081)) as client:
            check(exchange(client, b"x") == b"xbye", "8081 reaching the container's 81", "otherwise")
        with sandbox.connect(("127.0.0.1", 8080)) as client:  # nothing listens on the container's 80
            client.settimeout(5)
            try:
                data = client.recv(10)
            except ConnectionResetError:
                data = b""
            check(data == b"", "end of file on a port where the container does not listen", data)
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_port_in_use(sandbox):
    """A port that is taken: 125 and a message naming it; nothing is started."""
    with sandbox.socket() as taken:
        taken.bind(("127.0.0.1", 8080))
        taken.listen()
        with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
            result = run.finish()
    result.expect_error(125, "127.0.0.1:8080", "already in use")


def test_two_containers_cannot_publish_one_port(sandbox):
    with start(sandbox, "-p", "8080:80") as first:
        first.serving()
        with start(sandbox, "-p", "8080:80") as second:
            second.finish().expect_error(125, "0.0.0.0:8080", "already in use")
        first.write("exit 0\n")
        first.finish().expect_exit(0)


def test_published_port_closes_with_the_container(sandbox):
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        check("127.0.0.1:8080" in sandbox.listening(), "127.0.0.1:8080 listening while the container runs",
              sandbox.listening())
        run.write("exit 0\n")
        run.finish().expect_exit(0)
    check(sandbox.listening() == set(), "nothing listening in the sandbox after exit", sandbox.listening())


def test_privileged_port_rootless(sandbox):
    with start(sandbox, "--userns", "parent", "-p", "80:80", user=True) as run:
        result = run.finish()
    result.expect_error(125, "0.0.0.0:80", "permission denied", "above 1023")


# --------------------------------------------------------------------------- the event loop


def test_child_exit_with_connections_open(sandbox):
    """The container exits while clients are connected: the runtime exits at once (the pidfd), clients see the end."""
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        clients = [sandbox.connect(("127.0.0.1", 8080)) for _ in range(3)]
        try:
            clients[0].sendall(b"ping")
            check(clients[0].recv(4) == b"ping", "an echo before the exit", "nothing")
            begin = time.monotonic()
            run.write("exit 5\n")
            result = run.finish()
            took = time.monotonic() - begin
            for client in clients:
                client.settimeout(5)
                try:
                    data = client.recv(10)
                except ConnectionResetError:
                    data = b""
                check(data == b"", "each client's connection closed", data)
        finally:
            for client in clients:
                client.close()
    result.expect_exit(5)
    check(took < 2, "the runtime gone within 2 s of its container", f"{took:.2f} s")


def test_no_busy_loop(sandbox):
    """Idle connections and a waiting runtime cost no CPU: select() sleeps."""
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        run.serving()
        clients = [sandbox.connect(("127.0.0.1", 8080)) for _ in range(4)]
        try:
            clients[0].sendall(b"x")
            clients[0].recv(1)
            before = testing.cpu_seconds(run.pid)
            time.sleep(1.0)
            used = testing.cpu_seconds(run.pid) - before
        finally:
            for client in clients:
                client.close()
        check(used < 0.05, "under 0.05 s of CPU in 1 s of idling", f"{used:.3f} s")
        run.write("exit 0\n")
        run.finish().expect_exit(0)


# --------------------------------------------------------------------------- rootless


@pytest.mark.parametrize("userns", ["parent", "child"])
def test_rootless_publish(sandbox, userns):
    """As uid 4242: the proxy reaches the container whether the parent is in its user namespace or not."""
    with start(sandbox, "--userns", userns, "-p", "127.0.0.1:8080:80", user=True) as run:
        pid = run.serving()
        with sandbox.connect(("127.0.0.1", 8080)) as client:
            got = exchange(client, b"rootless")
        check(got == b"rootlessbye", "b'rootlessbye'", got)
        owner = os.stat(f"/proc/{run.pid}").st_uid
        check(owner == testing.ROOTLESS_UID, f"the runtime running as uid {testing.ROOTLESS_UID}", owner)
        check(netsandbox.netns_inode(pid) != sandbox.inode, "the container in its own network namespace", "the sandbox's")
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_rootless_bridge_is_refused(sandbox):
    with start(sandbox, "--network", "bridge", "--userns", "parent", user=True) as run:
        result = run.finish()
    result.expect_error(125, "--network bridge needs root", "-p")


# --------------------------------------------------------------------------- bridge


@pytest.fixture
def bridge_env(run_dir):
    return {"UDOCKER_RUN_DIR": str(run_dir)}


def test_bridge_addresses_and_route(sandbox, bridge_env, run_dir):
    """eth0 has the leased address and a default route via the bridge; the host end is on udocker0."""
    with start(sandbox, "--network", "bridge", "--id", "0123456789ab", env=bridge_env) as run:
        pid = run.serving()
        addresses = {a.cidr for a in in_container(pid, netlink.addresses, "eth0") if ":" not in a.address}
        check(addresses == {"10.88.0.2/24"}, "eth0 10.88.0.2/24 (netlink, in the container's namespace)", addresses)
        seen = sandbox.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "route"], check=True).stdout
        check('"dst":"default","gateway":"10.88.0.1","dev":"eth0"' in seen, "`ip -j route`: default via 10.88.0.1 dev eth0", seen)
        lease = run_dir / "leases" / "10.88.0.0-24" / "10.88.0.2"
        check(lease.read_text().split()[0] == "0123456789ab", f"{lease} held by the container", lease.read_text())
        host = {link.name: link for link in sandbox.call(netlink.links)}
        check(host["veth0123456789a"].master == host["udocker0"].index and host["veth0123456789a"].up,
              "veth0123456789a up, on udocker0", host.get("veth0123456789a"))
        bridge_addresses = {a.cidr for a in sandbox.call(netlink.addresses, "udocker0") if ":" not in a.address}
        check(bridge_addresses == {"10.88.0.1/24"}, "udocker0 10.88.0.1/24", bridge_addresses)
        with sandbox.connect(("10.88.0.2", 80)) as client:  # the host reaches the container directly
            check(exchange(client, b"direct") == b"directbye", "the sandbox reaching 10.88.0.2:80", "otherwise")
        run.write("exit 0\n")
        run.finish().expect_exit(0)
    names = {link["ifname"] for link in sandbox.ip_json("link")}
    check("veth0123456789a" not in names and "udocker0" in names, "the veth gone, the bridge kept", names)
    check(not lease.exists(), "the lease released", "it is still there")


def test_bridge_nat_to_the_remote(sandbox, bridge_env):
    """The container reaches a server 'on the internet'; the server sees the sandbox's uplink address."""
    remote = sandbox.add_remote()
    server = remote.socket()
    server.bind((netsandbox.INTERNET, 80))
    server.listen()
    seen = {}

    def answer():
        conn, peer = server.accept()
        with conn:
            seen["peer"] = peer[0]
            read_all(conn)
            conn.sendall(f"you are {peer[0]}".encode())

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        with start(sandbox, "--network", "bridge", env=bridge_env) as run:
            run.serving()
            run.write(f"fetch {netsandbox.INTERNET} 80\n")
            run.wait_for("fetched")
            run.write("exit 0\n")
            result = run.finish()
    finally:
        server.close()
        thread.join(5)
    result.expect_exit(0)
    check(f"fetched you are {netsandbox.UPLINK_HOST}" in result.stdout,
          f"the remote seeing {netsandbox.UPLINK_HOST} (masqueraded)", result.stdout)
    masquerade = sandbox.run(["nft", "list", "table", "ip", "udocker"]).stdout
    check("masquerade" in masquerade, "the sandbox's udocker table", masquerade)


def test_bridge_two_containers(sandbox, bridge_env):
    """Two containers at once: different addresses, they reach each other, and the host's bridge address."""
    with start(sandbox, "--network", "bridge", env=bridge_env) as first, \
            start(sandbox, "--network", "bridge", env=bridge_env) as second:
        pids = [first.serving(), second.serving()]
        addresses = [{a.address for a in in_container(pid, netlink.addresses, "eth0") if ":" not in a.address}
                     for pid in pids]
        check(addresses[0] != addresses[1] and all(len(a) == 1 for a in addresses),
              "one address each, not the same", addresses)
        other = next(iter(addresses[1]))
        first.write(f"fetch {other} 80\n")
        first.wait_for("fetched")
        check("fetched hellobye" in first.stdout, f"the first reaching the second at {other}", first.stdout)
        with sandbox.socket() as host_server:  # a server on the host's bridge address
            host_server.bind(("10.88.0.1", 9090))
            host_server.listen()
            second.write("fetch 10.88.0.1 9090\n")
            conn, peer = host_server.accept()
            with conn:
                check(peer[0] == other, f"the host seeing the container's own address {other}", peer[0])
                conn.sendall(b"from the host")
                conn.shutdown(socket.SHUT_WR)
                read_all(conn)
            second.wait_for("fetched")
            check("fetched from the host" in second.stdout, "the second reaching 10.88.0.1:9090", second.stdout)
        for run in (first, second):
            run.write("exit 0\n")
            run.finish().expect_exit(0)


def test_bridge_publish(sandbox, bridge_env):
    """-p in bridge mode: the proxy connects to the container's address, as docker-proxy does."""
    with start(sandbox, "--network", "bridge", "-p", "127.0.0.1:8080:80", env=bridge_env) as run:
        run.serving()
        with sandbox.connect(("127.0.0.1", 8080)) as client:
            check(exchange(client, b"bridged") == b"bridgedbye", "b'bridgedbye'", "otherwise")
        run.write("exit 0\n")
        run.finish().expect_exit(0)


def test_bridge_kill_9_leaves_a_lease_that_is_reclaimed(sandbox, bridge_env, run_dir):
    """The runtime killed with SIGKILL: its lease stays, but its address goes to the next container."""
    with start(sandbox, "--network", "bridge", env=bridge_env) as run:
        run.serving()
        testing.kill_tree(run.pid)
        run.finish()
    leases = sorted(p.name for p in (run_dir / "leases" / "10.88.0.0-24").iterdir() if p.name != "lock")
    check(leases == ["10.88.0.2"], "the dead runtime's lease left", leases)
    wait_until(lambda: not any(link["ifname"].startswith("veth") for link in sandbox.ip_json("link")))
    with start(sandbox, "--network", "bridge", env=bridge_env) as run:
        pid = run.serving()
        addresses = {a.address for a in in_container(pid, netlink.addresses, "eth0") if ":" not in a.address}
        check(addresses == {"10.88.0.2"}, "10.88.0.2 reclaimed by the next container", addresses)
        run.write("exit 0\n")
        run.finish().expect_exit(0)


# --------------------------------------------------------------------------- host mode, and the helper's end


def test_host_mode_discards_published_ports(sandbox):
    """--network host: no namespace; -p is discarded with docker's warning."""
    with start(sandbox, "--network", "host", "-p", "127.0.0.1:8080:80") as run:
        pid = run.serving()
        check(netsandbox.netns_inode(pid) == sandbox.inode, "the container in the sandbox's own namespace",
              f"net:[{netsandbox.netns_inode(pid)}]")
        check(sandbox.listening() == {"0.0.0.0:80"}, "only the container's own 0.0.0.0:80 listening",
              sandbox.listening())
        run.write("exit 0\n")
        result = run.finish()
    result.expect_exit(0)
    check(result.stderr == "udocker: warning: published ports are discarded when using host network mode\n",
          "docker's warning", repr(result.stderr))


def test_socket_helper_ends_with_the_runtime(sandbox):
    """The runtime killed with SIGKILL: its socket helper (which holds the container's namespace) exits too."""
    with start(sandbox, "-p", "127.0.0.1:8080:80") as run:
        container = run.serving()
        helpers = [pid for pid in testing.descendants(run.pid) if pid != container]
        check(len(helpers) == 1 and testing.cmdline(helpers[0]) == testing.cmdline(run.pid),
              "one helper: a fork of the runtime", {p: testing.cmdline(p) for p in testing.descendants(run.pid)})
        check(netsandbox.netns_inode(helpers[0]) == netsandbox.netns_inode(container),
              "the helper in the container's network namespace", "elsewhere")
        os.kill(run.pid, signal.SIGKILL)
        gone = wait_until(lambda: not os.path.exists(f"/proc/{helpers[0]}/ns"), timeout=5)
        testing.kill_tree(container)
        run.finish()
    check(gone, "the helper gone within 5 s of the runtime", f"process {helpers[0]} still there")


def test_socket_helper_is_outside_the_container(sandbox):
    """With a PID namespace (as container.start makes one): the helper is not in it, nor in any namespace
    of the container but the network one; the proxy still works."""
    with start(sandbox, "--pidns", "-p", "127.0.0.1:8080:80") as run:
        run.wait_for("listening 1")  # PID 1 of its namespace
        tree = testing.descendants(run.pid)
        container = next(pid for pid in tree if testing.cmdline(pid)[1:2] == [str(CONTAINER)])
        helpers = [pid for pid in tree if pid != container]
        check(len(helpers) == 1, "one helper besides the container", helpers)
        for kind in ("pid", "mnt", "uts", "ipc", "user"):
            check(testing.namespace(helpers[0], kind) == testing.namespace(run.pid, kind),
                  f"the helper in the runtime's {kind} namespace", testing.namespace(helpers[0], kind))
        check(testing.namespace(container, "pid") != testing.namespace(run.pid, "pid"),
              "the container in a PID namespace of its own", "the runtime's")
        with sandbox.connect(("127.0.0.1", 8080)) as client:
            check(exchange(client, b"pid1") == b"pid1bye", "b'pid1bye'", "otherwise")
        run.write("exit 0\n")
        run.finish().expect_exit(0)
