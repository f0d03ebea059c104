"""Step 4: PID and mount namespaces: the command is PID 1, sees only its own processes in its own
/proc, and nothing the runtime mounts shows up on the host."""

import random
import signal
import time

from workshop import testing
from workshop.testing import hold, token


def test_command_is_pid_1(udocker, rootfs):
    udocker.run("run", rootfs, "sh", "-c", "echo $$").expect_exit(0).expect_stdout("1\n")


def test_ps_shows_only_the_containers_processes(udocker, rootfs):
    tag = token("tag")
    result = udocker.run("run", rootfs, "sh", "-c", f"ps; : {tag}").expect_exit(0)
    rows = [line.split(None, 3) for line in result.stdout_lines()[1:] if line.strip()]
    pids = sorted(int(row[0]) for row in rows if row and row[0].isdigit())
    result.check(bool(rows) and len(pids) == len(rows), "`ps` to list processes (PID USER TIME COMMAND)",
                 repr(result.stdout))
    result.check(pids[0] == 1 and tag in next(" ".join(r) for r in rows if r[0] == "1"),
                 "PID 1 to be the container's command", repr(result.stdout))
    result.check(len(pids) <= 3 and pids[-1] < 10, "only the container's few processes (small PIDs)",
                 f"{len(pids)} processes, PIDs {pids}")


def test_proc_is_the_containers(udocker, rootfs):
    result = udocker.run("run", rootfs, "cat", "/proc/1/cmdline").expect_exit(0)
    argv = result.stdout.split("\0")
    result.check(argv[-1:] == [""] and argv[0].rsplit("/", 1)[-1] == "cat" and argv[1:-1] == ["/proc/1/cmdline"],
                 "/proc/1/cmdline to be the container's command 'cat\\0/proc/1/cmdline\\0'", repr(result.stdout))


def test_pid_and_mount_namespaces_are_new(udocker, rootfs):
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        seen = {kind: (testing.namespace(pid, kind), testing.namespace("self", kind)) for kind in ("pid", "mnt", "user")}
        runtime = {kind: testing.namespace(c.pid, kind) for kind in ("pid", "mnt")}
        result = c.finish(input="\n")
    result.expect_exit(0)
    for kind in ("pid", "mnt"):
        container, host = seen[kind]
        result.check(container != host, f"/proc/{pid}/ns/{kind} (the container's) to differ from the host's {host}",
                     container)
        result.check(runtime[kind] == host, f"/proc/{c.pid}/ns/{kind} (udocker's own) to stay the host's {host}: "
                     "unshare it in the child (unshare(CLONE_NEWPID) moves only the children)", runtime[kind])
    container, host = seen["user"]
    result.check(container == host, "no new user namespace when udocker runs as root", f"{container} (host: {host})")


def test_mounts_do_not_leak_to_the_host(udocker, rootfs):
    """Run where / is shared (a mount namespace the test makes, as on the workshop VM): nothing the
    container mounts may show up in udocker's own mount table, nor in the host's."""
    tag, ready = token("tag"), token("ready")
    before = testing.mount_table()
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag), prefix=testing.SHARED_MOUNT_NAMESPACE) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        runtime_view = {(m.mountpoint, m.fstype) for m in testing.mounts(c.pid)}
        host_view = {(m.mountpoint, m.fstype) for m in testing.mounts()}
        during = testing.mount_table()
        inside = testing.mounts(pid)
        result = c.finish(input="\n")
    result.expect_exit(0)
    host_ids = {m[0] for m in during}
    own_proc = [m for m in inside if m.fstype == "proc" and m.mountpoint == "/proc" and m.mount_id not in host_ids]
    result.check(bool(own_proc), f"a proc mount of its own on /proc in the container (/proc/{pid}/mountinfo)",
                 "; ".join(map(str, inside)) or "nothing")
    leaked = sorted(runtime_view - host_view)
    result.check(not leaked, f"no mount of the container in udocker's own mount table (/proc/{c.pid}/mountinfo; "
                 "its / is shared, as on a systemd machine)", f"these propagated: {leaked[:6]}")
    result.check(during == before, "the host's mount table unchanged while the container runs",
                 f"new: {sorted(during - before)}, gone: {sorted(before - during)}")
    after = testing.mount_table()
    result.check(after == before, "the host's mount table unchanged after the container ran",
                 f"new: {sorted(after - before)}, gone: {sorted(before - after)}")


def test_background_processes_end_with_pid_1(udocker, rootfs):
    seconds = random.randint(30, 99)
    script = f"sleep {seconds} & sleep 0.1; kill -0 $! && echo started"  # PID 1 exits, its child runs on
    result = udocker.run("run", rootfs, "sh", "-c", script).expect_exit(0)
    result.expect_stdout("started\n")
    deadline = time.monotonic() + 1.0
    while True:
        left = [pid for pid in testing.all_pids() if testing.cmdline(pid) == ["sleep", str(seconds)]
                and testing.ours(pid, udocker.session, [])]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    result.check(not left, f"`sleep {seconds}` (started in the background) to end with PID 1, like the whole "
                 "PID namespace", f"still running as pid {left}")


def test_stop_timeout_kills_a_pid_1_that_ignores_sigterm(udocker, rootfs):
    ready = token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", f"echo {ready}; while :; do sleep 0.1; done",
                       env={"UDOCKER_STOP_TIMEOUT": "0.5"}) as c:
        c.wait_for(ready)
        c.signal(signal.SIGTERM)  # PID 1 has no handler: it ignores it
        result = c.finish(timeout=5)
    result.expect_exit(128 + signal.SIGKILL)
    result.check("udocker: " in result.stderr, "udocker to say why it killed the container", repr(result.stderr))


NETWORK_FILES = ("/etc/hostname", "/etc/hosts", "/etc/resolv.conf")


def test_old_root_is_detached(udocker, rootfs):
    """After pivot_root, the host's root is unmounted: the container sees its own few mounts only
    (its /proc and /dev; from step 10 also its read-only /sys with its cgroups)."""
    tag, ready = token("tag"), token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready, tag)) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)
        inside = testing.mounts(pid)  # mount points relative to the container's root
        result = c.finish(input="\n")
    result.expect_exit(0)
    points = [m.mountpoint for m in inside]
    # (from step 9 on, the container's own /etc/hostname, /etc/hosts and /etc/resolv.conf; from step 10, /sys)
    foreign = [p for p in points if p != "/" and not p.startswith(("/proc", "/dev", "/sys")) and p not in NETWORK_FILES]
    result.check(points.count("/") == 1 and not foreign,
                 f"one mount on / and the container's own /proc, /dev (and /sys) only (/proc/{pid}/mountinfo)",
                 f"{points.count('/')} on /, and also {sorted(set(foreign))[:8]}")
