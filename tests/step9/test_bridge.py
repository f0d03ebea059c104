"""Step 9: --network bridge. A veth pair joins the container (eth0, an address leased from
10.88.0.0/24, a default route via 10.88.0.1) to the host's bridge udocker0 (10.88.0.1), and the
host masquerades the containers' traffic to the outside world.

The "host" is a sandbox network namespace; the "internet" is a remote namespace joined to it by
a veth pair (198.51.100.1 on the sandbox's uplink, 203.0.113.1 a server far away). Nothing of
this machine's own network is touched.
"""

import signal

from networksupport import (
    GATEWAY, Responder, address_of, container_file, default_route, http_get, ipv4_in, is_up, links_in,
    listening_in, serve_web, uts_hostname, wait_until,
)
from workshop import netsandbox, testing
from workshop.testing import hold, token

BRIDGE = ("run", "--network", "bridge")


def test_eth0_has_the_leased_address_and_a_default_route(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        links = links_in(pid)
        addresses = ipv4_in(pid, "eth0")
        route = default_route(pid)
        leases, hostname = net.leases(), uts_hostname(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(sorted(links) == ["eth0", "lo"] and all(is_up(link) for link in links.values()),
                 f"lo and eth0, both up, in the container's namespace (nsenter --net=/proc/{pid}/ns/net ip link)",
                 {name: link.get("flags") for name, link in links.items()})
    result.check(len(addresses) == 1 and next(iter(addresses)).endswith("/24")
                 and next(iter(addresses)).startswith("10.88.0."), "one address in 10.88.0.0/24 on eth0",
                 sorted(addresses))
    address = next(iter(addresses)).split("/")[0]
    result.check(leases == {address: hostname}, f"one lease file, for {address}, held by the container "
                 f"(id {hostname})", leases)
    result.check(route == ("eth0", GATEWAY), f"a default route via {GATEWAY} dev eth0 (/proc/{pid}/net/route)",
                 route)


def test_the_bridge_holds_the_gateway_and_the_hosts_end_of_the_veth(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        eth0 = links_in(pid).get("eth0", {})
        host_links = {link["ifindex"]: link for link in net.links().values()}
        bridge = net.links().get("udocker0", {})
        bridge_addresses = {f"{a['local']}/{a['prefixlen']}" for link in net.sandbox.ip_json("addr", "show", "udocker0")
                            for a in link.get("addr_info", []) if a.get("family") == "inet"} if bridge else set()
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(bridge.get("linkinfo", {}).get("info_kind") == "bridge" and is_up(bridge),
                 "a bridge udocker0, up, in the host's (sandbox's) namespace", bridge or "no udocker0")
    result.check(bridge_addresses == {f"{GATEWAY}/24"}, f"udocker0 holding {GATEWAY}/24", sorted(bridge_addresses))
    peer = host_links.get(eth0.get("link_index"), {})
    result.check(eth0.get("linkinfo", {}).get("info_kind") == "veth" and peer.get("master") == "udocker0"
                 and is_up(peer), "eth0 a veth whose other end is on the host, up, plugged into udocker0",
                 f"eth0 {eth0.get('linkinfo')}, its peer {peer or 'not in the sandbox'}")


def test_the_host_reaches_a_server_in_the_container(net, www):
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        address = address_of(pid)
        page = http_get(net.sandbox, address, 80)
        inside, outside = listening_in(pid), net.sandbox.listening()
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(page == www.word + "\n", f"the host getting the container's page from http://{address}:80/",
                 repr(page))
    result.check(any(s.endswith(":80") for s in inside) and not any(s.endswith(":80") for s in outside),
                 "httpd listening in the container's namespace, not in the host's",
                 f"container {sorted(inside)}, host {sorted(outside)}")


def test_the_container_reaches_the_hosts_bridge_address(net, rootfs):
    tag, ready, done = token("tag"), token("ready"), token("done")
    script = f"echo {ready}; read line; wget -qO- http://{GATEWAY}:9090/; echo {done}; read line; : {tag}"
    with net.popen(*BRIDGE, rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        address = address_of(pid)
        with Responder(net.sandbox, GATEWAY, 9090) as server:  # a server on the host's side of the bridge
            c.write("\n")
            c.wait_for(done)
            peers = list(server.peers)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(f"hello {address}\n" in result.stdout, f"the container's wget answered by {GATEWAY}:9090",
                 repr(result.stdout))
    result.check(peers == [address], f"the server on the bridge seeing the container's own address {address}",
                 peers)


def test_the_container_reaches_the_internet_through_nat(net, rootfs):
    remote = net.sandbox.add_remote()
    internet = netsandbox.INTERNET
    tag, ready = token("tag"), token("ready")
    script = f"wget -qO- http://{internet}/; {hold(ready, tag)}"
    with Responder(remote, internet, 80) as server:
        with net.popen(*BRIDGE, rootfs, "sh", "-c", script) as c:
            c.wait_for(ready)
            pid = c.find_process("sh", tag)
            address = address_of(pid)
            result = c.finish(input="\n")
        peers = list(server.peers)
    result.expect_exit(0)
    uplink = netsandbox.UPLINK_HOST
    result.check(f"hello {uplink}\n" in result.stdout, f"the container ({address}) reaching {internet}:80",
                 repr(result.stdout))
    result.check(peers == [uplink], f"the remote server seeing the host's uplink address {uplink} "
                 f"(masqueraded), not the container's {address}", peers)


def test_two_containers_get_different_addresses_and_reach_each_other(net, www):
    tags, ready = [token("tag"), token("tag")], token("ready")
    with net.popen(*BRIDGE, www.rootfs, "sh", "-c", serve_web(ready, tags[0])) as first, \
            net.popen(*BRIDGE, www.rootfs, "sh", "-c",
                      f"echo {ready}; read peer; wget -qO- http://$peer/; read line; : {tags[1]}") as second:
        first.wait_for(ready)
        second.wait_for(ready)
        pids = [first.find_process("sh", tags[0]), second.find_process("sh", tags[1])]
        addresses = [address_of(pid) for pid in pids]
        leases = net.leases()
        second.write(addresses[0] + "\n")
        second.wait_for(www.word)
        second.finish(input="\n").expect_exit(0)
        result = first.finish(input="\n")
    result.expect_exit(0)
    result.check(addresses[0] != addresses[1], "two different addresses", addresses)
    result.check(sorted(leases) == sorted(addresses), "one lease for each", leases)


def test_after_exit_the_veth_and_the_lease_are_gone_and_the_bridge_stays(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        address = address_of(pid)
        during = (net.veths(), net.leases())
        result = c.finish(input="\n")
    result.expect_exit(0)
    after = (net.veths(), net.leases())
    result.check(len(during[0]) == 1 and list(during[1]) == [address], "one veth and one lease while it runs",
                 during)
    result.check(after == ([], {}), "no veth and no lease left after it exited", after)
    result.check("udocker0" in net.links(), "udocker0 still there (the next container uses it)", sorted(net.links()))


def test_resolv_conf_in_bridge_mode(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        resolv, hosts = container_file(pid, "/etc/resolv.conf"), container_file(pid, "/etc/hosts")
        address, hostname = address_of(pid), uts_hostname(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    servers = [line.split()[1] for line in (resolv or "").splitlines() if line.split()[:1] == ["nameserver"]]
    expected = usable_host_nameservers() or ["8.8.8.8", "8.8.4.4"]
    result.check(servers == expected, f"the host's nameservers without loopback or IPv6 ones, else Docker's "
                 f"fallback: {expected}", f"{servers} in {resolv!r}")
    result.check([address, hostname] in [line.split() for line in (hosts or "").splitlines()],
                 f"/etc/hosts naming the container on its address: '{address}\\t{hostname}'", repr(hosts))


def usable_host_nameservers() -> list[str]:
    """The host's nameservers a container can use: not on 127.0.0.0/8, not IPv6 (systemd-resolved: its upstreams)."""
    def servers(path):
        text = testing.read(path) or ""
        return [line.split()[1] for line in text.splitlines() if line.split()[:1] == ["nameserver"]
                and len(line.split()) > 1]

    def usable(found):
        return [s for s in found if ":" not in s and not s.startswith("127.")]

    found = servers("/etc/resolv.conf")
    if found and not usable(found):
        found = servers("/run/systemd/resolve/resolv.conf") or found
    return usable(found)


def test_a_lease_left_by_a_killed_runtime_is_reclaimed(net, rootfs):
    """udocker killed with SIGKILL cannot release its lease: the next container reclaims the address
    (its holder is gone), and nothing else is left (the veth goes with the container's namespace)."""
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        address = address_of(c.find_process("sh", tag))
        c.kill_process(c.pid, signal.SIGKILL)
        testing.kill_tree(c.pid)  # and the container, as `workshop clean` would
        c.finish()
    left = net.leases()
    gone = wait_until(lambda: not net.veths())
    with net.popen(*BRIDGE, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        again = address_of(c.find_process("sh", tag))
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(list(left) == [address], f"the killed runtime's lease for {address} left behind", left)
    result.check(gone, "its veth gone with the container's namespace", net.veths())
    result.check(again == address, f"{address} reclaimed by the next container", again)
    result.check(net.leases() == {}, "no lease after the second container", net.leases())


def test_a_udocker0_that_is_not_a_bridge_is_refused(net, rootfs):
    net.sandbox.run(["ip", "link", "add", "udocker0", "type", "veth", "peer", "name", "udocker0-peer"], check=True)
    try:
        result = net.run(*BRIDGE, "-p", "8080:80", rootfs, "true")
    finally:
        net.sandbox.run(["ip", "link", "del", "udocker0"], check=True)
    result.expect_error(125, "udocker0", "not a bridge")
    result.check(net.leases() == {}, "no lease left", net.leases())
    result.check(net.sandbox.listening() == set(), "no port left listening", net.sandbox.listening())


def test_a_container_that_fails_to_start_leaves_no_network_behind(net, rootfs):
    missing = f"/{token('missing-')}"
    result = net.run(*BRIDGE, "-p", "8080:80", rootfs, missing)
    result.expect_error(127, missing)
    result.check(net.veths() == [] and net.leases() == {}, "no veth and no lease left", (net.veths(), net.leases()))
    result.check(net.sandbox.listening() == set(), "port 8080 closed", net.sandbox.listening())
    result.check("udocker0" in net.links(), "udocker0 made (and kept), as for a container that ran",
                 sorted(net.links()))


def test_an_image_gets_its_network_files_too(net, cli):
    """A pulled image in bridge mode: the same /etc/hostname and /etc/hosts, on the overlay."""
    image = cli.ref("workshop/busybox:latest")
    cli.pull("workshop/busybox:latest").expect_exit(0)  # on the host: the registry is on its loopback
    tag, ready = token("tag"), token("ready")
    with net.popen(*BRIDGE, image, "sh", "-c", hold(ready, tag), env=cli.env) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        address, hostname = address_of(pid), uts_hostname(pid)
        files = {name: container_file(pid, f"/etc/{name}") for name in ("hostname", "hosts")}
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(files["hostname"] == hostname + "\n", f"/etc/hostname {hostname!r}", repr(files["hostname"]))
    result.check([address, hostname] in [line.split() for line in (files["hosts"] or "").splitlines()],
                 f"/etc/hosts with '{address}\\t{hostname}'", repr(files["hosts"]))
