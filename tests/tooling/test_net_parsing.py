"""reference/udocker/network.py's command line: --network MODE and -p [IP:]HOSTPORT:CONTAINERPORT.

The "is this IP local" check binds a probe socket: it runs inside a sandbox
namespace (Sandbox.call), whose only addresses are 127.0.0.1 and the uplink's.
"""
import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import check, nothing_left_on_the_network, sandbox  # noqa: E402,F401
from udocker import network  # noqa: E402
from workshop.netsandbox import UPLINK_HOST  # noqa: E402


def published(sandbox, text):
    return [repr(port) for port in sandbox.call(network.publish, text)]


@pytest.mark.parametrize("text, expected", [
    ("8080:80", ["0.0.0.0:8080->80/tcp"]),
    ("127.0.0.1:8080:80", ["127.0.0.1:8080->80/tcp"]),
    ("8080:80/tcp", ["0.0.0.0:8080->80/tcp"]),
    ("8000-8002:80-82", ["0.0.0.0:8000->80/tcp", "0.0.0.0:8001->81/tcp", "0.0.0.0:8002->82/tcp"]),
    ("1:65535", ["0.0.0.0:1->65535/tcp"]),
])
def test_good_publish(sandbox, text, expected):
    got = published(sandbox, text)
    check(got == expected, f"-p {text} -> {expected}", got)


def test_an_address_of_the_host(sandbox):
    sandbox.add_remote()
    got = published(sandbox, f"{UPLINK_HOST}:8080:80")
    check(got == [f"{UPLINK_HOST}:8080->80/tcp"], "the uplink's address accepted", got)


@pytest.mark.parametrize("text, message", [
    ("8080:abc", "invalid containerPort: abc"),
    ("70000:80", "invalid hostPort: 70000 (ports are 1 to 65535)"),
    ("0:80", "invalid hostPort: 0 (ports are 1 to 65535)"),
    ("8080:0", "invalid containerPort: 0 (ports are 1 to 65535)"),
    ("8002-8000:80-82", "invalid hostPort: 8002-8000"),
    ("8000-8001:80-82", "invalid ranges specified for container and host Ports: 80-82 and 8000-8001"),
    ("8080:", "no port specified: 8080:<empty>"),
    ("80", "no host port in 80: use HOSTPORT:CONTAINERPORT"),
    ("1.2.3:8080:80", "invalid IP address: 1.2.3"),
    ("localhost:8080:80", "invalid IP address: localhost"),
    ("203.0.113.9:8080:80", "cannot publish on 203.0.113.9: it is not an address of this host"),
    ("[::1]:8080:80", "invalid IP address in [::1]:8080:80: udocker publishes on IPv4 addresses only"),
    ("8080:80/udp", "cannot publish 8080:80/udp: udocker publishes tcp ports only"),
    ("8080:80/foo", "invalid proto: foo"),
])
def test_bad_publish(sandbox, text, message):
    try:
        sandbox.call(network.publish, text)
    except argparse.ArgumentTypeError as error:
        check(str(error).startswith(message), f"-p {text}: {message!r}", repr(str(error)))
    else:
        raise AssertionError(f"expected -p {text} to be refused with {message!r}, got it accepted")


def test_network_modes():
    check([network.network_mode(m) for m in ("none", "bridge", "host")] == ["none", "bridge", "host"],
          "the three modes", "otherwise")
    with pytest.raises(argparse.ArgumentTypeError, match="network 'nat' not found: use none, bridge or host"):
        network.network_mode("nat")


def test_repeated_publish_is_one_flat_list(sandbox):
    """-p with action="extend": -p A -p B-C gives one list of Ports, as the runtime wants it."""
    def parse():
        parser = argparse.ArgumentParser()
        parser.add_argument("-p", "--publish", type=network.publish, action="extend", default=[])
        return parser.parse_args(["-p", "8080:80", "-p", "9000-9001:90-91"]).publish

    got = [repr(port) for port in sandbox.call(parse)]
    check(got == ["0.0.0.0:8080->80/tcp", "0.0.0.0:9000->90/tcp", "0.0.0.0:9001->91/tcp"], "three ports", got)
