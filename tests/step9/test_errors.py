"""Step 9: bad network options are refused before anything runs, in one line with exit status 125;
and the good ones next to them work (the options are given code: the network is yours)."""

import pytest

from networksupport import http_get, links_in, netns, serve_web
from workshop.testing import hold, token


def expect_published(net, www, *spec):
    """A container run with -p SPEC serves its page on 127.0.0.1:8080 of the host."""
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "-p", *spec, www.rootfs, "sh", "-c", serve_web(ready, tag)) as c:
        c.wait_for(ready)
        page = http_get(net.sandbox, "127.0.0.1", 8080)
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(page == www.word + "\n", f"-p {' '.join(spec)}: the page on 127.0.0.1:8080", repr(page))


@pytest.mark.parametrize("spec, words", [
    ("80x:80", ["80x"]),
    ("8080:http", ["http"]),
    ("8080", ["8080", "HOSTPORT:CONTAINERPORT"]),
    ("8080:80/udp", ["udp", "tcp"]),
])
def test_a_bad_port_is_refused(net, www, spec, words):
    net.run("run", "-p", spec, www.rootfs, "true").expect_error(125, *words)
    expect_published(net, www, "8080:80")


@pytest.mark.parametrize("spec", ["65536:80", "8080:0", "8080:70000"])
def test_a_port_out_of_range_is_refused(net, www, spec):
    net.run("run", "-p", spec, www.rootfs, "true").expect_error(125, "1 to 65535")
    expect_published(net, www, "127.0.0.1:8080:80")


def test_an_address_the_host_lacks_is_refused(net, www):
    """The sandbox host has 127.0.0.1 only: 198.51.100.7 is none of its addresses; 300.1.1.1 is none at all."""
    net.run("run", "-p", "198.51.100.7:8080:80", www.rootfs, "true").expect_error(
        125, "198.51.100.7", "not an address of this host")
    net.run("run", "-p", "300.1.1.1:8080:80", www.rootfs, "true").expect_error(125, "300.1.1.1")
    expect_published(net, www, "127.0.0.1:8080:80")


def test_an_unknown_network_mode_is_refused(net, rootfs):
    mode = token("net-")
    net.run("run", "--network", mode, rootfs, "true").expect_error(125, mode, "none, bridge or host")
    tag, ready = token("tag"), token("ready")
    with net.popen("run", "--network", "none", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        inside = netns(c.find_process("sh", tag))
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(inside != net.sandbox.inode, "--network none: a namespace of its own", "the sandbox's")


def test_bridge_mode_rootless_is_refused(net, rootfs):
    """A bridge and NAT rules are the host's: an ordinary user may not make them. The error names the
    way that works without root: the default network, with -p."""
    result = net.run("run", "--network", "bridge", rootfs, "true", as_user=True)
    result.expect_error(125, "--network bridge", "root", "-p")
    result.check(net.leases() == {} and "udocker0" not in net.links(), "no lease and no bridge made",
                 (net.leases(), sorted(net.links())))
    tag, ready = token("tag"), token("ready")
    with net.popen("run", rootfs, "sh", "-c", hold(ready, tag), as_user=True) as c:
        c.wait_for(ready)
        links = links_in(c.find_process("sh", tag))
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(list(links) == ["lo"], "rootless, the default network: a namespace with lo only", sorted(links))
