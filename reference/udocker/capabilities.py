# udocker: from step 10
"""Capabilities: the pieces of root's power a container keeps (capabilities(7)).

Root's privileges are split into about 40 capabilities: CAP_SYS_ADMIN to mount,
CAP_NET_ADMIN to configure the network, CAP_SYS_MODULE to load kernel code...
Every process has five sets of them (see /proc/PID/status):

    CapBnd  bounding:    the most it can ever get, even by executing a setuid
                         program; once dropped, gone for good, children included
    CapPrm  permitted:   what it may enable in its effective set
    CapEff  effective:   what the kernel checks
    CapInh  inheritable, CapAmb ambient: what may survive an execve(2)

Docker keeps 14 of them (moby daemon/pkg/oci/caps/defaults.go): enough to
chown, bind port 80, send raw packets (ping), switch users, make device nodes;
not enough to mount, load modules, change the clock or reconfigure the network.
Given code: the learner calls these functions, in the order explained below.

The order, as runc runs it (libcontainer/standard_init_linux.go and
finalizeNamespace in init_linux.go), after the mounts and pivot_root:

 1. prctl(PR_SET_NO_NEW_PRIVS) when asked (--security-opt no-new-privileges).
 2. Without no_new_privs: the seccomp filter. Loading one needs CAP_SYS_ADMIN
    (in our user namespace) unless no_new_privs is set, so it must come while
    we still have it, before anything below drops it. It then judges the
    runtime's own last calls too: prctl, capset, setgroups, setgid, setuid,
    chdir and execve, which it allows. (Rootless we are root of our user
    namespace, so we have that CAP_SYS_ADMIN too.)
 3. drop_bounding(keep): PR_CAPBSET_DROP needs CAP_SETPCAP, which we still have
    as root. Done before the user switch: afterwards we could not.
 4. set_keepcaps(True), switch user (setgroups, setgid, setuid), set_keepcaps(False).
    setuid(2) away from uid 0 empties the permitted and effective sets, unless
    PR_SET_KEEPCAPS is on: then it keeps the permitted set (and still empties
    the effective set).
 5. set_process_caps(keep): capset(2) puts the permitted and effective sets
    back to exactly `keep` (a non-root user regains them from the permitted
    set it kept), inheritable empty; then the ambient set is cleared.
 6. With no_new_privs: the seccomp filter, as late as possible, so that the
    runtime's last steps need not be allowed by it.
 7. execve(2).

What execve does next (capabilities(7), "Transformation of capabilities during
execve()"): for root, the new permitted set is the bounding set, so a root
container ends with CapPrm = CapEff = CapBnd = Docker's mask. For any other
user, with no file capabilities and an empty ambient set, it is empty: `-u 1000`
ends with CapEff = CapPrm = 0 and CapBnd = Docker's mask, as docker and runc
do (measured with runc 1.1.5). The bounding set still matters then: it caps
what a setuid-root or file-capability program (su, ping) can give the user.
Docker sets no inheritable capabilities since 20.10.14 (CVE-2022-24769).
"""
from udocker import syscalls
from udocker.errors import UdockerError

# Every capability of capabilities(7), by number (<linux/capability.h>).
CAPABILITIES = {
    "CAP_CHOWN": 0,
    "CAP_DAC_OVERRIDE": 1,
    "CAP_DAC_READ_SEARCH": 2,
    "CAP_FOWNER": 3,
    "CAP_FSETID": 4,
    "CAP_KILL": 5,
    "CAP_SETGID": 6,
    "CAP_SETUID": 7,
    "CAP_SETPCAP": 8,
    "CAP_LINUX_IMMUTABLE": 9,
    "CAP_NET_BIND_SERVICE": 10,
    "CAP_NET_BROADCAST": 11,
    "CAP_NET_ADMIN": 12,
    "CAP_NET_RAW": 13,
    "CAP_IPC_LOCK": 14,
    "CAP_IPC_OWNER": 15,
    "CAP_SYS_MODULE": 16,
    "CAP_SYS_RAWIO": 17,
    "CAP_SYS_CHROOT": 18,
    "CAP_SYS_PTRACE": 19,
    "CAP_SYS_PACCT": 20,
    "CAP_SYS_ADMIN": 21,
    "CAP_SYS_BOOT": 22,
    "CAP_SYS_NICE": 23,
    "CAP_SYS_RESOURCE": 24,
    "CAP_SYS_TIME": 25,
    "CAP_SYS_TTY_CONFIG": 26,
    "CAP_MKNOD": 27,
    "CAP_LEASE": 28,
    "CAP_AUDIT_WRITE": 29,
    "CAP_AUDIT_CONTROL": 30,
    "CAP_SETFCAP": 31,
    "CAP_MAC_OVERRIDE": 32,
    "CAP_MAC_ADMIN": 33,
    "CAP_SYSLOG": 34,
    "CAP_WAKE_ALARM": 35,
    "CAP_BLOCK_SUSPEND": 36,
    "CAP_AUDIT_READ": 37,
    "CAP_PERFMON": 38,
    "CAP_BPF": 39,
    "CAP_CHECKPOINT_RESTORE": 40,
}
NAMES = {number: name for name, number in CAPABILITIES.items()}

