"""Read a mount table: /proc/PID/mountinfo, as proc(5) lays it out; and unmount.

One parser for the workshop's checks, its tests and `workshop clean`. Paths are
as the reading process's view of PID sees them (relative to PID's root).
"""
import ctypes
import ctypes.util
import os
import re
from dataclasses import dataclass

MNT_DETACH = 2

_ESCAPE = re.compile(r"\\([0-7]{3})")  # the kernel escapes space, tab, newline and \ as \ooo


@dataclass(frozen=True)
class Mount:
    mount_id: int
    parent_id: int
    root: str  # the path, inside its filesystem, that is mounted (a bind mount's source)
    mountpoint: str
    fstype: str
    source: str
    options: str  # the filesystem's (super block's) options

    def __str__(self):
        return f"{self.fstype} {self.source} on {self.mountpoint}"


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: chr(int(m[1], 8)), text)


def parse(text: str) -> list[Mount]:
    """The mounts of a mountinfo text; malformed lines are skipped."""
    mounts = []
    for line in text.splitlines():
        f = line.split()
        try:
            sep = f.index("-", 6)
            mounts.append(Mount(int(f[0]), int(f[1]), _unescape(f[3]), _unescape(f[4]), f[sep + 1],
                                _unescape(f[sep + 2]) if len(f) > sep + 2 else "",
                                _unescape(f[sep + 3]) if len(f) > sep + 3 else ""))
        except (ValueError, IndexError):
            continue
    return mounts


def read(path: str = "/proc/self/mountinfo") -> list[Mount]:
    """The mounts listed in PATH; none when it cannot be read (the process is gone)."""
    try:
        with open(path) as file:
            return parse(file.read())
    except OSError:
        return []


_libc = None


def detach(target: str) -> str | None:
    """Unmount TARGET: umount2(TARGET, 0), else lazily (MNT_DETACH) when it is busy.
    None when it is unmounted, else the error."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    path = os.fsencode(target)
    if _libc.umount2(path, 0) == 0 or _libc.umount2(path, MNT_DETACH) == 0:
        return None
    error = ctypes.get_errno()
    return os.strerror(error) if error else "umount failed"
