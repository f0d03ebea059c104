"""`workshop clean`: remove what crashed containers left behind.

In this order, because each kind keeps the next one busy:

1. stray processes: runtimes (`python3 -m udocker ...`) whose parent died, and
   processes whose root directory is a container's (chroot or pivot_root into
   UDOCKER_ROOT or the workshop's root filesystem) that no live runtime owns;
   SIGKILL. Running containers (a runtime with a live parent, and what is
   below it) are left alone, with their cgroups, unless
   ``all`` is set (`workshop clean --all`).
2. cgroups named ``udocker-*`` in every cgroup hierarchy (v1: memory, cpu,
   pids, ...; v2: /sys/fs/cgroup/udocker/): kill their processes, then rmdir,
   deepest first.
3. mounts below UDOCKER_ROOT, on the workshop's root filesystem, or overlays
   whose layers live in UDOCKER_ROOT: unmounted deepest (and newest) first,
   lazily (MNT_DETACH) when busy.
4. the workshop's scratch folders in the temp directory (``workshop-*``) whose
   owner was killed outright (workshop.scratch: its lock is free), after the
   processes that name them on their command line (a test registry's) and
   what is mounted below them.

Everything is found from /proc, so nothing here depends on the runtime's code,
except step 9's network (`Cleaner.network`), which uses the reference runtime's
own given modules: the leases of containers whose runtime is gone
(udocker.ipam.reclaim), and on request (`workshop clean --network`) the
masquerade rule (udocker.nat.remove) and the udocker0 bridge, unless a running
container still uses them.
"""

from __future__ import annotations

import errno
import glob
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from workshop import scratch
from workshop.mountinfo import Mount, detach
from workshop.mountinfo import read as read_mounts
from workshop.procfs import alive, all_pids, cmdline, ppid_of


@dataclass
class Action:
    kind: str          # process, cgroup, mount
    target: str
    detail: str = ""
    done: bool = False
    error: str = ""


def _under(path: str, root: str, strictly: bool = True) -> bool:
    path, root = os.path.normpath(path), os.path.normpath(root)
    if path == root:
        return not strictly
    return path.startswith(root.rstrip("/") + "/")


def _depth(path: str) -> int:
    return os.path.normpath(path).count("/")


