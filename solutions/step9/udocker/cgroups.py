"""Cgroups: cap the memory, CPU time and number of processes of a container.

Two layouts exist (cgroups(7)). Cgroup v2 (Ubuntu 24.04, Debian 12) has one
tree at /sys/fs/cgroup where each directory holds every controller's files.
Cgroup v1 has one tree per controller: /sys/fs/cgroup/memory, .../cpu and
.../pids. A "hybrid" machine mounts both; there the controllers we need live in
v1. We create one cgroup per container, write its limits, put the container in
it, and remove it when the container has exited.
"""
import argparse
import os
import time

from udocker.errors import UdockerError

CGROUP_ROOT = "/sys/fs/cgroup"
CPU_PERIOD_US = 100_000  # the CFS scheduling period: a quota is a share of it
SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
MIN_MEMORY = 6 * 1024**2  # docker's minimum: below it a process barely starts
MAX_MEMORY = 2**63 - 1  # memory.max and memory.limit_in_bytes are 64-bit counters
PID_MAX_LIMIT = 4 * 1024**2  # the kernel's most pids (pid_max can be raised to it, not beyond)


def parse_size(text):
    """'64m' -> 67108864: bytes, with an optional unit b, k, m or g (like docker)."""
    number, unit = text.lower(), "b"
    if number[-1:] in SIZE_UNITS:
        number, unit = number[:-1], number[-1]
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: use a number with an optional unit, like 64m or 1g")
    size = int(number) * SIZE_UNITS[unit]
    if size < MIN_MEMORY:
        raise argparse.ArgumentTypeError(f"memory limit {text!r} is too small: give at least 6m")
    if size > MAX_MEMORY:
        raise argparse.ArgumentTypeError(f"memory limit {text!r} is larger than the kernel takes (8 EiB)")
    return size


def parse_cpus(text):
    """'0.5' -> 0.5: how many CPUs' worth of time the container may use."""
    cpus = float(text)
    available = os.cpu_count() or 1
    if not 0.01 <= cpus <= available:  # below 0.01 the quota is under the kernel's 1 ms minimum
        raise argparse.ArgumentTypeError(f"give between 0.01 and {available} (the CPUs of this machine)")
    return cpus


def parse_pids(text):
    """'10' -> 10: the most processes the container may have at once."""
    pids = int(text)
    if not 1 <= pids <= PID_MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"give between 1 and {PID_MAX_LIMIT} (the kernel's PID_MAX_LIMIT)")
    return pids


# For a value that is not even a number, argparse names the type function.
parse_cpus.__name__ = "number of CPUs"
parse_pids.__name__ = "number of processes"


def create(name, memory=None, cpus=None, pids=None):
    """Create cgroup `name` with these limits (None: no limit); return a Cgroup."""
    limits = {"memory": memory, "cpu": cpus, "pids": pids}
    wanted = [controller for controller, limit in limits.items() if limit is not None]
    if not wanted:
        return Cgroup([], unified=False)  # no limits, no cgroup: nothing to create
    if os.geteuid() != 0:
        raise UdockerError(
            "--memory, --cpus and --pids-limit need a cgroup, and a rootless run has none"
            " it may write to; run udocker as root (sudo) for resource limits"
        )
    unified = is_unified()
    paths = v2_create(name, wanted) if unified else v1_create(name, wanted)
    cgroup = Cgroup(paths, unified)
    try:
        cgroup.set_limits(memory, cpus, pids)
    except BaseException:
        cgroup.remove()
        raise
    return cgroup


def is_unified():
    """Is this machine's cgroup tree v2 (one tree, every controller) rather than v1 or hybrid?"""
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers"))


def v2_create(name, controllers):
    """Create udocker/<name> in the v2 tree with these controllers; return [its path]."""
    # Controllers must be enabled in each parent's cgroup.subtree_control, and a
    # cgroup with processes in it may not enable any ("no internal processes"):
    # our own cgroup usually holds processes, so ours live under the root.
    parent = os.path.join(CGROUP_ROOT, "udocker")
    os.makedirs(parent, exist_ok=True)
    available = read_file(os.path.join(CGROUP_ROOT, "cgroup.controllers")).split()
    missing = [controller for controller in controllers if controller not in available]
    if missing:
        raise UdockerError(f"the cgroup v2 controllers {', '.join(missing)} are not available")
    enable = " ".join(f"+{controller}" for controller in controllers)
    for directory in (CGROUP_ROOT, parent):
        write_file(os.path.join(directory, "cgroup.subtree_control"), enable)
    path = os.path.join(parent, name)
    os.mkdir(path)
    return [path]


