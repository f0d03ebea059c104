"""Tests of the tool's machine helpers: the busybox rootfs builder (workshop/rootfs.py) and the
machine checks of `workshop doctor` and step 0 (workshop/environment.py)."""

import os
import stat
import subprocess
import sys
import time

import pytest

from workshop import environment
from workshop import rootfs as rootfs_builder
from workshop.testing import token

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_machine_checks_are_fast():
    start = time.perf_counter()
    results = environment.run_checks()
    took = time.perf_counter() - start
    assert took < 2.0, f"expected the machine checks to take < 2 s, got {took:.2f} s"
    for check in results:
        assert isinstance(check, environment.Check) and check.name and check.detail, check
        assert check.ok or check.fix, f"expected a fix for the failed check {check.name}, got none"


def test_rootfs_build(tmp_path):
    dest = rootfs_builder.build_rootfs(tmp_path / "rootfs")
    assert dest == tmp_path / "rootfs"
    for applet in rootfs_builder.APPLETS:
        link = dest / "bin" / applet
        assert link.is_symlink() and (dest / "bin" / os.readlink(link)).resolve() == dest / "bin" / "busybox", \
            f"expected /bin/{applet} -> busybox, got {link}"
    assert rootfs_builder.is_static_elf(dest / "bin" / "busybox")
    mode = lambda p: stat.S_IMODE(os.stat(dest / p).st_mode)  # noqa: E731
    assert mode("tmp") == 0o1777, f"expected /tmp mode 1777, got {mode('tmp'):o}"
    assert mode("root") == 0o700, f"expected /root mode 0700, got {mode('root'):o}"
    for d in ("proc", "sys", "dev", "tmp", "root"):
        assert (dest / d).is_dir() and not os.listdir(dest / d), f"expected an empty /{d}"
    passwd = (dest / "etc" / "passwd").read_text()
    group = (dest / "etc" / "group").read_text()
    assert passwd.startswith("root:x:0:0:") and "\nnobody:x:65534:65534:" in passwd, passwd
    assert group.startswith("root:x:0:") and "\nnobody:x:65534:" in group, group
    word = token()
    out = subprocess.run([dest / "bin" / "sh", "-c", f"echo {word} | tr a-z A-Z"],
                         capture_output=True, text=True, timeout=10)
    assert out.stdout == word.upper() + "\n", f"expected the rootfs's sh to work, got {out}"


def test_rootfs_rebuild_in_place_and_refuse_other_dirs(tmp_path):
    dest = rootfs_builder.build_rootfs(tmp_path / "rootfs")
    (dest / "marker").write_text("kept")
    (dest / "bin" / "ls").unlink()
    rootfs_builder.build_rootfs(dest)
    assert (dest / "bin" / "ls").is_symlink() and (dest / "marker").read_text() == "kept"
    other = tmp_path / "other"
    other.mkdir()
    (other / "precious").write_text("x")
    with pytest.raises(rootfs_builder.RootfsError):
        rootfs_builder.build_rootfs(other)
    assert (other / "precious").read_text() == "x"


def test_rootfs_cli(tmp_path):
    env = {**os.environ, "WORKSHOP_ROOTFS": str(tmp_path / "from-env")}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-m", "workshop.rootfs"], capture_output=True, text=True,
                         env=env, timeout=30)
    assert out.returncode == 0, f"expected exit 0, got {out}"
    assert (tmp_path / "from-env" / "bin" / "busybox").is_file(), "expected WORKSHOP_ROOTFS to be the default DEST"
    out = subprocess.run([sys.executable, "-m", "workshop.rootfs", str(tmp_path / "arg")], capture_output=True,
                         text=True, env=env, timeout=30)
    assert out.returncode == 0 and (tmp_path / "arg" / "bin" / "sh").is_symlink(), f"got {out}"
