"""Drive the udocker.cgroups module of an implementation against a simulated cgroup v2 tree.

    PYTHONPATH=IMPL python3 cgroup_v2_simulation.py SCENARIO ROOT   -> one JSON line on stdout

A directory stands in for /sys/fs/cgroup, and a little kernel stands behind
the module's `os` and `open`: a cgroup has the files of the controllers its
parent enables in cgroup.subtree_control (they appear in every child when the
parent enables them, as in the real kernel), a controller can be enabled only
where the parent offers it (cgroup.controllers), limit files refuse values the
kernel refuses (EINVAL), and rmdir of a cgroup removes its files. Every write
is logged, so the test can check which files got which values, in which order.

Used on machines whose cgroups are v1 or hybrid, where the real v2 code
cannot run; the workshop VM runs the same checks against its real kernel.
"""
import errno
import json
import os
import sys
import traceback

CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma misc"
INTERFACE = {  # the files a controller gives a cgroup, with the kernel's defaults
    "memory": {"memory.max": "max\n", "memory.swap.max": "max\n", "memory.current": "0\n",
               "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"},
    "cpu": {"cpu.max": "max 100000\n", "cpu.weight": "100\n", "cpu.stat": "usage_usec 0\n"},
    "pids": {"pids.max": "max\n", "pids.current": "0\n"},
}
CORE = {"cgroup.procs": "", "cgroup.subtree_control": "\n", "cgroup.events": "populated 0\nfrozen 0\n",
        "cgroup.type": "domain\n"}


class Kernel:
    """What the kernel does behind the cgroup2 file system, enough for udocker.cgroups."""

    def __init__(self, root, fail_on=None):
        self.root = root
        self.fail_on = fail_on  # a file name whose write fails with EINVAL (a limit the kernel rejects)
        self.log = []
        self._populate(root, CONTROLLERS)
        for name in ("cgroup.max.depth", "cgroup.stat"):
            self._put(os.path.join(root, name), "max\n")

    def _put(self, path, text):
        with open(path, "w") as file:
            file.write(text)

    def _populate(self, path, controllers, keep=False):
        """Give a cgroup its core files and those of CONTROLLERS (KEEP: leave existing files as they are)."""
        for name, text in CORE.items():
            if not (keep and os.path.exists(os.path.join(path, name))):
                self._put(os.path.join(path, name), text)
        self._put(os.path.join(path, "cgroup.controllers"), controllers + "\n")
        for controller in controllers.split():
            for name, text in INTERFACE.get(controller, {}).items():
                if not (keep and os.path.exists(os.path.join(path, name))):
                    self._put(os.path.join(path, name), text)

    def _inside(self, path):
        path = os.path.abspath(path)
        return path == self.root or path.startswith(self.root + "/")

    def _rel(self, path):
        return os.path.relpath(os.path.abspath(path), self.root)

    # --- the calls udocker.cgroups makes -------------------------------------------------

    def mkdir(self, path, mode=0o777):
        if not self._inside(path):
            return os.mkdir(path, mode)
        os.mkdir(path, mode)
        parent = os.path.dirname(os.path.abspath(path))
        with open(os.path.join(parent, "cgroup.subtree_control")) as file:
            enabled = file.read().split()
        self._populate(path, " ".join(enabled))
        self.log.append(["mkdir", self._rel(path), enabled])

    def makedirs(self, path, mode=0o777, exist_ok=False):
        path = os.path.abspath(path)
        if not self._inside(path):
            return os.makedirs(path, mode, exist_ok)
        if os.path.isdir(path):
            if not exist_ok:
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), path)
            return
        self.makedirs(os.path.dirname(path), mode, exist_ok=True)
        self.mkdir(path, mode)

    def rmdir(self, path):
        if not self._inside(path):
            return os.rmdir(path)
        entries = os.listdir(path)
        if any(os.path.isdir(os.path.join(path, e)) for e in entries):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        with open(os.path.join(path, "cgroup.procs")) as file:
            if file.read().split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for entry in entries:
            os.unlink(os.path.join(path, entry))
        os.rmdir(path)
        self.log.append(["rmdir", self._rel(path)])

    def open(self, path, mode="r", *args, **kwargs):
        path = os.fspath(path)
        if not self._inside(path) or not any(c in mode for c in "wa+"):
            return open(path, mode, *args, **kwargs)
        if not os.path.exists(path):  # cgroupfs: no new files
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return _Write(self, path)

    def write(self, path, text):
        name = os.path.basename(path)
        self.log.append(["write", self._rel(path), text])
        if name == self.fail_on:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if name == "cgroup.subtree_control":
            with open(os.path.join(os.path.dirname(path), "cgroup.controllers")) as file:
                offered = file.read().split()
            with open(path) as file:
                enabled = file.read().split()
            for token in text.split():
                if token[:1] not in "+-" or token[1:] not in offered:
                    raise OSError(errno.EINVAL if token[:1] not in "+-" else errno.ENOENT,
                                  os.strerror(errno.ENOENT))
                if token[0] == "+" and token[1:] not in enabled:
                    enabled.append(token[1:])
                elif token[0] == "-" and token[1:] in enabled:
                    enabled.remove(token[1:])
            text = " ".join(enabled) + "\n"
            directory = os.path.dirname(path)
            for child in os.listdir(directory):  # the children get the files of what is enabled now
                if os.path.isdir(os.path.join(directory, child)):
                    self._populate(os.path.join(directory, child), " ".join(enabled), keep=True)
        elif name == "cgroup.procs":
            if text.strip() not in ("0", str(os.getpid())):
                raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))
            text = f"{os.getpid()}\n"
        elif not _valid(name, text.strip()):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        with open(path, "w") as file:
            file.write(text)