class Cleaner:
    """Finds (plan) and removes (run) leftovers. The parameters exist so the
    tool's tests can point it at their own corner of the machine."""

    def __init__(self, udocker_root: os.PathLike | str, rootfs_dirs=(), *,
                 proc: str = "/proc", mountinfo: str | None = None,
                 cgroup_mounts: list[str] | None = None, pids: set[int] | None = None,
                 kill_timeout: float = 3.0, all: bool = False, tmp_dirs: list[str] | None = None):
        self.udocker_root = os.path.abspath(udocker_root)
        self.rootfs_dirs = [os.path.abspath(p) for p in rootfs_dirs]
        self.proc = proc
        self.mountinfo = mountinfo or os.path.join(proc, "self", "mountinfo")
        self._cgroup_mounts = cgroup_mounts
        self.only_pids = pids
        self.kill_timeout = kill_timeout
        self.all = all  # also stop running containers
        self.tmp_dirs = tmp_dirs if tmp_dirs is not None else sorted({tempfile.gettempdir(), "/tmp"})
        self.skipped: list[Action] = []  # what was left alone, and why

    # ------------------------------------------------------------ processes
    def _all_pids(self) -> list[int]:
        pids = all_pids(self.proc)
        if self.only_pids is not None:
            pids = [p for p in pids if p in self.only_pids]
        return pids

    def _protected(self) -> set[int]:
        """This process and its ancestors: never killed."""
        mine, pid = {os.getpid()}, os.getpid()
        for _ in range(64):
            ppid = ppid_of(pid, self.proc)
            if not ppid or ppid in mine:
                break
            mine.add(ppid)
            pid = ppid
        return mine

    def _scan(self) -> tuple[dict[int, str], set[int]]:
        """({stray pid: why}, {pids of running containers}).

        A runtime (`python3 -m udocker ...`) whose parent is alive is a running
        container: it and its descendants are left alone unless self.all.
        Stray: runtimes whose parent died (re-parented to PID 1) and their
        descendants, and processes rooted in UDOCKER_ROOT or the workshop's
        root filesystem that no running runtime owns.
        """
        protected = self._protected()
        roots = [self.udocker_root, *self.rootfs_dirs]
        children: dict[int, list[int]] = {}
        runtimes: dict[int, str] = {}
        rooted: dict[int, str] = {}
        for pid in self._all_pids():
            if pid in protected:
                continue
            children.setdefault(ppid_of(pid, self.proc) or 0, []).append(pid)
            argv = cmdline(pid, self.proc)
            if _is_runtime(argv):
                runtimes[pid] = " ".join(argv)[:120]
                continue
            try:
                root = os.readlink(os.path.join(self.proc, str(pid), "root"))
            except OSError:
                continue
            if root != "/" and any(_under(root, r, strictly=False) for r in roots):
                rooted[pid] = f"runs in {root}: " + (" ".join(argv)[:100] or "?")

        def descendants(pid: int) -> list[int]:
            out, todo = [], [pid]
            while todo:
                for child in children.get(todo.pop(), []):
                    if child not in protected:
                        out.append(child)
                        todo.append(child)
            return out

        stray: dict[int, str] = {}
        running: set[int] = set()
        for pid, argv in runtimes.items():
            ppid = ppid_of(pid, self.proc)
            orphan = not ppid or ppid == 1 or not alive(ppid, self.proc)
            if orphan or self.all:
                stray[pid] = ("orphaned udocker runtime: " if orphan else "udocker runtime: ") + argv
                for child in descendants(pid):
                    stray.setdefault(child, "in its container: " + (" ".join(cmdline(child, self.proc))[:100] or "?"))
            else:
                running.add(pid)
                running.update(descendants(pid))
        for pid, why in rooted.items():
            if pid not in running:
                stray.setdefault(pid, why)
        return stray, running

    def find_processes(self) -> list[tuple[int, str]]:
        return sorted(self._scan()[0].items())

    def running(self) -> set[int]:
        """PIDs of running containers (their runtimes and everything below them)."""
        return self._scan()[1]

    # ------------------------------------------------------------ cgroups
    def cgroup_mounts(self) -> list[str]:
        if self._cgroup_mounts is not None:
            return list(self._cgroup_mounts)
        return [m.mountpoint for m in read_mounts(self.mountinfo) if m.fstype in ("cgroup", "cgroup2")]

    def find_cgroups(self) -> list[str]:
        found = []
        for top in self.cgroup_mounts():
            for dirpath, dirnames, _ in os.walk(top):
                keep = []
                for d in dirnames:
                    if d.startswith("udocker-"):
                        found.append(os.path.join(dirpath, d))
                    else:
                        keep.append(d)
                dirnames[:] = keep
        return found

    # ------------------------------------------------------------ mounts
    def find_mounts(self) -> list[Mount]:
        hits = []
        in_store = os.path.join(self.udocker_root, "")  # an overlay's layers named in its options
        for m in read_mounts(self.mountinfo):
            if _under(m.mountpoint, self.udocker_root) or any(
                    _under(m.mountpoint, r, strictly=False) for r in self.rootfs_dirs):
                hits.append(m)
            elif m.fstype == "overlay" and in_store in m.options:
                hits.append(m)
        # deepest first; among equals the newest (stacked on top) first
        order = {id(m): i for i, m in enumerate(hits)}
        return sorted(hits, key=lambda m: (_depth(m.mountpoint), order[id(m)]), reverse=True)

    # ------------------------------------------------------------ scratch folders
    def find_scratch(self) -> list[tuple[str, list[int]]]:
        """[(folder, [pids])]: the scratch folders whose owner is gone (scratch.abandoned), each with
        the processes that name it on their command line (say, the docker-registry of a test)."""
        protected = self._protected()
        found = []
        for base in self.tmp_dirs:
            for folder in sorted(glob.glob(os.path.join(base, scratch.PATTERN))):
                if os.path.islink(folder) or not os.path.isdir(folder) or not scratch.abandoned(folder):
                    continue
                inside = folder.rstrip("/") + "/"
                users = [pid for pid in self._all_pids() if pid not in protected
                         and any(arg == folder or inside in arg for arg in cmdline(pid, self.proc))]
                found.append((folder, users))
        return found

    def _remove_scratch(self, folder: str) -> Action:
        action = Action("folder", folder, "its owner is gone")
        below = {m.mountpoint for m in read_mounts(self.mountinfo) if _under(m.mountpoint, folder, strictly=False)}
        for mountpoint in sorted(below, key=_depth, reverse=True):
            detach(mountpoint)
        still = [m.mountpoint for m in read_mounts(self.mountinfo) if _under(m.mountpoint, folder, strictly=False)]
        if still:  # never delete through a mount
            action.error = f"still mounted: {still[0]}"
            return action
        shutil.rmtree(folder, ignore_errors=True)
        action.done = not os.path.exists(folder)
        if not action.done:
            action.error = "could not be removed"
        return action

    # ------------------------------------------------------------ all
    def _targets(self):
        """What to clean, and (into self.skipped) what a running container still uses."""
        stray, running = self._scan()
        self.skipped = []
        cgroups = []
        for cg in self.find_cgroups():
            users = sorted(set(_cgroup_pids(cg)) & running)
            if users:
                self.skipped.append(Action("cgroup", cg, f"a running container's (PID {users[0]})"))
            else:
                cgroups.append(cg)
        runtimes = sorted(p for p in running if _is_runtime(cmdline(p, self.proc)))
        for pid in runtimes:
            self.skipped.append(Action("process", str(pid), "a running container: " +
                                       " ".join(cmdline(pid, self.proc))[:100]))
        return sorted(stray.items()), cgroups

    # ------------------------------------------------------------ network (step 9)
    def network(self, bridge: bool = False, dry_run: bool = False) -> list[Action]:
        """Leases whose runtime is gone; with BRIDGE, also udocker's NAT rule and the udocker0 bridge.

        The rule and the bridge stay (in self.skipped) while a container uses them:
        a live lease, or a veth plugged into udocker0.
        """
        try:
            ipam = _runtime_module("ipam")
            leases = ipam.leases()
        except Exception as e:  # noqa: BLE001 - a cleaner reports, it does not crash
            return [Action("lease", "(all)", "udocker.ipam", error=f"{type(e).__name__}: {e}")]
        stale = [address for address, _, alive in leases if not alive]
        where = ipam.lease_dir(ipam.subnet())
        actions = []
        if dry_run:
            actions += [Action("lease", f"{where}/{a}", "its runtime is gone") for a in stale]
        elif stale:
            try:
                actions += [Action("lease", f"{where}/{a}", "its runtime is gone", done=True)
                            for a in ipam.reclaim()]
            except OSError as e:
                actions.append(Action("lease", where, "", error=e.strerror or str(e)))
        if not bridge:
            return actions
        netlink = _runtime_module("netlink")
        users = [f"the lease of {a} (container {cid})" for a, cid, alive in leases if alive]
        if netlink.link_exists("udocker0"):
            index = netlink.link_index("udocker0")
            users += [f"{link.name}, plugged into it" for link in netlink.links() if link.master == index]
        if users:
            for kind, target in (("nat", "udocker's masquerade rule"), ("bridge", "udocker0")):
                self.skipped.append(Action(kind, target, "a running container uses it: " + "; ".join(users)))
            return actions
        actions += self._remove_nat(dry_run)
        if netlink.link_exists("udocker0"):
            action = Action("bridge", "udocker0", "udocker's bridge")
            if not dry_run:
                try:
                    netlink.link_del("udocker0")
                    action.done = True
                except OSError as e:
                    action.error = e.strerror or str(e)
            actions.append(action)
        return actions

    def _remove_nat(self, dry_run: bool) -> list[Action]:
        import subprocess

        nat = _runtime_module("nat")
        try:
            tool = nat.backend()
        except Exception:  # noqa: BLE001 - neither nft nor iptables: no rule can exist
            return []
        if tool == "nft":
            present = subprocess.run(["nft", "list", "table", "ip", nat.TABLE], capture_output=True,
                                     timeout=30).returncode == 0
        else:
            listing = subprocess.run(["iptables", "-w", "-t", "nat", "-S", "POSTROUTING"], capture_output=True,
                                     text=True, timeout=30).stdout
            present = "-o udocker0 -j MASQUERADE" in listing
        if not present:
            return []
        action = Action("nat", "udocker's masquerade rule", f"through {tool}")
        if not dry_run:
            try:
                action.done = nat.remove(tool=tool)
            except Exception as e:  # noqa: BLE001
                action.error = str(e)
        return [action]

    def plan(self) -> list[Action]:
        procs, cgroups = self._targets()
        actions = [Action("process", str(pid), why) for pid, why in procs]
        actions += [Action("cgroup", d, _count(len(_cgroup_pids(d)), "process", "processes")) for d in cgroups]
        actions += [Action("mount", m.mountpoint, f"{m.fstype} {m.source}".strip()) for m in self.find_mounts()]
        for folder, users in self.find_scratch():
            actions += [Action("process", str(pid), "names " + folder) for pid in users]
            actions.append(Action("folder", folder, "its owner is gone"))
        return actions

    def run(self) -> list[Action]:
        procs, cgroups = self._targets()
        done: list[Action] = []
        # 1. processes
        done += [_kill(pid, why) for pid, why in procs]
        _wait_gone(self.proc, [pid for pid, _ in procs], self.kill_timeout)
        # 2. cgroups
        for cg in cgroups:
            a = Action("cgroup", cg)
            try:
                killed = remove_cgroup(cg, self.kill_timeout)
                a.detail = f"killed {_count(killed, 'process', 'processes')}" if killed else "empty"
                a.done = True
            except OSError as e:
                a.error = e.strerror or str(e)
            done.append(a)
        # 3. mounts, again and again: unmounting one can uncover another
        failed: dict[str, Action] = {}
        for _ in range(8):
            mounts = [m for m in self.find_mounts() if m.mountpoint not in failed]
            if not mounts:
                break
            for m in mounts:
                # a propagated mount is listed twice, and one umount takes both copies
                if m.mount_id not in {n.mount_id for n in read_mounts()}:
                    continue
                a = Action("mount", m.mountpoint, f"{m.fstype} {m.source}".strip())
                err = detach(m.mountpoint)
                if err is None:
                    a.done = True
                else:
                    a.error = err
                    failed[m.mountpoint] = a
                done.append(a)
        # 4. scratch folders of owners killed outright, after what still uses them
        for folder, users in self.find_scratch():
            done += [_kill(pid, "names " + folder) for pid in users]
            _wait_gone(self.proc, users, self.kill_timeout)
            done.append(self._remove_scratch(folder))
        return done


