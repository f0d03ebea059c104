"""Differences between two step folders: for `workshop diff` and `workshop solution`."""

from __future__ import annotations

import difflib
import os
from pathlib import Path


def tree_files(folder: Path | None) -> dict[str, str]:
    """{relative path: text} of the source files below FOLDER (caches and dot files left out)."""
    out: dict[str, str] = {}
    if folder is None or not Path(folder).is_dir():
        return out
    folder = Path(folder)
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith((".pyc", ".pyo")) or f.startswith("."):
                continue
            p = Path(dirpath, f)
            try:
                out[str(p.relative_to(folder))] = p.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    return out


def unified_diff(old_dir: Path | None, new_dir: Path | None, old_label: str,
                 new_label: str) -> list[tuple[str, list[str]]]:
    """[(relative path, diff lines)] for every file that differs."""
    a, b = tree_files(old_dir), tree_files(new_dir)
    out = []
    for rel in sorted(set(a) | set(b)):
        if a.get(rel) == b.get(rel):
            continue
        lines = list(difflib.unified_diff(
            a.get(rel, "").splitlines(keepends=True), b.get(rel, "").splitlines(keepends=True),
            fromfile=f"{old_label}/{rel}" if rel in a else "/dev/null",
            tofile=f"{new_label}/{rel}" if rel in b else "/dev/null"))
        out.append((rel, [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                          for line in lines]))
    return out


def counts(lines: list[str]) -> tuple[int, int]:
    """(lines added, lines removed) of one file's diff."""
    return (sum(1 for x in lines if x.startswith("+") and not x.startswith("+++")),
            sum(1 for x in lines if x.startswith("-") and not x.startswith("---")))


def changed_lines(old: str, new: str) -> set[int]:
    """The numbers (from 1) of NEW's lines that OLD does not have."""
    marked: set[int] = set()
    matcher = difflib.SequenceMatcher(None, old.splitlines(), new.splitlines(), autojunk=False)
    for tag, _, _, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "insert"):
            marked.update(range(j1 + 1, j2 + 1))
    return marked
