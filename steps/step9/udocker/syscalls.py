"""The Linux system calls that Python's os module lacks, through ctypes.

Each function keeps the name, the arguments and the meaning of its man page
(see `man 2 mount`, `man 2 unshare`, ...), and raises OSError with the errno the
kernel returned, exactly like the functions of the os module do. This module is
given: the workshop is about *using* these calls, not about ctypes.
"""
import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)

# unshare(2) and clone(2) flags, from <linux/sched.h>.
CLONE_NEWNS = 0x00020000  # mount namespace
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000  # hostname and domain name
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000  # user and group ids
CLONE_NEWPID = 0x20000000  # process ids
CLONE_NEWNET = 0x40000000

# mount(2) flags, from <linux/mount.h>.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000

# umount2(2) flags.
MNT_FORCE = 0x1
MNT_DETACH = 0x2

# close_range(2) flags.
CLOSE_RANGE_CLOEXEC = 0x4


def _check(result, *context):
    """Turn libc's -1 + errno convention into an OSError."""
    if result == -1:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), *context)
    return result


def _bytes(path):
    return None if path is None else os.fsencode(path)


def unshare(flags):
    """unshare(2): move the calling process into new namespaces."""
    _check(_libc.unshare(ctypes.c_int(flags)))


def setns(fd, nstype=0):
    """setns(2): join the namespace that the file descriptor fd refers to."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)))


def sethostname(name):
    """sethostname(2): set the hostname of the calling process's UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))))


def mount(source, target, filesystemtype, mountflags=0, data=None):
    """mount(2): attach a filesystem, or change a mount (bind, move, propagation)."""
    _check(
        _libc.mount(
            _bytes(source),
            _bytes(target),
            _bytes(filesystemtype),
            ctypes.c_ulong(mountflags),
            _bytes(data),
        ),
        target,
    )


def umount2(target, flags=0):
    """umount2(2): detach the filesystem mounted at target."""
    _check(_libc.umount2(_bytes(target), ctypes.c_int(flags)), target)


def close_range(first, last=0xFFFFFFFF, flags=0):
    """close_range(2): close every file descriptor from first to last (or mark them close-on-exec)."""
    # glibc 2.34 has a wrapper, older ones not: call it by its number (436 on every architecture).
    try:
        _check(_libc.syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(last), ctypes.c_uint(flags)))
    except OSError as error:
        if error.errno != errno.ENOSYS or flags:
            raise
        os.closerange(first, min(last, os.sysconf("SC_OPEN_MAX")) + 1)  # a kernel older than 5.9


def pivot_root(new_root, put_old):
    """pivot_root(2): make new_root the root mount; the old root moves to put_old."""
    # glibc has no wrapper for pivot_root: call it by its number.
    _check(_libc.syscall(_SYS_PIVOT_ROOT, _bytes(new_root), _bytes(put_old)), new_root)


# pivot_root's syscall number differs by architecture (asm/unistd.h).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "riscv64": 41}.get(
    os.uname().machine, 155
)
_SYS_CLOSE_RANGE = 436


# prctl(2) options, from <linux/prctl.h>.
PR_SET_KEEPCAPS = 8  # keep the permitted capabilities across a setuid away from root
PR_SET_SECCOMP = 22
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24  # remove a capability from the bounding set, for good
PR_SET_NO_NEW_PRIVS = 38  # execve(2) never grants privileges again (setuid bits, file caps)
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4

# seccomp(2) operations, from <linux/seccomp.h>.
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_MODE_FILTER = 2  # the same, for prctl(PR_SET_SECCOMP, ...)


def prctl(option, arg2=0, arg3=0, arg4=0, arg5=0):
    """prctl(2): operations on the calling process (capabilities, seccomp, ...)."""
    return _check(
        _libc.prctl(
            ctypes.c_int(option),
            ctypes.c_ulong(arg2),
            ctypes.c_ulong(arg3),
            ctypes.c_ulong(arg4),
            ctypes.c_ulong(arg5),
        )
    )


# capget(2)/capset(2) take a header and, in version 3, two 32-bit words per set
# (capabilities 0-31, then 32-63), from <linux/capability.h>.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capget(pid=0):
    """capget(2): the (effective, permitted, inheritable) sets of pid (0: ourselves), as bit masks."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), data))
    return tuple(
        getattr(data[0], name) | getattr(data[1], name) << 32
        for name in ("effective", "permitted", "inheritable")
    )


def capset(effective, permitted, inheritable):
    """capset(2): set the calling thread's effective, permitted and inheritable sets (bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for word in (0, 1):
        shift = 32 * word
        data[word].effective = effective >> shift & 0xFFFFFFFF
        data[word].permitted = permitted >> shift & 0xFFFFFFFF
        data[word].inheritable = inheritable >> shift & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(header), data))


def seccomp(operation, flags, args):
    """seccomp(2): install a filter (args: a ctypes struct sock_fprog) on the calling thread."""
    # glibc has no wrapper for seccomp either: call it by its number.
    if _SYS_SECCOMP is None:
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS), "seccomp")
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_SECCOMP),
            ctypes.c_uint(operation),
            ctypes.c_uint(flags),
            ctypes.byref(args),
        )
    )


_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277, "armv7l": 383, "riscv64": 277}.get(os.uname().machine)