def v2_limit_files(memory, cpus, pids):
    """The v2 files that hold these limits: [(file name, value, optional)], in the order to write them."""
    files = []
    if memory is not None:
        files += [("memory.max", memory, False), ("memory.swap.max", 0, True)]
    if cpus is not None:
        files.append(("cpu.max", f"{int(cpus * CPU_PERIOD_US)} {CPU_PERIOD_US}", False))
    if pids is not None:
        files.append(("pids.max", pids, False))
    return files


def v1_create(name, controllers):
    """Create <name> in each controller's v1 tree, under our own cgroup there; return their paths."""
    paths = []
    try:
        for controller in controllers:
            hierarchy = os.path.join(CGROUP_ROOT, controller)
            if not os.path.isdir(hierarchy):
                raise UdockerError(f"the cgroup v1 controller {controller} is not mounted")
            path = os.path.join(hierarchy, own_cgroup(controller).lstrip("/"), name)
            os.mkdir(path)
            paths.append(path)
    except BaseException:
        remove_dirs(paths)
        raise
    return paths


def v1_limit_files(memory, cpus, pids):
    """The v1 files that hold these limits, as v2_limit_files lists v2's."""
    files = []
    if memory is not None:  # memsw (memory + swap) exists only where swap accounting is on
        files += [("memory.limit_in_bytes", memory, False), ("memory.memsw.limit_in_bytes", memory, True)]
    if cpus is not None:
        files += [("cpu.cfs_period_us", CPU_PERIOD_US, False),
                  ("cpu.cfs_quota_us", int(cpus * CPU_PERIOD_US), False)]
    if pids is not None:
        files.append(("pids.max", pids, False))
    return files


def own_cgroup(controller):
    """Our own cgroup in a v1 controller's tree, from /proc/self/cgroup."""
    for line in read_file("/proc/self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(","):
            return path
    return "/"


class Cgroup:
    """One container's cgroup: a directory per v1 controller, or one v2 directory."""

    def __init__(self, paths, unified):
        self.paths = paths
        self.unified = unified

    def set_limits(self, memory, cpus, pids):
        """Write each limit into its file, in v2's names or v1's."""
        files = (v2_limit_files if self.unified else v1_limit_files)(memory, cpus, pids)
        for filename, value, optional in files:
            self.write(filename, value, optional)

    def write(self, filename, value, optional=False):
        """Write value into the file `filename` of whichever of our directories has it."""
        for path in self.paths:
            file = os.path.join(path, filename)
            if os.path.exists(file):
                write_file(file, str(value))
                return
        if not optional:
            raise UdockerError(f"the cgroup file {filename} is missing in {' '.join(self.paths)}")

    def join(self):
        """Move the calling process into the cgroup ("0" means "me" in cgroup.procs)."""
        for path in self.paths:
            write_file(os.path.join(path, "cgroup.procs"), "0")

    def oom_killed(self):
        """Did the kernel's OOM killer kill a process of this cgroup?"""
        events = "memory.events" if self.unified else "memory.oom_control"
        for path in self.paths:
            file = os.path.join(path, events)
            if os.path.exists(file):
                for line in read_file(file).splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    def remove(self):
        """Remove the cgroup's directories (the container has exited)."""
        remove_dirs(self.paths)


def remove_dirs(paths):
    """rmdir each cgroup; the kernel may need a moment after the last process exits."""
    for path in paths:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:  # EBUSY: the last process is still being torn down
                time.sleep(0.01)
        else:
            os.rmdir(path)  # give up: let the error say why


def read_file(path):
    with open(path) as file:
        return file.read()


def write_file(path, text):
    try:
        with open(path, "w") as file:
            file.write(text)
    except OSError as error:  # EBUSY, EINVAL, EACCES: name the file, it says which rule bit
        raise UdockerError(f"cannot write {text!r} to {path}: {error.strerror}") from None