class _Write:
    """A file opened for writing in the cgroup tree: the kernel acts on each write."""

    def __init__(self, kernel, path):
        self.kernel, self.path = kernel, path

    def write(self, text):
        self.kernel.write(self.path, text)
        return len(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def close(self):
        pass


def _valid(name, value):
    if name in ("memory.max", "memory.swap.max", "pids.max"):
        return value == "max" or (value.isdigit() and int(value) < 2**63)
    if name == "cpu.max":
        parts = value.split()
        if len(parts) == 1:
            parts.append("100000")
        if len(parts) != 2 or not parts[1].isdigit() or not 1000 <= int(parts[1]) <= 1_000_000:
            return False
        return parts[0] == "max" or (parts[0].isdigit() and int(parts[0]) >= 1000)
    return True


class SimulatedOs:
    """The os module, with the kernel's cgroup calls routed through the simulation."""

    def __init__(self, kernel):
        self._kernel = kernel

    def __getattr__(self, name):
        if name in ("mkdir", "makedirs", "rmdir"):
            return getattr(self._kernel, name)
        return getattr(os, name)


def main():
    scenario, root = sys.argv[1], os.path.abspath(sys.argv[2])
    from udocker import cgroups

    kernel = Kernel(root, fail_on="pids.max" if scenario == "failing-limit" else None)
    cgroups.CGROUP_ROOT = root
    cgroups.os = SimulatedOs(kernel)
    cgroups.open = kernel.open
    out = {"log": kernel.log}
    try:
        cgroup = cgroups.create("udocker-0123456789ab", memory=64 << 20, cpus=0.5, pids=10)
        out["paths"] = [os.path.relpath(p, root) for p in cgroup.paths]
        out["unified"] = cgroup.unified
        out["enabled"] = {os.path.relpath(d, root): open(os.path.join(d, "cgroup.subtree_control")).read().split()
                          for d in (root, os.path.join(root, "udocker")) if os.path.isdir(d)}
        cgroup.join()
        with open(os.path.join(cgroup.paths[0], "memory.events")) as file:
            events = file.read()
        with open(os.path.join(cgroup.paths[0], "memory.events"), "w") as file:
            file.write(events.replace("oom_kill 0", "oom_kill 1"))  # the kernel killed one of ours
        out["oom_killed"] = cgroup.oom_killed()
        with open(os.path.join(cgroup.paths[0], "cgroup.procs"), "w") as file:
            file.write("")  # the container's last process has exited
        cgroup.remove()
    except BaseException as error:  # noqa: BLE001 (report anything: a learner's stub raises NotImplementedError)
        out["error"] = f"{type(error).__name__}: {error}"
        out["traceback"] = traceback.format_exc(limit=-3)
    out["left"] = sorted(os.path.relpath(d, root) for d, _, _ in os.walk(root) if d != root)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
