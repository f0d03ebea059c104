"""Support for tests/step10: run a container, try a door inside it, and look at it from the host.

    with Running(udocker, rootfs, script="try mount busybox mount -t tmpfs tmpfs /tmp") as box:
        status = box.status()                    # /proc/PID/status of its shell, read on the host
        mounts = box.mounts()                    # its mount table, with each mount's own flags (ro, nodev)
        result = box.finish()
    tried = outcomes(result)                     # {"mount": "ok" | "failed: <message>"}

SCRIPT_HELPERS defines `try NAME COMMAND...` in the container's shell: one line
`NAME=ok` or `NAME=failed: <its message>`. Every door a test tries uses only
what the test made, or only opens a file (never writes to it).

The expected values are written out here, independently of the runtime: Docker's
default capability set (moby daemon/pkg/oci/caps/defaults.go) and masked and
read-only paths (moby daemon/pkg/oci/defaults.go).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from workshop import testing
from workshop.testing import hold, token

# capabilities(7) numbers of the capabilities the tests name
CAP = {"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
       "SETPCAP": 8, "NET_BIND_SERVICE": 10, "NET_ADMIN": 12, "NET_RAW": 13, "SYS_CHROOT": 18,
       "SYS_ADMIN": 21, "MKNOD": 27, "AUDIT_WRITE": 29, "SETFCAP": 31}
DOCKER_DEFAULT = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
                  "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE")
DOCKER_MASK = sum(1 << CAP[name] for name in DOCKER_DEFAULT)  # 0xa80425fb, what `docker run` shows
assert DOCKER_MASK == 0xA80425FB

MASKED_PATHS = ("/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list",
                "/proc/timer_stats", "/sys/devices/virtual/powercap", "/sys/firmware")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

SCRIPT_HELPERS = (
    'try() { name=$1; shift; if out=$("$@" 2>&1); then echo "$name=ok"; '
    'else echo "$name=failed: $(echo $out | tr "\\n" " ")"; fi; }\n'
)
#: what busybox says for EPERM: "Operation not permitted" (strerror), or mount's own words
EPERM = re.compile(r"Operation not permitted|permission denied \(are you root\?\)")


def own_bounding_set() -> int:
    """The test's own CapBnd: what a runtime started by it can give at most (--privileged)."""
    return int(testing.status_field("self", "CapBnd")[0], 16)


def mask_text(mask: int) -> str:
    return f"{mask:016x}"


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/PID/mountinfo, with the mount's own flags (proc(5): field 6)."""

    mountpoint: str
    root: str
    device: str  # major:minor of the filesystem
    flags: frozenset  # per-mount: ro/rw, nosuid, nodev, noexec, ...
    fstype: str
    source: str

    def __str__(self):
        return f"{self.fstype} {self.source} on {self.mountpoint} ({','.join(sorted(self.flags))}, root {self.root})"


def mount_entries(pid: int) -> list[MountEntry]:
    entries = []
    text = testing.read(f"/proc/{pid}/mountinfo") or ""
    for line in text.splitlines():
        f = line.split()
        sep = f.index("-", 6)
        unescape = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), s)  # noqa: E731
        entries.append(MountEntry(unescape(f[4]), unescape(f[3]), f[2], frozenset(f[5].split(",")),
                                  f[sep + 1], unescape(f[sep + 2])))
    return entries


def top_mounts(pid: int) -> dict[str, MountEntry]:
    """{mount point: the mount on top there}: what a path resolves to."""
    return {m.mountpoint: m for m in mount_entries(pid)}


class Running:
    """A container running SCRIPT, then waiting for a line on stdin; its shell found on the host."""

    def __init__(self, udocker, *args, script: str = "", command=("sh", "-c"), **popen):
        self.tag, self.ready = token("tag"), token("ready")
        full = f"{SCRIPT_HELPERS}{script}\n{hold(self.ready, self.tag)}"
        self.container = udocker.popen("run", *args, *command, full, **popen)
        self.result_ = None

    def __enter__(self) -> "Running":
        c = self.container
        try:
            c.wait_for(self.ready)
            self.pid = c.find_process("sh", self.tag)
        except BaseException:
            c.kill()
            raise
        return self

    def __exit__(self, *exc):
        self.container.kill()

    def status(self, *names) -> dict[str, str]:
        """Lines of the shell's /proc/PID/status (its first word), read on the host."""
        names = names or ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp", "Uid")
        return {name: testing.status_field(self.pid, name)[0] for name in names}

    def mounts(self) -> dict[str, MountEntry]:
        return top_mounts(self.pid)

    def all_mounts(self) -> list[MountEntry]:
        return mount_entries(self.pid)

    def output(self) -> str:
        return self.container.stdout

    def check(self, ok: bool, expected: str, got: str):
        self.container.result().check(ok, expected, got)

    def finish(self):
        return self.container.finish(input="\n").expect_exit(0)


def outcomes(result) -> dict[str, str]:
    """{NAME: 'ok' | 'failed: ...'} from the lines `try` printed (and any other NAME=VALUE line)."""
    found = {}
    for line in result.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and re.fullmatch(r"[\w/.-]+", name):
            found[name] = value.strip()
    return found


def expect_refused(result, tried: dict, names, pattern=EPERM, why=""):
    """Each of NAMES was tried and failed with a message matching PATTERN (EPERM by default)."""
    for name in names:
        got = tried.get(name, "not tried (no line)")
        result.check(got.startswith("failed") and bool(pattern.search(got)),
                     f"{name} to fail with {pattern.pattern!r}{why}", f"{name}: {got}")


def expect_ok(result, tried: dict, names, why=""):
    for name in names:
        got = tried.get(name, "not tried (no line)")
        result.check(got == "ok", f"{name} to work{why}", f"{name}: {got}")


def netns_prefix() -> tuple:
    """Run the runtime in a network namespace the test makes, lo up: pings and port 80 never touch the host's.

    (Step 9's runtime then makes the container's own namespace inside it; a step-8 one shares it.)"""
    return ("unshare", "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh")


def writable_sysfs_file() -> str | None:
    """A file of the host's sysfs (not of a filesystem mounted in it) that root may open for writing."""
    sys_dev = os.stat("/sys").st_dev
    for directory, dirs, files in os.walk("/sys/kernel"):
        dirs[:] = sorted(d for d in dirs if _device(os.path.join(directory, d)) == sys_dev)
        for name in sorted(files):
            path = os.path.join(directory, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if st.st_dev == sys_dev and st.st_mode & 0o200:
                return path
    return None


def _device(path: str) -> int | None:
    try:
        return os.stat(path).st_dev
    except OSError:
        return None
