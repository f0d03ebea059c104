"""`workshop check --watch`: check again whenever a file of the step folder changes.

Polls modification times: VirtualBox shared folders and some network file
systems send no inotify events.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable


def snapshot(folder: Path) -> dict:
    """{path: (mtime, size)} of the files an edit can change (caches, editor swap files left out)."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".pytest_cache") and not d.startswith(".")]
        for f in filenames:
            if f.endswith((".pyc", ".swp", "~")) or f.startswith(".#"):
                continue
            p = os.path.join(dirpath, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            snap[p] = (st.st_mtime_ns, st.st_size)
    return snap


def wait_for_change(folder: Path, interval: float) -> None:
    before = snapshot(folder)
    while True:
        time.sleep(interval)
        if snapshot(folder) != before:
            time.sleep(min(0.2, interval))  # let an editor finish writing
            return


def loop(check: Callable[[int], int], folder: Path, interval: float, max_runs: int,
         between: Callable[[], None]) -> int:
    """Run CHECK(run number) now and after every change in FOLDER, until Ctrl-C (or MAX_RUNS runs);
    BETWEEN says that it is waiting. Returns the last check's exit status."""
    runs, code = 0, 1
    try:
        while True:
            code = check(runs)
            runs += 1
            if max_runs and runs >= max_runs:
                return code
            between()
            wait_for_change(folder, interval)
    except KeyboardInterrupt:
        return code
