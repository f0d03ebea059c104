"""Step 10: the breakouts of a step-9 container, closed. Each with a harmless payload:

* a disk: a loop device the test makes over a scratch file (never a disk of the host);
  the container makes a node for it (mknod) and tries to read it and mount it;
* the memory cgroup: the container tries to move itself into a cgroup the test made,
  out of its --memory limit;
* the kernel's settings: /proc/sys/kernel/core_pattern and /proc/sysrq-trigger are
  opened for writing and closed at once, never written (`dd count=0 conv=notrunc`
  reads nothing and writes nothing); so is a file of /sys;
* Docker's masked paths (/proc/kcore, /proc/timer_list ...) must show nothing.

A path this kernel lacks is skipped, and the test says so. Seen from the host: the
container's /proc/PID/mountinfo, /proc/PID/cgroup and its cgroup's files.
"""
import errno
import os
import subprocess
import time

import pytest

from lockdownsupport import MASKED_PATHS, READONLY_PATHS, Running, outcomes, writable_sysfs_file
from workshop import testing
from workshop.testing import token

READ_ROFS = "Read-only file system"


# --------------------------------------------------------------------------- a disk


@pytest.fixture
def loop_disk(tmp_path):
    """A loop device over a 4 MiB ext2 scratch file labelled with a token: (device, label). Detached after."""
    for tool in ("losetup", "mkfs.ext2"):
        if not subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0:
            pytest.fail(f"this check needs {tool} on the host (apt-get install util-linux e2fsprogs)")
    image, label = tmp_path / "disk.img", token("d")[:16]
    with open(image, "wb") as file:
        file.truncate(4 * 1024 * 1024)
    subprocess.run(["mkfs.ext2", "-q", "-F", "-L", label, str(image)], check=True, capture_output=True)
    made = subprocess.run(["losetup", "--find", "--show", str(image)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.fail(f"losetup --find --show {image} failed: {made.stderr.strip()} (a kernel without loop devices?)")
    device = made.stdout.strip()
    print(f"$ losetup --find --show {image}   # {device}, ext2 labelled {label}")
    try:
        yield device, label
    finally:
        deadline = time.monotonic() + 5
        while subprocess.run(["losetup", "-d", device], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"cannot detach {device} (still mounted somewhere?)")
            time.sleep(0.1)


def test_a_device_node_of_a_disk_cannot_be_read_or_mounted(udocker, private_rootfs, loop_disk):
    device, label = loop_disk
    rdev = os.stat(device).st_rdev
    major, minor = os.major(rdev), os.minor(rdev)
    script = "".join(
        f"busybox mknod {node} b {major} {minor}; echo mknod{node}=$?\n"
        f"busybox dd if={node} bs=1 skip=1144 count=16 2>&1 | busybox tr -d '\\000'; echo\n"  # the ext2 label
        for node in ("/dev/disk", "/tmp/disk")  # /dev: its tmpfs; /tmp: the root filesystem
    ) + "busybox mkdir -p /dev/mnt; try mount busybox mount -t ext2 /dev/disk /dev/mnt\n"
    with Running(udocker, private_rootfs, script=script) as box:
        mounted = [m for m in box.all_mounts() if m.device == f"{major}:{minor}"]
        result = box.finish()
    result.check(label not in result.stdout,
                 f"the container unable to read the disk {device} through a node of its own (nodev mounts)",
                 f"it read the disk's label {label!r}")
    result.check(not mounted, f"no mount of {device} ({major}:{minor}) in /proc/{box.pid}/mountinfo",
                 "; ".join(map(str, mounted)))
    result.check(outcomes(result).get("mount", "").startswith("failed"), "mounting the node to fail",
                 outcomes(result).get("mount", "no line"))


# --------------------------------------------------------------------------- the memory cgroup


@pytest.fixture
def outside_cgroup():
    """A cgroup without limits outside the container's, made by the test in its own memory cgroup
    (never at the hierarchy's root, which may not be ours): (path, fstype)."""
    hierarchy = testing.cgroup_layout_mount("memory")
    fstype = next(m.fstype for m in testing.mounts() if m.mountpoint == str(hierarchy))
    path = testing.process_cgroups("self")["memory"] / f"udocker-escape-{token()}"
    path.mkdir()
    try:
        yield path, fstype, path.relative_to(hierarchy)
    finally:
        deadline = time.monotonic() + 5
        while True:
            try:
                path.rmdir()
                break
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


def test_the_memory_cgroup_cannot_be_escaped(udocker, rootfs, outside_cgroup):
    path, fstype, relative = outside_cgroup  # relative: its path from the hierarchy's root
    mount = "mount -t cgroup -o memory cgroup /dev/cg" if fstype == "cgroup" else "mount -t cgroup2 cgroup2 /dev/cg"
    script = (f"busybox mkdir -p /dev/cg; try mount busybox {mount}\n"
              # by its path from the root (no cgroup namespace), or from the container's parent (a
              # cgroup namespace made before joining the container's cgroup: the parent is its root)
              f"try move sh -c 'echo 1 > /dev/cg/{relative}/cgroup.procs || echo 1 > /dev/cg/{path.name}/cgroup.procs'\n")
    limit = 64 * 1024 * 1024
    with Running(udocker, "-m", "64m", rootfs, script=script) as box:
        memory = testing.process_cgroups(box.pid).get("memory")
        inside = (path / "cgroup.procs").read_text().split()
        limit_file = memory and memory / ("memory.limit_in_bytes" if fstype == "cgroup" else "memory.max")
        got = testing.read(str(limit_file)) if limit_file else None
        result = box.finish()
    result.check(not inside, f"nobody in the test's cgroup {path} ({path}/cgroup.procs, read on the host)",
                 f"pids {inside}: the container escaped its limit")
    result.check(memory is not None and memory != path, f"the container's shell still in its own memory cgroup "
                 f"(/proc/{box.pid}/cgroup)", str(memory))
    result.check(got is not None and got.strip() == str(limit), f"{limit_file} = {limit} (-m 64m)", repr(got))


# --------------------------------------------------------------------------- /proc and /sys


def _open_for_writing(path: str) -> str:
    """A shell line: open path for writing and close it (dd reads nothing, writes nothing, truncates nothing)."""
    return f"try {path} busybox dd if=/dev/null of={path} count=0 conv=notrunc\n"


def test_kernel_settings_cannot_be_opened_for_writing(udocker, rootfs):
    paths = [p for p in ("/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger") if os.path.exists(p)]
    for missing in {"/proc/sys/kernel/core_pattern", "/proc/sysrq-trigger"} - set(paths):
        print(f"skipped: this kernel has no {missing}")
    with Running(udocker, rootfs, script="".join(map(_open_for_writing, paths))) as box:
        mounts = box.mounts()
        result = box.finish()
    tried = outcomes(result)
    for path in paths:
        got = tried.get(path, "no line")
        result.check(got.startswith("failed") and READ_ROFS in got,
                     f"opening {path} for writing to fail ({READ_ROFS}); it was never written", got)
    for path in READONLY_PATHS:
        if not os.path.exists(path):
            if path != "/proc/sysrq-trigger":  # said above
                print(f"skipped: this kernel has no {path}")
            continue
        entry = mounts.get(path)
        result.check(entry is not None and "ro" in entry.flags,
                     f"a read-only mount on {path} (/proc/{box.pid}/mountinfo)", str(entry))


def test_sys_is_read_only(udocker, rootfs):
    target = writable_sysfs_file()
    if target is None:
        pytest.fail("no file under /sys/kernel that root may write: nothing to try")
    script = ("[ -d /sys/kernel ] || busybox mount -t sysfs sysfs /sys\n"  # a step-9 container's root may
              + _open_for_writing(target))
    with Running(udocker, rootfs, script=script) as box:
        mounts = box.all_mounts()
        result = box.finish()
    got = outcomes(result).get(target, "no line")
    result.check(got.startswith("failed") and READ_ROFS in got,
                 f"opening {target} for writing to fail ({READ_ROFS}); it was never written", got)
    top = {m.mountpoint: m for m in mounts}
    sys_mount = top.get("/sys")
    result.check(sys_mount is not None and sys_mount.fstype == "sysfs" and "ro" in sys_mount.flags,
                 f"a read-only sysfs on /sys (/proc/{box.pid}/mountinfo)", str(sys_mount))
    writable = [str(m) for m in mounts if m.mountpoint.startswith("/sys/fs/cgroup") and "ro" not in m.flags
                and top.get(m.mountpoint) is m]
    result.check("/sys/fs/cgroup" in top and not writable, "/sys/fs/cgroup and each hierarchy in it read-only",
                 "; ".join(writable) or "no /sys/fs/cgroup")


def test_dockers_masked_paths_show_nothing(udocker, rootfs):
    present = [p for p in MASKED_PATHS if os.path.exists(p)]
    for path in sorted(set(MASKED_PATHS) - set(present)):
        print(f"skipped: this kernel has no {path}")
    shows = [p for p in present if (os.listdir(p) if os.path.isdir(p) else testing.read(p))]
    if not shows:
        pytest.fail(f"none of Docker's masked paths shows anything on this host ({present}): nothing to check")
    script = "[ -d /sys/kernel ] || busybox mount -t sysfs sysfs /sys\n" + "".join(
        f"if [ -d {p} ]; then echo {p}=$(ls -A {p} | wc -l); elif [ -e {p} ]; then "
        f"echo {p}=$(head -c 4096 {p} 2>/dev/null | wc -c); else echo {p}=absent; fi\n" for p in present)
    with Running(udocker, rootfs, script=script) as box:
        mounts = box.mounts()
        result = box.finish()
    seen = outcomes(result)
    for path in present:
        result.check(seen.get(path) in ("0", "absent"), f"{path} empty in the container", f"{seen.get(path)}")
        entry = mounts.get(path)
        if os.path.isdir(path):
            ok = entry is not None and entry.fstype == "tmpfs" and "ro" in entry.flags
            expected = "an empty read-only tmpfs"
        else:
            ok = entry is not None and entry.root == "/null"
            expected = "/dev/null bind-mounted"
        result.check(ok, f"{expected} over {path} (/proc/{box.pid}/mountinfo)", str(entry))
