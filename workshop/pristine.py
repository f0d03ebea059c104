"""The starting code of a step, as generated: for `workshop reset` and `workshop diff --mine`.

From git (``HEAD:steps/stepN``) when the repository is a git checkout and the
committed folder still has its ``TODO(step N)`` markers (a learner who commits
their work would otherwise get their own work back); else from the generator,
``python3 -m workshop.generate --only steps/stepN --out DIR``.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from . import paths


class PristineError(Exception):
    pass


def _git(*args: str, **kw) -> subprocess.CompletedProcess:
    # safe.directory: under sudo the checkout belongs to the learner, and git would refuse it
    root = str(paths.root())
    return subprocess.run(["git", "-c", f"safe.directory={root}", "-C", root, *args], capture_output=True, **kw)


def _from_git(step: int, dest: Path) -> bool:
    """Extract HEAD's steps/stepN into DEST; False when git has no such folder."""
    try:
        prefix = _git("rev-parse", "--show-prefix", text=True)
    except OSError:  # no git
        return False
    if prefix.returncode != 0:
        return False
    tree = f"HEAD:{prefix.stdout.strip()}steps/step{step}"
    if _git("cat-file", "-e", tree).returncode != 0:
        return False
    archive = _git("archive", "--format=tar", tree)
    if archive.returncode != 0 or not archive.stdout:
        return False
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        if hasattr(tarfile, "data_filter"):  # Python 3.11.4+; our own git archive either way
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)
    return True


def _has_todos(folder: Path, step: int) -> bool:
    marker = f"TODO(step {step})"
    for path in folder.rglob("*.py"):
        try:
            if marker in path.read_text(encoding="utf-8", errors="replace"):
                return True
        except OSError:
            continue
    return False


def _from_generator(step: int, dest: Path) -> None:
    out = dest.parent / (dest.name + ".gen")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(paths.PACKAGE_DIR.parent), env.get("PYTHONPATH")) if p)
    proc = subprocess.run([sys.executable, "-m", "workshop.generate", "--only", f"steps/step{step}",
                           "--out", str(out)], cwd=paths.root(), env=env, capture_output=True, text=True)
    made = out / "steps" / f"step{step}"
    if proc.returncode != 0 or not made.is_dir():
        why = (proc.stderr or proc.stdout).strip().splitlines()
        raise PristineError(f"cannot regenerate steps/step{step}: "
                            + (why[-1] if why else f"the generator exited {proc.returncode}"))
    made.rename(dest)


def copy(step: int, dest: Path) -> str:
    """Write the pristine steps/stepN into DEST (must not exist); return where it came from."""
    dest = Path(dest)
    staged = dest.parent / (dest.name + ".git")
    staged.mkdir(parents=True)
    try:
        in_git = _from_git(step, staged)
        if in_git and _has_todos(staged, step):
            staged.rename(dest)
            return "git HEAD"
        try:
            _from_generator(step, dest)
            return "the generator"
        except PristineError:
            if not in_git:
                raise
            staged.rename(dest)  # git's copy has no TODO markers, but it is all there is
            return "git HEAD"
    finally:
        if staged.exists():
            _rmtree(staged)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)
