"""Step 10: IPC and cgroup namespaces of its own, and a /dev as docker's: shm, mqueue, a devpts of its own.

From the host: /proc/PID/ns/ipc and /proc/PID/ns/cgroup, and the container's
/proc/PID/mountinfo with each mount's own flags (nodev on / and /dev, so that a
device node the container makes cannot be opened).
"""
import sys
from pathlib import Path

from lockdownsupport import DOCKER_MASK, Running, expect_ok, mask_text, outcomes, top_mounts
from workshop import testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from terminalsupport import OnTerminal  # noqa: E402


def test_ipc_and_cgroup_namespaces_are_its_own(udocker, rootfs):
    # v1's memory line, or v2's one line (0::PATH)
    script = "echo own_memory_cgroup=$({ grep :memory: /proc/self/cgroup || grep ^0:: /proc/self/cgroup; } | cut -d: -f3)"
    with Running(udocker, "-m", "64m", rootfs, script=script) as box:
        seen = {kind: (testing.namespace(box.pid, kind), testing.namespace("self", kind)) for kind in ("ipc", "cgroup")}
        memory = testing.process_cgroups(box.pid).get("memory")
        result = box.finish()
    for kind, (container, host) in seen.items():
        result.check(container != host, f"/proc/{box.pid}/ns/{kind} (the container's) to differ from the host's {host}",
                     container)
    inside = outcomes(result).get("own_memory_cgroup")
    result.check(inside == "/", f"inside, its own memory cgroup ({memory} on the host) seen as / (/proc/self/cgroup)",
                 repr(inside))


def test_dev_has_shm_mqueue_and_a_devpts_of_its_own(udocker, rootfs):
    script = ("try null sh -c 'echo x > /dev/null'\n"  # the given devices still work on a nodev /dev
              "try shm sh -c 'echo x > /dev/shm/written'\n"
              "echo ptmx=$(readlink /dev/ptmx)\n")
    with Running(udocker, rootfs, script=script) as box:
        mounts = box.mounts()
        result = box.finish()
    tried = outcomes(result)
    expect_ok(result, tried, ["null", "shm"])
    result.check(tried.get("ptmx") == "pts/ptmx", "/dev/ptmx -> pts/ptmx (the devpts's own multiplexer)",
                 repr(tried.get("ptmx")))
    wanted = {"/dev/shm": ("tmpfs", {"nosuid", "nodev", "noexec"}), "/dev/mqueue": ("mqueue", {"nodev"}),
              "/dev/pts": ("devpts", {"nosuid", "noexec"}), "/dev": ("tmpfs", {"nodev"}), "/": (None, {"nodev"})}
    for path, (fstype, flags) in wanted.items():
        entry = mounts.get(path)
        ok = entry is not None and (fstype is None or entry.fstype == fstype) and flags <= entry.flags
        result.check(ok, f"{fstype or 'the root filesystem'} on {path} with {', '.join(sorted(flags))} "
                     f"(/proc/{box.pid}/mountinfo)", str(entry))


def test_a_terminal_uses_the_same_devpts(udocker, rootfs):
    """With -t the terminal's pty comes from the /dev/pts the lockdown mounted: one devpts, pts/0."""
    with OnTerminal(udocker, "run", "-it", rootfs, "sh") as term:
        shown = term.run_line("tty")
        sh = term.find_process("sh")
        entries = [m for m in top_mounts(sh).values()]
        status = testing.status_field(sh, "CapEff")[0]
        term.type("exit\r")
        result = term.finish().expect_exit(0)
    result.check("/dev/pts/0" in shown, "`tty` to print /dev/pts/0", repr(shown))
    devpts = [m.mountpoint for m in entries if m.fstype == "devpts"]
    shm = [m.mountpoint for m in entries if m.mountpoint == "/dev/shm"]
    result.check(devpts == ["/dev/pts"] and shm, "one devpts, on /dev/pts, beside /dev/shm (the lockdown's /dev)",
                 f"devpts on {devpts}, /dev/shm {'there' if shm else 'missing'}")
    result.check(status == mask_text(DOCKER_MASK), f"CapEff {mask_text(DOCKER_MASK)} with -t too", status)
