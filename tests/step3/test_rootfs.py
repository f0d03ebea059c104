"""Step 3: chroot: IMAGE, a root filesystem directory, becomes the container's /."""

import os

from workshop import testing
from workshop.testing import hold, token


def _marker(rootfs):
    name = token("marker-")
    (rootfs / name).write_text(name)
    return name


def test_image_is_the_root_directory(udocker, private_rootfs):
    marker = _marker(private_rootfs)
    result = udocker.run("run", private_rootfs, "ls", "/").expect_exit(0)
    result.check(marker in result.stdout_lines(), f"{marker!r} (a file at the top of IMAGE) in `ls /`",
                 repr(result.stdout))


def test_working_directory_is_the_root(udocker, rootfs):
    udocker.run("run", rootfs, "pwd").expect_exit(0).expect_stdout("/\n")


def test_host_files_are_unreachable(udocker, rootfs, tmp_path):
    secret = token("secret-")
    path = tmp_path / secret
    path.write_text(secret)
    os.chmod(tmp_path, 0o755)
    result = udocker.run("run", rootfs, "cat", path).expect_no_traceback()
    result.check(result.returncode != 0 and secret not in result.stdout,
                 f"`cat {path}` (a file of the host) to fail", f"exit {result.returncode}")


def test_dot_dot_does_not_leave_the_root(udocker, private_rootfs):
    marker = _marker(private_rootfs)
    result = udocker.run("run", private_rootfs, "sh", "-c", "cd ../../../../../../..; pwd; ls; cd ..; ls /")
    result.expect_exit(0)
    lines = result.stdout_lines()
    result.check(lines[:1] == ["/"] and lines.count(marker) == 2,
                 f"`cd ../..` to stay in IMAGE: '/' and {marker!r} twice", repr(result.stdout))


def test_missing_image_is_an_error(udocker, tmp_path):
    missing = tmp_path / token("no-such-rootfs-")
    udocker.run("run", missing, "true").expect_error(125, str(missing))


def test_empty_image_is_an_error(udocker, tmp_path):
    empty = tmp_path / token("empty-")
    empty.mkdir()
    udocker.run("run", empty, "true").expect_error(125)


def test_no_descriptor_of_the_caller_reaches_the_container(udocker, rootfs, tmp_path):
    """A directory descriptor the caller left open would let the container fchdir(2) out of its
    root (runc's CVE-2024-21626): the command holds 0, 1 and 2 only, seen from the host and inside."""
    tag, ready = token("tag"), token("ready")
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # not close-on-exec for the runtime
    try:
        script = f"(: <&{leaked}) && echo fd-{leaked}-open || echo fd-{leaked}-closed; {hold(ready, tag)}"
        with udocker.popen("run", rootfs, "sh", "-c", script, pass_fds=(leaked,)) as c:
            c.wait_for(ready)
            pid = c.find_process("sh", tag)
            fds = testing.open_fds(pid)
            result = c.finish(input="\n")
    finally:
        os.close(leaked)
    result.expect_exit(0)
    result.check(fds == [0, 1, 2], f"descriptors 0, 1 and 2 only in /proc/{pid}/fd (the test left {leaked} open "
                 "for udocker, as a careless caller would)", repr(fds))
    result.check(f"fd-{leaked}-closed" in result.stdout, f"descriptor {leaked} closed inside the container",
                 repr(result.stdout.splitlines()[:1]))


def test_the_hosts_root_cannot_be_the_image(udocker):
    udocker.run("run", "/", "true").expect_error(125, "root")
