"""reference/udocker/netlink.py against a sandbox network namespace, read back through `ip -j` too.

Each function runs in a thread that joined the sandbox (Sandbox.call): the
netlink socket it opens belongs to the sandbox, never to the host.
"""
import errno
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import REFERENCE, check, nothing_left_on_the_network, sandbox  # noqa: E402,F401
from udocker import netlink  # noqa: E402
from workshop import testing  # noqa: E402


def ip_links(ns):
    return {link["ifname"]: link for link in ns.ip_json("-d", "link", "show")}


def test_lo_starts_down_and_comes_up(tmp_path):
    """A new namespace's lo is down (what the child must fix); link_set_up brings it up."""
    from workshop.netsandbox import Namespace

    bare = Namespace(tmp_path / "bare.net", "bare")
    try:
        bare.run(["ip", "link", "set", "lo", "down"], check=True)
        check(not bare.call(netlink.link, "lo").up, "lo down after `ip link set lo down`", "up")
        bare.call(netlink.link_set_up, "lo")
        flags = bare.ip_json("link", "show", "lo")[0]["flags"]
        check("UP" in flags, "UP in `ip -j link show lo` after link_set_up", flags)
    finally:
        bare.close()


def test_veth_and_bridge(sandbox):
    """link_add_veth, link_add_bridge, link_set_master, link_set_up: as `ip -d link` sees them."""
    sandbox.call(netlink.link_add_bridge, "br-test")
    sandbox.call(netlink.link_add_veth, "vtest0", "vtest1")
    sandbox.call(netlink.link_set_master, "vtest0", "br-test")
    for name in ("br-test", "vtest0"):
        sandbox.call(netlink.link_set_up, name)
    links = ip_links(sandbox)
    check(links["br-test"]["linkinfo"]["info_kind"] == "bridge", "br-test of kind bridge", links["br-test"].get("linkinfo"))
    check(links["vtest0"]["linkinfo"]["info_kind"] == "veth", "vtest0 of kind veth", links["vtest0"].get("linkinfo"))
    check(links["vtest0"].get("master") == "br-test", "vtest0 master br-test", links["vtest0"].get("master"))
    check("UP" in links["vtest0"]["flags"] and "UP" not in links["vtest1"]["flags"],
          "vtest0 up, vtest1 still down", (links["vtest0"]["flags"], links["vtest1"]["flags"]))
    # and netlink's own reader agrees
    ours = {link.name: link for link in sandbox.call(netlink.links)}
    check(ours["vtest0"].kind == "veth" and ours["vtest0"].master == ours["br-test"].index,
          "links(): vtest0 a veth with master br-test's index", ours["vtest0"])
    check(ours["vtest0"].peer == ours["vtest1"].index, "links(): vtest0's peer is vtest1", ours["vtest0"])
    check(ours["vtest0"].up and not ours["vtest1"].up, "links(): vtest0 up, vtest1 down", (ours["vtest0"], ours["vtest1"]))
    check(sandbox.call(netlink.link_index, "vtest1") == links["vtest1"]["ifindex"],
          f"link_index('vtest1') == {links['vtest1']['ifindex']}", sandbox.call(netlink.link_index, "vtest1"))


def test_set_down_rename_and_delete(sandbox):
    """link_set_down, link_set_name (while down), link_del (a veth takes its peer along)."""
    sandbox.call(netlink.link_add_veth, "va", "vb")
    sandbox.call(netlink.link_set_up, "va")
    sandbox.call(netlink.link_set_down, "va")
    check("UP" not in ip_links(sandbox)["va"]["flags"], "va down", ip_links(sandbox)["va"]["flags"])
    sandbox.call(netlink.link_set_name, "vb", "eth0")
    names = set(ip_links(sandbox))
    check("eth0" in names and "vb" not in names, "vb renamed eth0", names)
    check(sandbox.call(netlink.link_exists, "eth0") and not sandbox.call(netlink.link_exists, "vb"),
          "link_exists: eth0 yes, vb no", "otherwise")
    sandbox.call(netlink.link_del, "va")
    names = set(ip_links(sandbox))
    check(names == {"lo"}, "only lo once va is deleted (its peer with it)", names)


def test_addresses_and_default_route(sandbox):
    """addr_add and route_add_default; read back by addresses(), routes() and `ip -j`."""
    sandbox.call(netlink.link_add_bridge, "br-test")
    sandbox.call(netlink.link_set_up, "br-test")
    sandbox.call(netlink.addr_add, "br-test", "10.88.0.1/24")
    sandbox.call(netlink.link_add_veth, "va", "vb")
    sandbox.call(netlink.addr_add, "vb", "10.99.0.2/24")
    sandbox.call(netlink.link_set_up, "vb")
    sandbox.call(netlink.route_add_default, "10.88.0.1")
    seen = {(a["ifname"], f"{x['local']}/{x['prefixlen']}") for a in sandbox.ip_json("addr") for x in a["addr_info"]
            if x["family"] == "inet"}
    check({("br-test", "10.88.0.1/24"), ("vb", "10.99.0.2/24")} <= seen, "both addresses in `ip -j addr`", seen)
    ours = {(a.ifname, a.cidr) for a in sandbox.call(netlink.addresses)}
    check({("br-test", "10.88.0.1/24"), ("vb", "10.99.0.2/24"), ("lo", "127.0.0.1/8")} <= ours,
          "the same in addresses()", ours)
    check({a.cidr for a in sandbox.call(netlink.addresses, "vb") if ":" not in a.address} == {"10.99.0.2/24"},
          "addresses('vb') == 10.99.0.2/24", sandbox.call(netlink.addresses, "vb"))
    default = [r for r in sandbox.ip_json("route") if r["dst"] == "default"]
    check(len(default) == 1 and default[0]["gateway"] == "10.88.0.1" and default[0]["dev"] == "br-test",
          "`ip -j route`: default via 10.88.0.1 dev br-test", default)
    ours = [(r.destination, r.gateway, r.ifname) for r in sandbox.call(netlink.routes)]
    check(("default", "10.88.0.1", "br-test") in ours and ("10.88.0.0/24", None, "br-test") in ours,
          "routes(): the default route and the bridge's subnet", ours)


