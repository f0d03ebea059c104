"""Step 9: a network of its own. By default (--network none) the container gets a new network
namespace with only lo, up; --network host keeps the host's, as in steps 1-8.

Every run is inside a sandbox network namespace made by the test (see tests/networksupport.py):
what the container does to "the host's" network happens to the sandbox's, never to this machine's.
"""

import pytest

from networksupport import (
    container_file, ip_json_in, is_up, links_in, netns, proc_net_devices, uts_hostname,
)
from workshop import testing
from workshop.testing import hold, token


def test_the_container_has_a_network_namespace_of_its_own(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        inside, runtime, host = netns(pid), netns(c.pid), netns("self")
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(inside not in (runtime, host, None),
                 f"/proc/{pid}/ns/net (the container's) to differ from the runtime's net:[{runtime}] "
                 f"(the sandbox's) and this machine's net:[{host}]", f"net:[{inside}]")


def test_none_has_only_lo_and_it_is_up(net, rootfs):
    net.sandbox.add_remote()  # so that the host has an interface of its own: uplink
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "--network", "none", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        inside, links, devices = netns(pid), links_in(pid), proc_net_devices(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(inside != net.sandbox.inode, "a namespace of its own", f"the sandbox's net:[{inside}]")
    result.check(list(links) == ["lo"], f"only lo in the container's namespace (ip -j link, "
                 f"nsenter --net=/proc/{pid}/ns/net)", sorted(links))
    result.check(is_up(links["lo"]), "lo up (a new namespace's lo starts down)", links["lo"].get("flags"))
    result.check(devices == ["lo"], f"only lo in /proc/{pid}/net/dev", devices)


def test_lo_down_inside_leaves_the_hosts_lo_up(net, rootfs):
    """The container takes its lo down (if it may: a locked-down container may not). Either way the
    sandbox's lo stays up, and the container's own lo is in the state the command left it in."""
    tag, ready = token("tag"), token("ready")
    script = f"ip link set lo down; echo status=$?; {hold(ready, tag)}"
    with net.popen("run", rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        sandbox_lo = net.sandbox.ip_json("link", "show", "lo")[0]
        inside_lo = ip_json_in(pid, "link", "show", "lo")[0]
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(is_up(sandbox_lo), "the host's (sandbox's) lo still up", sandbox_lo.get("flags"))
    took_effect = "status=0" in result.stdout
    result.check(is_up(inside_lo) != took_effect,
                 "the container's own lo " + ("down, as the command made it" if took_effect
                                              else "up: the command was refused"),
                 inside_lo.get("flags"))


def test_host_mode_shares_the_hosts_network(net, rootfs):
    """--network host: no namespace of its own (steps 1-8's behaviour), while the default has one;
    either way the container gets its own /etc/hostname."""
    seen = {}
    for mode in ("host", "none"):
        tag, ready = token("tag"), token("ready")
        with net.popen("run", "--network", mode, rootfs, "sh", "-c", hold(ready, tag)) as c:
            c.wait_for(ready)
            pid = c.find_process("sh", tag)
            seen[mode] = (netns(pid), container_file(pid, "/etc/hostname"), uts_hostname(pid))
            c.finish(input="\n").expect_exit(0)
    result = c.result()
    sandbox = net.sandbox.inode
    result.check(seen["host"][0] == sandbox, f"--network host: the sandbox's own net:[{sandbox}]",
                 f"net:[{seen['host'][0]}]")
    result.check(seen["none"][0] != sandbox, "--network none: a namespace of its own", "the sandbox's")
    for mode, (_, hostname_file, hostname) in seen.items():
        result.check(hostname_file == hostname + "\n", f"--network {mode}: /etc/hostname naming the container "
                     f"({hostname!r})", repr(hostname_file))


def test_etc_hostname_and_hosts_name_the_container(net, rootfs):
    name = token("box-")
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "--hostname", name, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        hostname, hosts = container_file(pid, "/etc/hostname"), container_file(pid, "/etc/hosts")
        mounted = {m.mountpoint for m in testing.mounts(pid)}
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(hostname == f"{name}\n", f"/etc/hostname {name!r} (read through /proc/{pid}/root)", repr(hostname))
    lines = [line.split() for line in (hosts or "").splitlines()]
    result.check(["127.0.0.1", "localhost"] in lines, "a '127.0.0.1 localhost' line in /etc/hosts", repr(hosts))
    result.check({"/etc/hostname", "/etc/hosts"} <= mounted,
                 "/etc/hostname and /etc/hosts mounted over the root filesystem's (the directory is not written to)",
                 sorted(p for p in mounted if p.startswith("/etc")))
    for file in ("hostname", "hosts"):
        result.check((rootfs / "etc" / file).read_text() == "", f"the root filesystem's own /etc/{file} unchanged",
                     repr((rootfs / "etc" / file).read_text()))


def test_rootless_container_has_a_network_of_its_own(net, rootfs):
    tag, ready = token("tag"), token("ready")
    with net.popen("run", rootfs, "sh", "-c", hold(ready, tag), as_user=True) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        inside, sandbox = netns(pid), net.sandbox.inode
        links = links_in(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(inside not in (sandbox, None), "a network namespace of its own, rootless",
                 f"net:[{inside}] (the sandbox's is net:[{sandbox}])")
    result.check(list(links) == ["lo"] and is_up(links["lo"]), "only lo, up (the container's root may do that "
                 "in a namespace its user namespace owns)", {n: link.get("flags") for n, link in links.items()})


@pytest.mark.parametrize("mode", ["none", "bridge", "host"])
def test_every_mode_keeps_the_earlier_steps(net, rootfs, mode):
    """PID 1, the container id as hostname, the exit status: as in steps 1-8, in every network mode."""
    tag, ready = token("tag"), token("ready")
    script = f"echo $$; hostname; {hold(ready, tag)}; exit 3"
    with net.popen("run", "--network", mode, rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        inside, hostname_file = netns(pid), container_file(pid, "/etc/hostname")
        result = c.finish(input="\n")
    result.expect_exit(3)
    lines = result.stdout_lines()
    result.check(len(lines) == 3 and lines[0] == "1" and len(lines[1]) == 12 and lines[2] == ready,
                 "PID 1, then the 12-digit container id as hostname", repr(result.stdout))
    result.check(hostname_file == lines[1] + "\n", "/etc/hostname naming the container", repr(hostname_file))
    shares = inside == net.sandbox.inode
    result.check(shares == (mode == "host"), "the sandbox's namespace" if mode == "host" else "a namespace of its own",
                 f"net:[{inside}] (the sandbox's is net:[{net.sandbox.inode}])")
