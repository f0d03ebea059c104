"""Step 2: a UTS namespace: the container has a hostname of its own, the host keeps its own."""

import re
import socket

from workshop.testing import hold, token

CONTAINER_ID = re.compile(r"[0-9a-f]{12}")


def test_hostname_option_sets_the_hostname(udocker, rootfs):
    name = token("box-")
    udocker.run("run", "--hostname", name, rootfs, "hostname").expect_exit(0).expect_stdout(name + "\n")


def test_default_hostname_is_the_container_id(udocker, rootfs):
    result = udocker.run("run", rootfs, "hostname").expect_exit(0)
    name = result.stdout.strip()
    result.check(CONTAINER_ID.fullmatch(name) is not None, "12 lowercase hex digits (the container id)", repr(name))
    result.check(name != socket.gethostname(), "a hostname other than the host's", repr(name))


def test_every_container_gets_its_own_id(udocker, rootfs):
    first = udocker.run("run", rootfs, "hostname").expect_exit(0)
    second = udocker.run("run", rootfs, "hostname").expect_exit(0)
    second.check(first.stdout != second.stdout and CONTAINER_ID.fullmatch(second.stdout.strip()) is not None,
                 f"another 12-hex-digit id than the first container's {first.stdout.strip()!r}",
                 repr(second.stdout.strip()))


def test_host_hostname_is_unchanged(udocker, rootfs):
    host = socket.gethostname()
    name, ready = token("box-"), token("ready")
    with udocker.popen("run", "--hostname", name, rootfs, "sh", "-c", f"hostname; {hold(ready)}") as c:
        c.wait_for(ready)
        during = socket.gethostname()
        result = c.finish(input="\n")
    result.expect_exit(0).expect_stdout(f"{name}\n{ready}\n")
    result.check(during == host, f"the host's hostname to stay {host!r} while the container runs", repr(during))
    after = socket.gethostname()
    result.check(after == host, f"the host's hostname to stay {host!r} after the container ran", repr(after))


def test_hostname_of_64_characters_at_most(udocker, rootfs):
    longest = (token("h") * 6)[:64]  # the kernel's limit: 64 characters
    udocker.run("run", "--hostname", longest, rootfs, "hostname").expect_exit(0).expect_stdout(longest + "\n")
    udocker.run("run", "--hostname", longest + "x", rootfs, "hostname").expect_error(125, "hostname")
