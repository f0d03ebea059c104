# udocker: from step 10
"""The container's view of the kernel: /sys, /sys/fs/cgroup, /dev extras, and masked /proc paths.

/proc and /sys are windows onto the whole kernel, not just onto the
container's namespaces: /proc/sys/kernel/core_pattern names a program the
*host* runs as root on every crash, /proc/sysrq-trigger reboots the machine,
/proc/kcore is the kernel's memory. Docker (moby daemon/pkg/oci/defaults.go)
masks some of these paths, makes others read-only, and mounts /sys and
/sys/fs/cgroup read-only. Given code, called in two places (runc makes the
same mounts in its prepareRootfs, and masks in its Init after pivot_root):

On the root filesystem, before enter_rootfs (whose recursive bind mount of the
rootfs takes them along), while the host's mount table is still there to read:

    mount_sysfs(rootfs + "/sys")              # shows our network namespace: after entering it
    mount_cgroup(rootfs + "/sys/fs/cgroup")   # needs a cgroup namespace, after joining the cgroup

After pivot_root, on the container's own / and /dev (made by enter_rootfs):
the paths then resolve inside the container, so a symlink in an image cannot
aim a mount at a host path, and /dev/null is the container's.

    mount_dev_extras("/dev")                  # shm, mqueue (needs an IPC namespace), pts, ptmx
    remount("/", MS_NODEV)                    # the image's own files: see below
    remount("/dev", MS_NODEV)                 # only the bind-mounted devices work
    lock_system_paths()                       # read-only and masked /proc and /sys paths

Docker keeps CAP_MKNOD and relies on the device cgroup to refuse opening a
node made with it (say, of the host's disk). udocker has no device cgroup:
nodev on every mount the container can write to (its root, /dev, /dev/shm)
does that job instead; the given devices are bind mounts with the host's
/dev's own flags, so they keep working. --privileged keeps /sys and
/sys/fs/cgroup writable (readonly=False), and skips nodev and the masks.

All of it works rootless too: a mount in a user namespace is allowed when the
namespace the filesystem shows (network for sysfs, cgroup, IPC for mqueue,
PID for proc) belongs to that user namespace.
"""
import os
import stat

from udocker import syscalls

# moby daemon/pkg/oci/defaults.go, defaultLinuxMaskedPaths (2026).
MASKED_PATHS = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/interrupts",  # GHSA-6fw5-f8r9-fgfm: a side channel on other tenants
    "/proc/kcore",  # the kernel's memory, as an ELF core file
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/sys/devices/virtual/powercap",  # GHSA-jq35-85cj-fj4p: energy counters leak secrets
    "/sys/firmware",
)
# moby daemon/pkg/oci/defaults.go, ReadonlyPaths.
READONLY_PATHS = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",  # core_pattern, modprobe, ...: settings of the host's kernel
    "/proc/sysrq-trigger",
)

# statvfs(3) flags that a bind remount must repeat, or the kernel refuses it
# (EPERM) in a user namespace where the mount came from a more privileged one.
# The ST_* values of nosuid, nodev, noexec are the MS_* ones; the atime ones are not.
_LOCKED_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 0x400, 0x800, 0x200000, 0x1000000
_ST_ATIME = ((0x400, MS_NOATIME), (0x800, MS_NODIRATIME), (0x1000, MS_RELATIME))
_SYSTEM_FLAGS = syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC  # /sys, /dev/shm, ...


def masked_paths():
    """MASKED_PATHS plus each CPU's thermal_throttle directory, as moby adds them."""
    paths = list(MASKED_PATHS)
    cpus = "/sys/devices/system/cpu"
    try:
        names = sorted(n for n in os.listdir(cpus) if n[3:].isdigit() and n.startswith("cpu"))
    except OSError:
        names = []
    paths += [f"{cpus}/{name}/thermal_throttle" for name in names
              if os.path.isdir(f"{cpus}/{name}/thermal_throttle")]
    return paths


def remount(path, flags):
    """Add flags (MS_RDONLY, MS_NODEV...) to the mount at path, keeping the flags it has."""
    st_flags = os.statvfs(path).f_flag
    kept = st_flags & (_LOCKED_FLAGS | syscalls.MS_RDONLY)
    atime = [ms for st, ms in _ST_ATIME if st_flags & st] or [MS_STRICTATIME]
    for ms in atime:
        kept |= ms
    syscalls.mount(None, path, None, syscalls.MS_BIND | syscalls.MS_REMOUNT | kept | flags)


def make_readonly(path):
    """Bind path onto itself, then make that mount read-only (runc's readonlyPath); skip a missing path."""
    try:
        syscalls.mount(path, path, None, syscalls.MS_BIND | syscalls.MS_REC)
    except FileNotFoundError:
        return
    remount(path, syscalls.MS_RDONLY)