# Docker's default set, in moby's order (daemon/pkg/oci/caps/defaults.go).
DOCKER_DEFAULT = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)
DOCKER_DEFAULT_MASK = 0x00000000A80425FB  # what `docker run` shows as CapEff/CapBnd
ALL = "ALL"


def parse(name):
    """A --cap-add/--cap-drop value -> 'CAP_NAME' or 'ALL' (any case, CAP_ optional), as docker reads it."""
    canonical = name.strip().upper()
    if canonical == ALL:
        return ALL
    if not canonical.startswith("CAP_"):
        canonical = "CAP_" + canonical
    if canonical not in CAPABILITIES:
        raise ValueError(
            f"unknown capability {name!r}; use a name from `man 7 capabilities`"
            " with or without CAP_ (NET_ADMIN, CAP_SYS_TIME), or ALL"
        )
    return canonical


def argument(name):
    """parse() as an argparse type= (argparse shows an ArgumentTypeError's message as it is)."""
    import argparse  # already loaded by the command line: free here

    try:
        return parse(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def resolve(cap_add=(), cap_drop=(), privileged=False, available=None):
    """The capability numbers a container keeps, computed docker's way.

    moby's TweakCapabilities (daemon/pkg/oci/caps/utils.go): --privileged gets
    every capability there is; `--cap-add ALL` all of them but the dropped
    ones; `--cap-drop ALL` only the added ones; otherwise Docker's default set,
    minus the drops, plus the adds. "Every capability there is" means those of
    `available`: by default our own bounding set, as docker takes its own set
    (a container can never have more than its runtime). Naming a capability
    that is not available is an error, as in docker.
    """
    if available is None:
        available = bounding_set()
    available = frozenset(available)
    if privileged:
        return available
    adds = [parse(name) for name in cap_add]
    drops = [parse(name) for name in cap_drop]
    for name in adds + drops:
        if name != ALL and CAPABILITIES[name] not in available:
            raise ValueError(
                f"capability {name} is not available here (this kernel or udocker's own"
                " bounding set lacks it); leave it out"
            )
    if ALL in adds:
        return frozenset(cap for cap in available if NAMES.get(cap) not in drops)
    if ALL in drops:
        return frozenset(CAPABILITIES[name] for name in adds)
    kept = {CAPABILITIES[name] for name in DOCKER_DEFAULT if name not in drops}
    return frozenset(kept | {CAPABILITIES[name] for name in adds})


def mask(caps):
    """A set of capability numbers -> the bit mask /proc/PID/status shows."""
    bits = 0
    for cap in caps:
        bits |= 1 << cap
    return bits


def names(caps):
    """Capability numbers -> their names, in number order (unknown ones as numbers)."""
    return [NAMES.get(cap, str(cap)) for cap in sorted(caps)]


def last_cap():
    """The highest capability number this kernel knows (newer kernels add some)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read())
    except OSError:  # no /proc: ask the kernel, one capability at a time
        cap = 0
        while True:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_READ, cap + 1)
            except OSError:
                return cap
            cap += 1


def bounding_set():
    """Our own bounding set, as capability numbers."""
    return frozenset(
        cap for cap in range(last_cap() + 1) if syscalls.prctl(syscalls.PR_CAPBSET_READ, cap) == 1
    )


def drop_bounding(keep):
    """Drop every capability not in keep from the bounding set, up to the kernel's last one.

    Needs CAP_SETPCAP: call it as root, before switching to the container's user.
    A capability the kernel knows but we do not name is dropped too.
    """
    for cap in range(last_cap() + 1):
        if cap not in keep:
            try:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, cap)
            except PermissionError as error:  # the usual mistake, named: the order of the calls
                raise UdockerError("cannot drop the bounding set (prctl PR_CAPBSET_DROP: EPERM): it needs"
                                   " CAP_SETPCAP; drop it while still root, before the user switch") from error


def set_keepcaps(keep):
    """PR_SET_KEEPCAPS: keep the permitted set across setuid(2) from root to another user."""
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1 if keep else 0)


def set_process_caps(keep):
    """Permitted and effective sets = keep, inheritable and ambient empty (runc's ApplyCaps).

    Capabilities we do not have ourselves are left out: the kernel would refuse
    them (EPERM), as it refuses any process more than its parent's permitted set.
    """
    _, permitted, _ = syscalls.capget()
    wanted = mask(keep) & permitted
    syscalls.capset(effective=wanted, permitted=wanted, inheritable=0)
    # Ambient capabilities must be both permitted and inheritable, so capset
    # has just removed them; clearing says so explicitly, as runc does.
    try:
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    except OSError:  # EINVAL: a kernel older than 4.3 has no ambient set
        pass