# ---------------------------------------------------------------- helpers


def _kill(pid: int, why: str) -> Action:
    """SIGKILL PID: what was done, as an Action."""
    a = Action("process", str(pid), why)
    try:
        os.kill(pid, signal.SIGKILL)
        a.done = True
    except ProcessLookupError:
        a.done = True
        a.detail += " (already gone)"
    except OSError as e:
        a.error = e.strerror or str(e)
    return a


def _is_runtime(argv: list[str]) -> bool:
    """python3 -m udocker ..., or a udocker/__main__.py script."""
    if not argv:
        return False
    if "python" not in os.path.basename(argv[0]):
        return os.path.basename(argv[0]) == "udocker"
    skip = False
    for i, a in enumerate(argv[1:], 1):
        if skip:
            skip = False
            continue
        if a in ("-X", "-W", "--check-hash-based-pycs"):
            skip = True
            continue
        if a == "-m" and i + 1 < len(argv):
            return argv[i + 1] == "udocker"
        if a.startswith("-m") and len(a) > 2:
            return a[2:] == "udocker"
        if not a.startswith("-"):
            return a.rstrip("/").endswith(("udocker/__main__.py", "/udocker")) or a == "udocker"
    return False


def _wait_gone(proc: str, pids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if alive(p, proc)]
        if pids:
            time.sleep(0.02)