def mask(path):
    """Hide path: /dev/null over a file, an empty read-only tmpfs over a directory; skip a missing path."""
    try:
        is_dir = stat.S_ISDIR(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if is_dir:
        syscalls.mount("tmpfs", path, "tmpfs", syscalls.MS_RDONLY | _SYSTEM_FLAGS, "mode=555")
    else:
        syscalls.mount("/dev/null", path, None, syscalls.MS_BIND)


def lock_system_paths(readonly=READONLY_PATHS, masked=None):
    """After pivot_root: make READONLY_PATHS read-only, then mask the masked paths (runc's order)."""
    null = os.stat("/dev/null")
    if not (stat.S_ISCHR(null.st_mode) and null.st_rdev == os.makedev(1, 3)):
        raise OSError("/dev/null is not the null device (1:3): cannot mask with it")
    for path in readonly:
        make_readonly(path)
    for path in masked_paths() if masked is None else masked:
        mask(path)


# --------------------------------------------------------------------------- /sys


def mount_sysfs(target, readonly=True):
    """A sysfs at target, read-only unless told, showing the network devices of our network namespace.

    sysfs shows the devices of the network namespace that mounts it, so the
    kernel lets a user namespace mount it only when it owns that network
    namespace. As root without a network namespace of its own (--network host)
    it shows the host's network devices, as docker's does. Rootless in the
    host's network namespace the kernel refuses (EPERM): then, as runc and
    podman do, the host's /sys is bind-mounted instead, read-only on top. Its
    files belong to the host's root, whom a rootless container is not.
    """
    os.makedirs(target, exist_ok=True)
    try:
        syscalls.mount("sysfs", target, "sysfs", _SYSTEM_FLAGS | (syscalls.MS_RDONLY if readonly else 0))
    except PermissionError:
        syscalls.mount("/sys", target, None, syscalls.MS_BIND | syscalls.MS_REC)
        if readonly:
            remount(target, syscalls.MS_RDONLY)


def mount_cgroup(target, readonly=True):
    """/sys/fs/cgroup, read-only unless told, showing the container's own cgroup as its root.

    Call it in a new cgroup namespace (unshare(CLONE_NEWCGROUP) after joining
    the container's cgroup), before pivot_root: it reads the host's cgroup
    layout from our mount table. A cgroup filesystem mounted in a cgroup
    namespace has that namespace's root as its root, as docker's does. cgroup v2:
    one cgroup2 mount. cgroup v1 (and hybrid): a read-only tmpfs with each of
    the host's hierarchies mounted in it by the same name (cpu, memory,
    systemd, unified, ...), like runc's mountCgroupV1.
    """
    flags = _SYSTEM_FLAGS | (syscalls.MS_RDONLY if readonly else 0)
    hierarchies = _host_cgroup_mounts()
    os.makedirs(target, exist_ok=True)
    if hierarchies.get("/sys/fs/cgroup", ("",))[0] == "cgroup2":
        syscalls.mount("cgroup2", target, "cgroup2", flags)
        return
    syscalls.mount("tmpfs", target, "tmpfs", _SYSTEM_FLAGS, "mode=755")
    for mountpoint, (fstype, options) in sorted(hierarchies.items()):
        name = os.path.basename(mountpoint)
        if os.path.dirname(mountpoint) != "/sys/fs/cgroup":
            continue
        os.mkdir(os.path.join(target, name))
        syscalls.mount(fstype, os.path.join(target, name), fstype, flags, options or None)
        if "," in name:  # co-mounted controllers (cpu,cpuacct): a link for each
            for alias in name.split(","):
                if not os.path.lexists(os.path.join(target, alias)):
                    os.symlink(name, os.path.join(target, alias))
    if readonly:
        remount(target, syscalls.MS_RDONLY)


# cgroup v1 mount options that are not controllers (or name=): left out when we mount a hierarchy again.
_CGROUP_V1_NOT_CONTROLLERS = (
    "rw", "ro", "xattr", "noprefix", "clone_children", "cpuset_v2_mode", "favordynmods",
)


def _host_cgroup_mounts():
    """{mountpoint: (fstype, options to mount it again)} for the cgroup filesystems we see."""
    found = {}
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            separator = fields.index("-")
            fstype, super_options = fields[separator + 1], fields[separator + 3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            mountpoint = fields[4].replace("\\040", " ")
            options = [o for o in super_options.split(",")
                       if o not in _CGROUP_V1_NOT_CONTROLLERS and not o.startswith("release_agent=")]
            found[mountpoint] = (fstype, ",".join(options) if fstype == "cgroup" else "")
    return found


# --------------------------------------------------------------------------- /dev


def mount_dev_extras(dev):
    """Docker's /dev/shm, /dev/mqueue and /dev/pts (with /dev/ptmx), in the tmpfs at dev.

    mqueue shows the message queues of our IPC namespace: call it after
    unshare(CLONE_NEWIPC) (a user namespace may mount it only then). devpts
    gets an instance of its own (newinstance): the container's terminals, not
    the host's; /dev/ptmx points into it.
    """
    shm, mqueue, pts = (os.path.join(dev, name) for name in ("shm", "mqueue", "pts"))
    for directory in (shm, mqueue, pts):
        os.makedirs(directory, exist_ok=True)
    # Docker's --shm-size default: 64 MiB.
    syscalls.mount("shm", shm, "tmpfs", _SYSTEM_FLAGS, "mode=1777,size=65536k")
    syscalls.mount("mqueue", mqueue, "mqueue", _SYSTEM_FLAGS)
    options = "newinstance,ptmxmode=0666,mode=0620"
    if _gid_mapped(5):  # the tty group; a rootless container maps gid 0 only (EINVAL otherwise)
        options += ",gid=5"
    syscalls.mount("devpts", pts, "devpts", syscalls.MS_NOSUID | syscalls.MS_NOEXEC, options)
    ptmx = os.path.join(dev, "ptmx")
    if os.path.lexists(ptmx):
        os.unlink(ptmx)
    os.symlink("pts/ptmx", ptmx)


def _gid_mapped(gid):
    try:
        with open("/proc/self/gid_map") as file:
            ranges = [tuple(map(int, line.split())) for line in file if line.strip()]
    except OSError:
        return True
    return any(inside <= gid < inside + count for inside, _, count in ranges)
