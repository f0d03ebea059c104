"""Step 3: chroot: IMAGE, a root filesystem directory, becomes the container's /."""

import os

from workshop.testing import token


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