def _runtime_module(name: str):
    """udocker.NAME from the repository's reference runtime (ipam, nat, netlink: given code)."""
    import importlib
    import sys

    from . import paths

    reference = str(paths.root() / "reference")
    if reference not in sys.path:
        sys.path.insert(0, reference)
    return importlib.import_module(f"udocker.{name}")


def _cgroup_pids(cg: str) -> list[int]:
    pids = set()
    for dirpath, _, _ in os.walk(cg):
        try:
            pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
        except (OSError, ValueError):
            pass
    return sorted(pids)


def remove_cgroup(cg: str, timeout: float) -> int:
    """Kill everything in CG and below, then rmdir bottom-up. Returns how many were killed."""
    killed = 0
    kill_file = Path(cg, "cgroup.kill")  # cgroup v2, Linux 5.14+
    deadline = time.monotonic() + timeout
    while True:
        pids = _cgroup_pids(cg)
        if not pids:
            break
        if kill_file.exists():
            try:
                kill_file.write_text("1")
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise OSError(errno.EBUSY, f"processes {pids} do not die")
        time.sleep(0.05)
    for dirpath, _, _ in sorted(os.walk(cg), key=lambda w: _depth(w[0]), reverse=True):
        for attempt in range(20):
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError as e:  # EBUSY for a moment after the last process died
                if e.errno != errno.EBUSY or attempt == 19:
                    raise
                time.sleep(0.05)
    return killed


def default_rootfs_dirs() -> list[str]:
    """The workshop's busybox root filesystem, where steps 3-6 run containers."""
    try:
        from . import rootfs

        return [str(rootfs.default_dest())]
    except Exception:  # the module is optional for this
        return [os.environ.get("WORKSHOP_ROOTFS") or "/var/lib/container-workshop/busybox"]


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"

