"""reference/udocker/netfiles.py: /etc/hostname, /etc/hosts and /etc/resolv.conf for a container."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import PYTHON, REFERENCE, check, nothing_left_on_the_network  # noqa: E402,F401
from udocker import netfiles  # noqa: E402


@pytest.mark.parametrize("host, expected", [
    # systemd-resolved's stub only: nothing usable, Docker's fallback
    ("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n",
     "nameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0 trust-ad\nsearch lan\n"),
    # a loopback one among real ones: dropped; comments dropped
    ("# generated\nnameserver 127.0.0.1\nnameserver 10.255.255.53\nnameserver 192.168.1.1\n",
     "nameserver 10.255.255.53\nnameserver 192.168.1.1\n"),
    # IPv6 nameservers: the container has no IPv6 route
    ("nameserver ::1\nnameserver fd00::53\nnameserver 1.1.1.1\n", "nameserver 1.1.1.1\n"),
    # an empty file
    ("", "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"),
], ids=["stub-only", "mixed", "ipv6", "empty"])
def test_resolv_conf_filtering(host, expected):
    got = netfiles.resolv_conf(host)
    check(got == expected, repr(expected), repr(got))


def test_hosts_and_hostname():
    hosts = netfiles.hosts_file("web1", "10.88.0.2")
    check(hosts.startswith("127.0.0.1\tlocalhost\n") and hosts.endswith("10.88.0.2\tweb1\n"),
          "localhost first, the container's name on its address last", repr(hosts))
    check("web1" not in netfiles.hosts_file("web1"), "no line for the name without an address (none mode)",
          repr(netfiles.hosts_file("web1")))
    check(netfiles.hostname_file("web1") == "web1\n", "'web1\\n'", repr(netfiles.hostname_file("web1")))


def test_write(tmp_path):
    files = netfiles.write(tmp_path / "etc", "web1", "10.88.0.2", resolv=True)
    check(set(files) == {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"}, "the three files", set(files))
    check(Path(files["/etc/hostname"]).read_text() == "web1\n", "hostname web1", Path(files["/etc/hostname"]).read_text())
    check(oct(os.stat(files["/etc/hosts"]).st_mode & 0o777) == "0o644", "mode 0644", oct(os.stat(files["/etc/hosts"]).st_mode))
    resolv = Path(files["/etc/resolv.conf"]).read_text()
    check("nameserver" in resolv and "127.0.0.53" not in resolv, "nameservers, no stub", resolv)
    check("/etc/resolv.conf" not in netfiles.write(tmp_path / "none", "web1", resolv=False),
          "no resolv.conf when not asked", "one")


BIND = """
import os, sys
from udocker import netfiles, syscalls
rootfs, scratch = sys.argv[1], sys.argv[2]
syscalls.unshare(syscalls.CLONE_NEWNS)
syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
files = netfiles.write(scratch, "web1", "10.88.0.2")
print("skipped", sorted(netfiles.bind(files, rootfs, create_missing=sys.argv[3] == "create")))
for name in ("hostname", "hosts", "resolv.conf"):
    path = os.path.join(rootfs, "etc", name)
    print(name, open(path).read().splitlines()[-1] if os.path.isfile(path) else "-")
"""


def bind(rootfs, scratch, mode):
    result = subprocess.run([PYTHON, "-c", BIND, str(rootfs), str(scratch), mode], capture_output=True, text=True,
                            timeout=10, env={"PYTHONPATH": str(REFERENCE), "PYTHONDONTWRITEBYTECODE": "1"})
    check(result.returncode == 0, "the bind script to succeed", result.stderr)
    return result.stdout.splitlines()


def test_bind_over_the_image_files(tmp_path):
    """In a private mount namespace, each file is mounted over the image's; the image's files are unchanged."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    for name in ("hostname", "hosts", "resolv.conf"):
        (rootfs / "etc" / name).write_text("image's own\n")
    out = bind(rootfs, tmp_path / "scratch", "keep")
    check(out[:3] == ["skipped []", "hostname web1", "hosts 10.88.0.2\tweb1"], "the container's files seen inside", out)
    check((rootfs / "etc" / "hosts").read_text() == "image's own\n", "the image's file unchanged outside",
          (rootfs / "etc" / "hosts").read_text())


def test_bind_skips_missing_targets_unless_asked(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    out = bind(rootfs, tmp_path / "scratch", "keep")
    check(out[0] == "skipped ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']", "all three skipped", out)
    check(not any((rootfs / "etc").iterdir()), "nothing created in the root filesystem", list((rootfs / "etc").iterdir()))
    out = bind(rootfs, tmp_path / "scratch", "create")
    check(out[0] == "skipped []" and out[1] == "hostname web1", "created and mounted when asked", out)


def test_bind_never_follows_a_symlink_out_of_the_rootfs(tmp_path):
    """A hostile image whose /etc points at the host: nothing is mounted or created there."""
    outside = tmp_path / "host-etc"
    outside.mkdir()
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "etc").symlink_to(outside)
    out = bind(rootfs, tmp_path / "scratch", "create")
    check(out[0] == "skipped ['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']", "all three skipped", out)
    check(list(outside.iterdir()) == [], "nothing created outside the root filesystem", list(outside.iterdir()))