def test_move_a_peer_into_another_namespace(sandbox, tmp_path):
    """link_set_netns by pid and by namespace file: the link leaves the sandbox and appears there."""
    from workshop.netsandbox import Namespace

    other = Namespace(tmp_path / "other.net", "other")
    holder = other.popen(["sleep", "30"])  # nsenter execs sleep: its pid is in the other namespace
    try:
        sandbox.call(netlink.link_add_veth, "host0", "peer0")
        sandbox.call(netlink.link_add_veth, "host1", "peer1")
        sandbox.call(netlink.link_set_netns, "peer0", pid=holder.pid)
        with open(other.path) as namespace_file:
            sandbox.call(netlink.link_set_netns, "peer1", fd=namespace_file.fileno())
        here, there = set(ip_links(sandbox)), set(ip_links(other))
        check({"peer0", "peer1"}.isdisjoint(here), "peer0 and peer1 gone from the sandbox", here)
        check({"peer0", "peer1"} <= there, "peer0 and peer1 in the other namespace", there)
        other.call(netlink.link_set_name, "peer0", "eth0")
        other.call(netlink.addr_add, "eth0", "10.88.0.2/24")
        other.call(netlink.link_set_up, "eth0")
        seen = [a["addr_info"][0]["local"] for a in other.ip_json("addr", "show", "eth0")]
        check(seen == ["10.88.0.2"], "eth0 10.88.0.2 in the other namespace", seen)
        with pytest.raises(TypeError):
            sandbox.call(netlink.link_set_netns, "host0")
    finally:
        holder.kill()
        holder.wait()
        other.close()


@pytest.mark.parametrize("call, args, code", [
    ("link_add_veth", ("lo", "x"), errno.EEXIST),
    ("link_add_bridge", ("lo",), errno.EEXIST),
    ("link_set_up", ("nosuch0",), errno.ENODEV),
    ("link_index", ("nosuch0",), errno.ENODEV),
    ("link_del", ("nosuch0",), errno.ENODEV),
    ("addr_add", ("lo", "127.0.0.1/8"), errno.EEXIST),
    ("addr_add", ("lo", "127.0.0/8"), errno.EINVAL),
    ("addr_add", ("lo", "10.0.0.1/33"), errno.EINVAL),
    ("route_add_default", ("10.1.1.1",), errno.ENETUNREACH),
    ("link_set_master", ("lo", "nosuch0"), errno.ENODEV),
])
def test_errors_are_oserror_with_errno(sandbox, call, args, code):
    """Each failure is an OSError with the kernel's errno and the object's name, like syscalls.py."""
    try:
        sandbox.call(getattr(netlink, call), *args)
    except OSError as error:
        check(error.errno == code, f"{call}{args}: errno {errno.errorcode[code]}",
              f"{errno.errorcode.get(error.errno, error.errno)}: {error}")
        check(str(args[-1]) in str(error) or call.startswith("route") or call == "link_set_master",
              f"the message to name {args[-1]!r}", str(error))
    else:
        raise AssertionError(f"expected {call}{args} to raise OSError({errno.errorcode[code]}), got no error")


def test_a_second_route_is_eexist(sandbox):
    sandbox.call(netlink.link_add_bridge, "br-test")
    sandbox.call(netlink.link_set_up, "br-test")
    sandbox.call(netlink.addr_add, "br-test", "10.88.0.1/24")
    sandbox.call(netlink.route_add_default, "10.88.0.1")
    with pytest.raises(FileExistsError):
        sandbox.call(netlink.route_add_default, "10.88.0.1")


def test_netlink_needs_privilege(sandbox):
    """As an unprivileged user, a change is EPERM (and the runtime reports it in one line)."""
    code = ("from udocker import netlink\n"
            "try:\n    netlink.link_add_bridge('br-x')\n"
            "except OSError as e:\n    print(e.errno)\n")
    result = sandbox.run(["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "/usr/bin/python3", "-c", code],
                         env={"PYTHONPATH": str(testing.world_readable(REFERENCE)), "PYTHONDONTWRITEBYTECODE": "1"})
    check(result.stdout.strip() == str(errno.EPERM), f"errno {errno.EPERM} (EPERM)", (result.stdout, result.stderr))


def test_import_is_cheap():
    """netlink loads no heavy module: not socket (enum, selectors), not subprocess."""
    code = "import sys; from udocker import netlink; print(' '.join(sorted(m for m in ('socket', 'selectors', 'enum', 'subprocess', 'ipaddress') if m in sys.modules)))"
    result = subprocess.run(["/usr/bin/python3", "-S", "-c", code], capture_output=True, text=True, timeout=10,
                            env={"PYTHONPATH": str(REFERENCE)})
    check(result.returncode == 0 and result.stdout.strip() == "", "no heavy module loaded",
          repr(result.stdout + result.stderr))
