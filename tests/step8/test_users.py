"""Step 8: the container's user, groups, umask and working directory, exactly as docker sets them.

Read from the host's /proc/PID/status (Uid, Gid, Groups, Umask) where possible. The
rules are runc's (libcontainer/user) with docker's additions: a user found in the
image's /etc/passwd gets its gid and, as supplementary groups, every group of
/etc/group that lists it; a uid the image does not name gets gid 0; an explicit
:group gives that group only; the gid is always among the groups; umask 022.
"""
import os

from workshop import testing
from workshop.testing import hold, token

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "appuser:x:2000:2000:app:/home/app:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "wheel:x:10:root\n"
    "audio:x:29:appuser\n"
    "users:x:100:other,appuser\n"
    "appgroup:x:2000:\n"
    "nogroup:x:65534:\n"
)


def _users_rootfs(private_rootfs):
    """A root filesystem with an appuser in several groups (files replaced, not edited: they are hard links)."""
    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        path = private_rootfs / "etc" / name
        path.unlink()
        path.write_text(text)
    return private_rootfs


def _identity(udocker, rootfs, *options):
    """Run a shell with OPTIONS; its Uid, Gid, Groups and Umask lines of /proc/PID/status, read on the host."""
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", *options, rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        seen = {name: testing.status_field(pid, name) for name in ("Uid", "Gid", "Groups", "Umask")}
        result = c.finish(input="\n")
    result.expect_exit(0)
    return pid, seen, result


def test_a_user_gets_its_supplementary_groups_from_etc_group(udocker, private_rootfs):
    pid, seen, result = _identity(udocker, _users_rootfs(private_rootfs), "-u", "appuser")
    result.check(seen["Uid"] == ["2000"] * 4 and seen["Gid"] == ["2000"] * 4,
                 f"Uid 2000 and Gid 2000 in /proc/{pid}/status", f"Uid {seen['Uid']}, Gid {seen['Gid']}")
    result.check(sorted(map(int, seen["Groups"])) == [29, 100, 2000],
                 f"Groups 29 100 2000 in /proc/{pid}/status (appgroup, and audio and users, which list appuser)",
                 " ".join(seen["Groups"]) or "none")


def test_a_uid_the_image_does_not_name_gets_gid_0(udocker, private_rootfs):
    pid, seen, result = _identity(udocker, _users_rootfs(private_rootfs), "-u", "4321")
    result.check(seen["Uid"] == ["4321"] * 4 and seen["Gid"] == ["0"] * 4,
                 f"Uid 4321 and Gid 0 in /proc/{pid}/status (as docker: no passwd entry, no gid of its own)",
                 f"Uid {seen['Uid']}, Gid {seen['Gid']}")
    result.check(seen["Groups"] == ["0"], f"Groups 0 in /proc/{pid}/status", " ".join(seen["Groups"]) or "none")


def test_an_explicit_group_is_the_only_group(udocker, private_rootfs):
    pid, seen, result = _identity(udocker, _users_rootfs(private_rootfs), "-u", "appuser:audio")
    result.check(seen["Gid"] == ["29"] * 4 and seen["Groups"] == ["29"],
                 f"Gid 29 and Groups 29 in /proc/{pid}/status (-u appuser:audio)",
                 f"Gid {seen['Gid']}, Groups {seen['Groups']}")


def test_root_gets_the_groups_etc_group_gives_it(udocker, private_rootfs):
    pid, seen, result = _identity(udocker, _users_rootfs(private_rootfs))
    result.check(seen["Uid"] == ["0"] * 4 and sorted(map(int, seen["Groups"])) == [0, 10],
                 f"Uid 0 and Groups 0 10 in /proc/{pid}/status (wheel lists root)",
                 f"Uid {seen['Uid']}, Groups {seen['Groups']}")


def test_the_umask_is_022_whatever_the_callers(udocker, private_rootfs):
    caller = os.umask(0o077)  # the runtime inherits it, as from a careful user's shell
    try:
        pid, seen, result = _identity(udocker, _users_rootfs(private_rootfs))
    finally:
        os.umask(caller)
    result.check(seen["Umask"] == ["0022"], f"Umask 0022 in /proc/{pid}/status (the caller's was 0077)",
                 " ".join(seen["Umask"]))


def test_the_working_directory_is_entered_before_the_user_switch(udocker, private_rootfs):
    """As runc: -w /root works for a user who may not enter /root (mode 0700), since root enters it first."""
    rootfs = _users_rootfs(private_rootfs)
    (rootfs / "root").mkdir(exist_ok=True)
    (rootfs / "root").chmod(0o700)
    udocker.run("run", "-u", "65534", "-w", "/root", rootfs, "pwd").expect_exit(0).expect_stdout("/root\n")


def test_the_working_directory_must_be_absolute(udocker, private_rootfs):
    name = token("rel-")
    udocker.run("run", "-w", f"/srv/{name}", private_rootfs, "pwd").expect_exit(0).expect_stdout(f"/srv/{name}\n")
    result = udocker.run("run", "-w", name, private_rootfs, "pwd").expect_error(125, "absolute")
    result.check(not (private_rootfs / name).exists(), f"nothing made for -w {name} in the root filesystem",
                 f"{private_rootfs / name} exists")
