"""Machine checks: can this machine run the workshop?

Shared by step 0's tests (``tests/step0``) and ``workshop doctor``. Every
check is a function returning a :class:`Check`; :data:`CHECKS` lists them in
the order to show them and :func:`run_checks` runs them all. ``fix`` is the
exact command (or instruction) that repairs a failed check. Standard library
only; all checks together take well under a second.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import struct
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from workshop import mountinfo
from workshop import rootfs as _rootfs

CGROUP_ROOT = Path("/sys/fs/cgroup")
REQUIRED_CONTROLLERS = ("memory", "cpu", "pids")
SYSCTL_FILE = "/etc/sysctl.d/60-container-workshop.conf"

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = {"uts": CLONE_NEWUTS, "pid": CLONE_NEWPID, "mount": CLONE_NEWNS, "user": CLONE_NEWUSER}
NOBODY_UID = 65534  # the user nobody (also the kernel's overflow id)
PR_SET_DUMPABLE = 4


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""  # the command or instruction that makes the check pass ("" when ok)


# --------------------------------------------------------------------------- helpers


def _read(path: str | os.PathLike) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def _sysctl(name: str) -> str | None:
    value = _read("/proc/sys/" + name.replace(".", "/"))
    return None if value is None else value.strip()


def _sysctl_fix(settings: list[tuple[str, str]]) -> str:
    """sysctl -w each setting now, and write them to a file in /etc/sysctl.d for the next boots."""
    now = " && ".join(f"sysctl -w {name}={value}" for name, value in settings)
    lines = "\\n".join(f"{name} = {value}" for name, value in settings)
    return f"{now} && printf '{lines}\\n' > {SYSCTL_FILE}"


_libc = None


def _in_child(probe: Callable[[], None], as_uid: int | None = None) -> int:
    """Fork; the child (after dropping to AS_UID, if given) runs PROBE.

    Returns 0 when PROBE returned, else the errno it failed with (255: another
    error). Whatever the probe changes dies with the child; forking takes a
    millisecond, unlike starting a program.
    """
    with warnings.catch_warnings():  # "fork() in a multi-threaded process" (3.12+)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if as_uid is not None:
                os.setgroups([])
                os.setgid(as_uid)
                os.setuid(as_uid)
                _libc_call("prctl", PR_SET_DUMPABLE, 1, 0, 0, 0)  # setuid made /proc/self root's; undo
            probe()
        except OSError as e:
            code = e.errno or 255
        except BaseException:
            code = 255
        os._exit(min(code, 255))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return code if code >= 0 else 255


def _libc_call(name: str, *args) -> None:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if getattr(_libc, name)(*args) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _unshare_in_child(flags: int, as_uid: int | None = None) -> int:
    """errno of unshare(FLAGS) in a child process (0: it worked)."""
    return _in_child(lambda: _libc_call("unshare", flags), as_uid)


def _rootless_probe() -> None:
    """What step 5 does: a user namespace where we are root, then use that root: a UTS
    namespace and sethostname (AppArmor's restriction lets unshare work but not this)."""
    uid, gid = os.geteuid(), os.getegid()
    _libc_call("unshare", CLONE_NEWUSER)
    for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    _libc_call("unshare", CLONE_NEWUTS | CLONE_NEWNS)
    _libc_call("sethostname", b"probe", 5)


def cgroup_layout() -> tuple[str, dict[str, Path]]:
    """("v2" | "v1" | "hybrid" | "none", {controller: hierarchy mount point}).

    Which hierarchy each controller is usable in: on hybrid machines the v1
    hierarchies hold the controllers and the cgroup2 mount (unified) has none.
    """
    v1: dict[str, Path] = {}
    v2_mounts = []
    for mount in mountinfo.read():
        mountpoint, fstype, opts = mount.mountpoint, mount.fstype, mount.options
        if fstype == "cgroup":
            for opt in opts.split(","):
                if opt not in ("rw", "ro") and "=" not in opt:
                    v1.setdefault(opt, Path(mountpoint))
        elif fstype == "cgroup2":
            v2_mounts.append(Path(mountpoint))
    controllers = dict(v1)
    for mount in v2_mounts:
        for c in (_read(mount / "cgroup.controllers") or "").split():
            controllers.setdefault(c, mount)
    if v2_mounts and not v1:
        layout = "v2"
    elif v1 and v2_mounts:
        layout = "hybrid"
    elif v1:
        layout = "v1"
    else:
        layout = "none"
    return layout, controllers


# --------------------------------------------------------------------------- checks


def check_root() -> Check:
    euid = os.geteuid()
    if euid == 0:
        return Check("root", True, "running as root")
    return Check("root", False, f"running as uid {euid}; the workshop's runtime and tests need root",
                 "sudo -i   # then run the workshop from the root shell")


def check_python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info >= (3, 11):
        return Check("python", True, f"Python {version} ({sys.executable})")
    return Check("python", False, f"Python {version} is too old; the workshop needs 3.11 or newer",
                 "apt-get install python3   # Debian 12 / Ubuntu 24.04 ship 3.11+")


def check_namespaces() -> Check:
    """Can a process create uts, pid, mount and user namespaces (as the current user)?"""
    failed = []
    for name, flag in NAMESPACES.items():
        err = _unshare_in_child(flag)
        if err:
            failed.append(f"{name} ({errno.errorcode.get(err, err)})")
    if not failed:
        return Check("namespaces", True, "uts, pid, mount and user namespaces can be created")
    fix = ("run as root (sudo -i)" if os.geteuid() != 0
           else "use a kernel with CONFIG_UTS_NS, CONFIG_PID_NS and CONFIG_USER_NS, outside a restricted "
                "container (the workshop's VM works: see \"The workshop's VM\" in the README)")
    return Check("namespaces", False, "unshare failed for: " + ", ".join(failed), fix)


def check_unprivileged_userns() -> Check:
    """May an ordinary user create a user namespace (step 5, rootless containers)?"""
    problems, fixes = [], []
    restrict = _sysctl("kernel.apparmor_restrict_unprivileged_userns")
    if restrict not in (None, "0"):
        problems.append(f"kernel.apparmor_restrict_unprivileged_userns = {restrict}")
        fixes.append(("kernel.apparmor_restrict_unprivileged_userns", "0"))
    clone = _sysctl("kernel.unprivileged_userns_clone")
    if clone not in (None, "1"):
        problems.append(f"kernel.unprivileged_userns_clone = {clone}")
        fixes.append(("kernel.unprivileged_userns_clone", "1"))
    maxns = _sysctl("user.max_user_namespaces")
    if maxns is not None and maxns.isdigit() and int(maxns) == 0:
        problems.append("user.max_user_namespaces = 0")
        fixes.append(("user.max_user_namespaces", "15000"))

    # the sysctls say what is wrong; the proof is doing what step 5 does, as an ordinary user
    if os.geteuid() == 0:
        err = _in_child(_rootless_probe, as_uid=NOBODY_UID)
        who = f"nobody (uid {NOBODY_UID})"
    else:
        err = _in_child(_rootless_probe)
        who = f"uid {os.geteuid()}"
    if err == 0:  # (a sysctl may look restrictive while a profile allows this python: it works)
        return Check("unprivileged user namespaces", True,
                     f"{who} can create a user namespace and be root in it"
                     + (f" ({'; '.join(problems)})" if problems else ""))
    detail = f"{who} cannot be root in a user namespace of its own ({errno.errorcode.get(err, err)})"
    if problems:
        detail += ": " + "; ".join(problems)
    fix = _sysctl_fix(fixes) if fixes else (
        "allow unprivileged user namespaces in the kernel configuration (CONFIG_USER_NS) "
        "or run the workshop in its VM (see \"The workshop's VM\" in the README)")
    return Check("unprivileged user namespaces", False, detail, fix)


def check_cgroups() -> Check:
    layout, controllers = cgroup_layout()
    if layout == "none":
        return Check("cgroups", False, "no cgroup file system is mounted",
                     "mount -t cgroup2 none /sys/fs/cgroup")
    missing = [c for c in REQUIRED_CONTROLLERS if c not in controllers]
    where = ", ".join(f"{c} in {controllers[c]}" for c in REQUIRED_CONTROLLERS if c in controllers)
    if missing:
        if layout == "v2":
            fix = ("enable the controllers on the kernel command line (remove cgroup_disable=" +
                   ",".join(missing) + ") and reboot")
        else:
            fix = " && ".join(
                f"mkdir -p {CGROUP_ROOT / c} && mount -t cgroup -o {c} cgroup {CGROUP_ROOT / c}" for c in missing)
        return Check("cgroups", False, f"cgroup {layout}: controller(s) {', '.join(missing)} not available"
                     + (f" ({where})" if where else ""), fix)
    return Check("cgroups", True, f"cgroup {layout}: {where}")


def check_overlayfs() -> Check:
    filesystems = _read("/proc/filesystems") or ""
    if any(line.split()[-1:] == ["overlay"] for line in filesystems.splitlines()):
        return Check("overlayfs", True, "overlay is in /proc/filesystems")
    return Check("overlayfs", False, "the overlay file system is not available (step 8 stacks image layers with it)",
                 "modprobe overlay && echo overlay >> /etc/modules-load.d/container-workshop.conf")


def check_busybox() -> Check:
    busybox = _rootfs.find_busybox()
    if busybox is None:
        return Check("busybox-static", False, "busybox is not installed", "apt-get install busybox-static")
    if not _rootfs.is_static_elf(busybox):
        return Check("busybox-static", False, f"{busybox} is dynamically linked (it would not run in a container)",
                     "apt-get install busybox-static")
    return Check("busybox-static", True, f"{busybox} is statically linked")


def check_rootfs(path: str | os.PathLike | None = None) -> Check:
    """The busybox root filesystem (``python3 -m workshop.rootfs``) is there with all its applets."""
    root = Path(path) if path is not None else _rootfs.default_dest()
    fix = "python3 -m workshop.rootfs" + (f" {root}" if path is not None else "")
    busybox = root / "bin" / "busybox"
    if not busybox.is_file():
        return Check("rootfs", False, f"no busybox root filesystem in {root}", fix)
    if not os.access(busybox, os.X_OK) or not _rootfs.is_static_elf(busybox):
        return Check("rootfs", False, f"{busybox} is not a static executable", fix)
    missing = [a for a in _rootfs.APPLETS if not os.path.lexists(root / "bin" / a)]
    missing += [f for f in ("etc/passwd", "etc/group") if not (root / f).is_file()]
    missing += [d for d in ("proc", "sys", "dev", "tmp", "root") if not (root / d).is_dir()]
    if missing:
        return Check("rootfs", False, f"{root} lacks {', '.join(missing)}", fix)
    return Check("rootfs", True, f"{root} ({len(_rootfs.APPLETS)} applets)")


def check_setpriv() -> Check:
    path = shutil.which("setpriv") or next((p for p in ("/usr/bin/setpriv", "/bin/setpriv") if os.path.exists(p)), None)
    if path:
        return Check("setpriv", True, f"{path} (util-linux)")
    return Check("setpriv", False, "setpriv is missing (the step 5 tests run the runtime as an ordinary user with it)",
                 "apt-get install util-linux")


def _network_probe() -> None:
    """What step 9 does, in a network namespace of the probe's own (the host's network is not touched):
    lo up, a veth pair, a bridge with the veth's end plugged in. Raises OSError(errno) when one fails."""
    _libc_call("unshare", CLONE_NEWNET)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # ip's own complaints: check_network says what failed
    for number, argv in enumerate((["link", "set", "lo", "up"],
                                   ["link", "add", "probe0", "type", "veth", "peer", "name", "probe1"],
                                   ["link", "add", "probebr", "type", "bridge"],
                                   ["link", "set", "probe0", "master", "probebr"]), start=1):
        status = os.spawnvp(os.P_WAIT, "ip", ["ip", *argv])
        if status != 0:
            raise OSError(200 + number, " ".join(argv))  # which command failed: 201, 202, ...


NETWORK_PROBE_STEPS = {201: "lo up", 202: "a veth pair", 203: "a bridge", 204: "a veth on a bridge"}


def check_network() -> Check:
    """Step 9: network namespaces, veth pairs and bridges (tried in a namespace of its own), nft or iptables."""
    ip = shutil.which("ip")
    if ip is None:
        return Check("network", False, "iproute2's `ip` is missing (step 9's experiments and tests use it)",
                     "apt-get install iproute2")
    err = _in_child(_network_probe)
    if err:
        what = NETWORK_PROBE_STEPS.get(err)
        detail = (f"in a new network namespace, {what} could not be made" if what
                  else f"cannot create a network namespace ({errno.errorcode.get(err, err)})")
        fix = ("run as root (sudo -i)" if os.geteuid() != 0 else
               "use a kernel with CONFIG_NET_NS, CONFIG_VETH and CONFIG_BRIDGE (modprobe veth bridge), "
               "or the workshop's VM (see \"The workshop's VM\" in the README)")
        return Check("network", False, detail, fix)
    nat = shutil.which("nft") or shutil.which("iptables")
    if nat is None:
        return Check("network", False, "namespaces, veth pairs and bridges work, but neither nft nor iptables is "
                     "installed (--network bridge masquerades with one of them)", "apt-get install nftables")
    return Check("network", True, f"network namespaces, veth pairs and bridges; NAT through {nat}")


# step 10: the lockdown
CLONE_NEWIPC = 0x08000000
CLONE_NEWCGROUP = 0x02000000
PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PR_SET_NO_NEW_PRIVS = 22, 2, 38
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_ARCHITECTURES = ("x86_64", "aarch64")  # udocker's seccomp.py has syscall tables for these


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _seccomp_probe() -> None:
    """Load the smallest filter there is (one instruction: allow) on this child, as step 10 loads its own."""
    allow = ctypes.create_string_buffer(struct.pack("=HBBI", 0x06, 0, 0, SECCOMP_RET_ALLOW))  # BPF_RET | BPF_K
    program = _SockFprog(1, ctypes.addressof(allow))
    ulong = ctypes.c_ulong
    _libc_call("prctl", PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0))
    _libc_call("prctl", PR_SET_SECCOMP, ulong(SECCOMP_MODE_FILTER), ctypes.byref(program), ulong(0), ulong(0))


