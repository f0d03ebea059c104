"""Step 2: a UTS namespace: the container has a hostname of its own, the host keeps its own."""

import re
import socket

from workshop import testing
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


def test_only_the_container_gets_a_new_uts_namespace(udocker, rootfs):
    """From the host: the container's /proc/PID/ns/uts is new, the runtime's own stays the host's."""
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        container, runtime, host = (testing.namespace(p, "uts") for p in (pid, c.pid, "self"))
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(container != host, f"/proc/{pid}/ns/uts (the container's) to differ from the host's {host}",
                 container)
    result.check(runtime == host, f"/proc/{c.pid}/ns/uts (udocker's own) to stay the host's {host}: "
                 "unshare in the child, not in the parent", runtime)


def test_hostname_must_be_valid(udocker, rootfs):
    """Like docker: RFC 1123 names (letters, digits, '-', labels joined by dots) are set, others refused."""
    good = f"{token('web-')}.example"
    udocker.run("run", "--hostname", good, rootfs, "hostname").expect_exit(0).expect_stdout(good + "\n")
    for bad in ("a/b", "-dash", "under_score", "two..dots"):
        udocker.run("run", "--hostname", bad, rootfs, "hostname").expect_error(125, "hostname")
