"""Read processes from /proc: which there are, their parent, command line, environment, state.

One reader for `workshop clean`, the test harness and its step tests (through
workshop.testing). PROC is /proc, or a tree laid out like it (the tool's tests
make one). Nothing here raises for a process that is gone: it reads as None,
empty or not alive.
"""

from __future__ import annotations

import os


def read(path: str | os.PathLike) -> str | None:
    """The text of a file (undecodable bytes replaced), or None when it cannot be read."""
    data = read_bytes(path)
    return None if data is None else data.decode(errors="replace")


def read_bytes(path: str | os.PathLike) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def all_pids(proc: str = "/proc") -> list[int]:
    try:
        return [int(p) for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return []


def _stat_fields(pid: int, proc: str) -> list[str]:
    """The fields of /proc/PID/stat after the command's name (which may hold spaces and ')')."""
    stat = read(os.path.join(proc, str(pid), "stat")) or ""
    return stat.rsplit(")", 1)[1].split() if ")" in stat else []


def ppid_of(pid: int, proc: str = "/proc") -> int | None:
    fields = _stat_fields(pid, proc)
    try:
        return int(fields[1])
    except (IndexError, ValueError):
        return None


def state(pid: int, proc: str = "/proc") -> str | None:
    """R, S, D, Z ... (proc(5)), or None for a process that is gone."""
    fields = _stat_fields(pid, proc)
    return fields[0] if fields else None


def alive(pid: int, proc: str = "/proc") -> bool:
    return state(pid, proc) not in (None, "Z", "X")


def cmdline(pid: int, proc: str = "/proc") -> list[str]:
    raw = read_bytes(os.path.join(proc, str(pid), "cmdline")) or b""
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else []


def environ(pid: int, proc: str = "/proc") -> bytes:
    """The environment as the kernel keeps it (NUL-separated KEY=VALUE), b"" when unreadable."""
    return read_bytes(os.path.join(proc, str(pid), "environ")) or b""
