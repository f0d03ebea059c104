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
    return size


def parse_cpus(text):
    """'0.5' -> 0.5: how many CPUs' worth of time the container may use."""
    cpus = float(text)
    available = os.cpu_count() or 1
    if not 0.01 <= cpus <= available:
        raise argparse.ArgumentTypeError(f"give between 0.01 and {available} (the CPUs of this machine)")
    return cpus


def parse_pids(text):
    """'10' -> 10: the most processes the container may have at once."""
    pids = int(text)
    if pids < 1:
        raise argparse.ArgumentTypeError("give at least 1")
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
    # TODO(step 6): Create the container's cgroup (one directory per controller in v1),
    #   then write the limits into its files: memory.max/memory.limit_in_bytes,
    #   cpu.max/cpu.cfs_quota_us, pids.max.
    raise UdockerError("resource limits are not implemented yet: that is step 6")


# TODO(step 6): In cgroup v2, make a cgroup under /sys/fs/cgroup/udocker with the
#   controllers enabled (cgroup.subtree_control) in every ancestor.


class Cgroup:
    """One container's cgroup: a directory per v1 controller, or one v2 directory."""

    def __init__(self, paths, unified):
        self.paths = paths
        self.unified = unified

    # TODO(step 6): Write the limits into the cgroup's files, in the v2 or the v1 names.

    def join(self):
        """Move the calling process into the cgroup ("0" means "me" in cgroup.procs)."""
        # TODO(step 6): Move this process into the cgroup: write to cgroup.procs in each
        #   of its directories.

    def oom_killed(self):
        """Did the kernel's OOM killer kill a process of this cgroup?"""
        # TODO(step 6): Read the oom_kill counter: memory.events in v2,
        #   memory.oom_control in v1.
        return False

    def remove(self):
        """Remove the cgroup's directories (the container has exited)."""
        # TODO(step 6): Remove the cgroup's directories (rmdir, not rm -r: the kernel
        #   removes the files).


def remove_dirs(paths):
    """rmdir each cgroup; the kernel may need a moment after the last process exits."""
    for path in paths:
        for attempt in range(50):
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
