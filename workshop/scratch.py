"""The workshop's scratch folders in the temp directory, and whether their owner still lives.

A folder's owner (`workshop check`, a test session, a test registry, the demo)
holds a flock on its ``.alive`` file for as long as it runs; the kernel drops
the lock when the owner dies, however it dies. So `workshop clean` can tell the
folder of a session killed outright (SIGKILL, a crash of the machine's
session) from one in use, without guessing from ages or process names.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

ALIVE = ".alive"
#: the names of the folders that `workshop clean` looks at, in the temp directory
PATTERN = "workshop-*"


def hold(folder: os.PathLike | str) -> int:
    """Mark FOLDER as in use for as long as this process lives; return the descriptor (keep it
    open; it is close-on-exec, so nothing this process starts holds it)."""
    fd = os.open(Path(folder) / ALIVE, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def abandoned(folder: os.PathLike | str) -> bool:
    """Did FOLDER's owner hold it, and is it gone? A folder that was never held (made by
    something else, or by an older workshop) is not ours to judge: False."""
    try:
        fd = os.open(Path(folder) / ALIVE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: its owner lives
        return False
    finally:
        os.close(fd)
