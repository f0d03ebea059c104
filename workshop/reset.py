"""`workshop reset`: put a step folder back to its starting code, keeping the learner's version."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import paths, pristine, state


@dataclass
class Outcome:
    step: int
    source: str = ""           # where the starting code came from ("git HEAD", "the generator")
    backup: Path | None = None  # where the learner's version is kept
    error: str = ""


def backups() -> Path:
    return paths.state_dir() / "backups"


def _backup(step: int, folder: Path, stamp: str) -> Path:
    """Copy FOLDER to .workshop/backups/stepN-STAMP[-n], owned by the repository's owner."""
    backup = backups() / f"step{step}-{stamp}"
    n = 1
    while backup.exists():
        n += 1
        backup = backup.with_name(f"step{step}-{stamp}-{n}")
    backup.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, backup, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    paths.give_to_owner(paths.state_dir())
    paths.give_to_owner(backup.parent)
    paths.give_to_owner(backup, recursive=True)
    return backup


def reset(step: int, stamp: str) -> Outcome:
    """steps/STEP back to its starting code; the learner's version first goes to a backup.
    Nothing changes when the starting code cannot be had."""
    outcome = Outcome(step)
    folder = paths.steps_dir(step)
    with tempfile.TemporaryDirectory(prefix="workshop-reset-") as tmp:
        fresh = Path(tmp) / "fresh"
        try:
            outcome.source = pristine.copy(step, fresh)
        except pristine.PristineError as e:
            outcome.error = str(e)
            return outcome
        if folder.exists():
            outcome.backup = _backup(step, folder, stamp)
            shutil.rmtree(folder)
        shutil.copytree(fresh, folder, symlinks=True)
        paths.give_to_owner(folder, recursive=True)
    state.forget_step(step)
    return outcome
