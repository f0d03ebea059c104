"""What a test left behind on the host, and removing it.

conftest.py takes a :func:`snapshot` before every step test and asks for the
:func:`leftovers` after it: mounts, cgroups named ``udocker*``, processes of
the test session, ``udocker*`` temporary files, and a changed hostname (a
runtime that sets the hostname before unshare(CLONE_NEWUTS) renames the host).
:func:`clean_up` removes them, so that the next test starts clean, and puts
the hostname back. :func:`sweep` removes what a whole interrupted session
left (`workshop check` calls it after Ctrl-C).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workshop import mountinfo
from workshop.procfs import alive, all_pids, cmdline, environ, read, state
from workshop.testing import SESSION_ENV, cgroup_hierarchies, mount_table, ours

#: how `workshop check` hands its session token to pytest (conftest.py and grading.py say the same)
CHECK_SESSION_ENV = "WORKSHOP_CHECK_SESSION"
#: where a runtime's mounts can land on the host: root filesystems and image stores live here
WATCHED_MOUNT_DIRS = ("/tmp", "/var/tmp", "/var/lib/udocker", "/var/lib/container-workshop")


@dataclass
class HostState:
    mounts: set
    cgroups: set
    pids: set
    tmp: set
    hostname: str


def hostname() -> str:
    return socket.gethostname()


def udocker_cgroups() -> set[str]:
    """Every cgroup directory named udocker* (not the shared v2 parent 'udocker') in every hierarchy."""
    found = set()
    for hierarchy in cgroup_hierarchies():
        for dirpath, dirnames, _ in os.walk(hierarchy):
            for d in dirnames:
                if d.startswith("udocker") and d != "udocker":
                    found.add(os.path.join(dirpath, d))
    return found


def tmp_entries() -> set[str]:
    found = set()
    for d in {tempfile.gettempdir(), "/tmp"}:
        try:
            found.update(os.path.join(d, e) for e in os.listdir(d) if e.startswith("udocker"))
        except OSError:
            pass
    return found


def snapshot() -> HostState:
    return HostState(mount_table(), udocker_cgroups(), set(all_pids()), tmp_entries(), hostname())


def _under(path: str, prefixes) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes if p)


def _new_mounts(before: HostState, watched: list[str]) -> list[tuple]:
    old_points = {m[1] for m in before.mounts}
    return [m for m in sorted(mount_table() - before.mounts) if _under(m[1], watched) or m[1] in old_points]


def _watched(paths: list[str], mount_dirs) -> list[str]:
    return [*WATCHED_MOUNT_DIRS, tempfile.gettempdir(), *paths, *mount_dirs]


def leftovers(before: HostState, session: str, paths: list[str], mount_dirs: list[str] = ()) -> list[str]:
    """What is on the host now that was not in BEFORE and that this session made, one line each.

    PATHS: the session's directories (a process living in one, or naming one,
    is ours). New mounts count when they are in one of PATHS or MOUNT_DIRS, in a
    temporary or udocker directory, or on top of an existing mount point (proc
    over /proc): so that a disk someone mounts elsewhere meanwhile does not fail
    a test.
    """
    problems = []
    now = hostname()
    if now != before.hostname:
        problems.append(f"the host's hostname: it was {before.hostname!r}, the test left {now!r} "
                        f"(put back: {before.hostname!r})")
    for m in _new_mounts(before, _watched(paths, mount_dirs)):
        problems.append(f"mount {m[2]} {m[3]} on {m[1]}")
    for d in sorted(udocker_cgroups() - before.cgroups):
        problems.append(f"cgroup {d}")
    for pid in sorted(set(all_pids()) - before.pids):
        if pid != os.getpid() and ours(pid, session, paths):
            now = state(pid)
            if now:
                problems.append(f"process {pid} ({' '.join(cmdline(pid)) or '?'}) state {now}")
    for t in sorted(tmp_entries() - before.tmp):
        problems.append(f"temporary {t}")
    return problems


def clean_up(before: HostState, session: str, paths: list[str], mount_dirs: list[str] = ()) -> None:
    """Undo what a test left (see leftovers): kill its processes, detach its mounts (deepest
    first), remove its cgroups, put the hostname back."""
    if hostname() != before.hostname:
        try:
            socket.sethostname(before.hostname)
        except OSError:
            pass
    for pid in sorted(set(all_pids()) - before.pids):
        if pid != os.getpid() and ours(pid, session, paths):
            _kill(pid)
    time.sleep(0.1)
    for m in sorted(_new_mounts(before, _watched(paths, mount_dirs)), key=lambda m: m[1].count("/"), reverse=True):
        mountinfo.detach(m[1])
    for d in sorted(udocker_cgroups() - before.cgroups, key=len, reverse=True):
        _remove_cgroup(d)


def remove_tree(path: Path) -> bool:
    """rm -r PATH, after detaching anything mounted at or below it (never delete through a mount).
    False when something stays mounted there (then nothing is deleted)."""
    prefix = str(path).rstrip("/") + "/"
    below = [m.mountpoint for m in mountinfo.read() if m.mountpoint == str(path) or m.mountpoint.startswith(prefix)]
    for mountpoint in sorted(set(below), key=len, reverse=True):
        mountinfo.detach(mountpoint)
    if any(m.mountpoint.startswith(prefix) or m.mountpoint == str(path) for m in mountinfo.read()):
        return False
    shutil.rmtree(path, ignore_errors=True)
    return True


def sweep(session: str, folder: Path, cgroups_before: set[str] | None = None) -> list[str]:
    """Remove what an interrupted test session left: the processes whose environment carries
    SESSION (as the runtimes' SESSION_ENV or as `workshop check`'s CHECK_SESSION_ENV), the
    cgroups they were in, the udocker-* cgroups that are new since CGROUPS_BEFORE and empty
    (a runtime killed between its mkdir and its child joining), every mount below FOLDER,
    and FOLDER itself. Returns what it removed, one line each."""
    done = []
    markers = [f"{SESSION_ENV}={session}".encode(), f"{CHECK_SESSION_ENV}={session}".encode()]
    pids = [pid for pid in all_pids() if pid != os.getpid() and any(m in environ(pid) for m in markers)]
    cgroups = {d for pid in pids for d in _cgroup_dirs(pid) if os.path.basename(d).startswith("udocker-")}
    for pid in pids:
        if _kill(pid):
            done.append(f"process {pid}")
    deadline = time.monotonic() + 3
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    if cgroups_before is not None:
        cgroups |= {d for d in udocker_cgroups() - cgroups_before if not _has_processes(d)}
    for d in sorted(cgroups, key=len, reverse=True):
        if os.path.isdir(d) and _remove_cgroup(d):
            done.append(f"cgroup {d}")
    if folder.exists():
        if remove_tree(folder):
            done.append(f"directory {folder}")
    return done


def _remove_cgroup(path: str) -> bool:
    """Kill what is left in the cgroup, then rmdir it (retried while the kernel says busy)."""
    from workshop.clean import remove_cgroup

    try:
        remove_cgroup(path, timeout=3.0)
        return True
    except OSError:
        return False


def _has_processes(cgroup: str) -> bool:
    for dirpath, _, _ in os.walk(cgroup):
        if (read(os.path.join(dirpath, "cgroup.procs")) or "").strip():
            return True
    return False


def _kill(pid: int) -> bool:
    try:
        os.kill(pid, signal.SIGKILL)
        return True
    except OSError:
        return False


def _cgroup_dirs(pid: int) -> list[str]:
    """The directories of PID's cgroups, in every hierarchy it is in."""
    dirs = []
    mounts = {m.mountpoint: m for m in mountinfo.read() if m.fstype in ("cgroup", "cgroup2")}
    for line in (read(f"/proc/{pid}/cgroup") or "").splitlines():
        hid, controllers, path = line.split(":", 2)
        for mountpoint, m in mounts.items():
            options = set(m.options.split(","))
            if (hid == "0" and m.fstype == "cgroup2") or (hid != "0" and m.fstype == "cgroup"
                                                         and set(controllers.split(",")) <= options | {""}):
                root = m.root if m.root != "/" else ""
                relative = path[len(root):] if root and path.startswith(root) else path
                dirs.append(os.path.join(mountpoint, relative.lstrip("/")))
    return dirs
