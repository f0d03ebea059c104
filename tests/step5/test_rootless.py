"""Step 5: rootless containers. Run by an ordinary user (here: uid 4242, through setpriv),
udocker creates a user namespace in which that user is root (uid 0 <-> 4242, one id)."""

import random

from workshop import testing
from workshop.testing import ROOTLESS_UID, hold, token


def test_rootless_user_is_root_inside(udocker, rootfs):
    udocker.run("run", rootfs, "sh", "-c", "id -u; id -g", as_user=True).expect_exit(0).expect_stdout("0\n0\n")


def test_rootless_container_runs_as_the_user_on_the_host(udocker, rootfs):
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag), as_user=True) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        uids, gids = testing.status_field(pid, "Uid"), testing.status_field(pid, "Gid")
        result = c.finish(input="\n")
    result.expect_exit(0)
    result.check(uids == [str(ROOTLESS_UID)] * 4, f"Uid {ROOTLESS_UID} (real, effective, saved, fs) in /proc/{pid}/status",
                 " ".join(uids))
    result.check(gids == [str(ROOTLESS_UID)] * 4, f"Gid {ROOTLESS_UID} in /proc/{pid}/status", " ".join(gids))


def test_rootless_id_maps_map_0_to_the_user(udocker, rootfs):
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag), as_user=True) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        maps = {name: " ".join((testing.read(f"/proc/{pid}/{name}") or "?").split())
                for name in ("uid_map", "gid_map", "setgroups")}
        result = c.finish(input="\n")
    result.expect_exit(0)
    for name in ("uid_map", "gid_map"):
        result.check(maps[name] == f"0 {ROOTLESS_UID} 1", f"/proc/{pid}/{name} '0 {ROOTLESS_UID} 1' (read from the host)",
                     repr(maps[name]))
    result.check(maps["setgroups"] == "deny", f"/proc/{pid}/setgroups 'deny'", repr(maps["setgroups"]))


def test_rootless_exit_status(udocker, rootfs):
    code = random.randint(2, 100)
    udocker.run("run", rootfs, "sh", "-c", f"exit {code}", as_user=True).expect_exit(code)


def test_rootless_hostname(udocker, rootfs):
    name = token("box-")
    udocker.run("run", "--hostname", name, rootfs, "hostname", as_user=True).expect_exit(0).expect_stdout(name + "\n")


def test_rootless_root_directory(udocker, private_rootfs):
    marker = token("marker-")
    (private_rootfs / marker).write_text(marker)
    result = udocker.run("run", private_rootfs, "sh", "-c", "cd ../../..; ls", as_user=True).expect_exit(0)
    result.check(marker in result.stdout_lines(), f"{marker!r} (a file at the top of IMAGE) in `ls /`",
                 repr(result.stdout))


def test_rootless_command_is_pid_1(udocker, rootfs):
    udocker.run("run", rootfs, "sh", "-c", "echo $$", as_user=True).expect_exit(0).expect_stdout("1\n")


def test_rootless_mounts_do_not_leak_to_the_host(udocker, rootfs):
    tag, ready = token("tag"), token("ready")
    before = testing.mount_table()
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag), as_user=True,
                       prefix=testing.SHARED_MOUNT_NAMESPACE) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        runtime_view = {(m.mountpoint, m.fstype) for m in testing.mounts(c.pid)}
        host_view = {(m.mountpoint, m.fstype) for m in testing.mounts()}
        during = testing.mount_table()
        inside = testing.mounts(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    host_ids = {m[0] for m in during}
    result.check(any(m.fstype == "proc" and m.mountpoint == "/proc" and m.mount_id not in host_ids for m in inside),
                 f"a proc mount of its own on /proc in the container (/proc/{pid}/mountinfo)",
                 "; ".join(map(str, inside)) or "nothing")
    leaked = sorted(runtime_view - host_view)
    result.check(not leaked, f"no mount of the container in udocker's own mount table (/proc/{c.pid}/mountinfo; "
                 "its / is shared, as on a systemd machine)", f"these propagated: {leaked[:6]}")
    result.check(during == before, "the host's mount table unchanged while the container runs",
                 f"new: {sorted(during - before)}")
    after = testing.mount_table()
    result.check(after == before, "the host's mount table unchanged after the container ran",
                 f"new: {sorted(after - before)}")