def check_lockdown() -> Check:
    """Step 10: seccomp filters (CONFIG_SECCOMP_FILTER) on an architecture udocker has tables for,
    and IPC and cgroup namespaces."""
    machine = os.uname().machine
    status = _read("/proc/self/status") or ""
    if not any(line.startswith("Seccomp:") for line in status.splitlines()):
        return Check("lockdown", False, "no Seccomp line in /proc/self/status: a kernel without CONFIG_SECCOMP "
                     "(step 10's filter cannot be loaded)",
                     "use a kernel with CONFIG_SECCOMP and CONFIG_SECCOMP_FILTER (Debian's and Ubuntu's have them)")
    err = _in_child(_seccomp_probe)
    if err:
        return Check("lockdown", False, "a seccomp filter cannot be loaded "
                     f"(prctl(PR_SET_SECCOMP): {errno.errorcode.get(err, err)}): CONFIG_SECCOMP_FILTER is missing",
                     "use a kernel with CONFIG_SECCOMP_FILTER (Debian's and Ubuntu's have it)")
    if machine not in SECCOMP_ARCHITECTURES:
        return Check("lockdown", False, f"udocker's seccomp filter has syscall tables for "
                     f"{' and '.join(SECCOMP_ARCHITECTURES)}, not {machine}",
                     "run step 10's containers with --security-opt seccomp=unconfined, or use an x86_64 or arm64 VM")
    failed = [name for name, flag in (("ipc", CLONE_NEWIPC), ("cgroup", CLONE_NEWCGROUP))
              if _unshare_in_child(flag)]
    if failed:
        return Check("lockdown", False, f"cannot create {' and '.join(failed)} namespaces",
                     "run as root (sudo -i)" if os.geteuid() != 0
                     else "use a kernel with CONFIG_IPC_NS and CONFIG_CGROUPS (cgroup namespaces: Linux 4.6+)")
    return Check("lockdown", True, f"seccomp filters load ({machine}); ipc and cgroup namespaces can be created")


CHECKS: list[Callable[[], Check]] = [
    check_root,
    check_python,
    check_namespaces,
    check_unprivileged_userns,
    check_cgroups,
    check_overlayfs,
    check_network,
    check_busybox,
    check_rootfs,
    check_setpriv,
    check_lockdown,
]


def run_checks() -> list[Check]:
    """Every check, in order. A check that crashes is reported as failed, never raised."""
    results = []
    for check in CHECKS:
        try:
            results.append(check())
        except Exception as e:  # noqa: BLE001 - a doctor must not die of the disease
            name = check.__name__.removeprefix("check_")
            results.append(Check(name, False, f"the check itself failed: {type(e).__name__}: {e}",
                                 "report this as a bug in workshop/environment.py"))
    return results


if __name__ == "__main__":
    for c in run_checks():
        print(f"{'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" + ("" if c.ok else f"\n     fix: {c.fix}"))
