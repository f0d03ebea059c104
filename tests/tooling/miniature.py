"""Miniature workshop repositories for the tool's tests: this repository's harness (conftest.py,
the pytest settings, the image fixtures) in a folder of its own, with steps made up for the test.

    from tooling.miniature import REPO, miniature
    repo = miniature(tmp_path / "repo", "workshop/steps.toml")   # also this repository's steps
"""
from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: what every miniature takes from this repository: the matrix and fixtures, and their settings
HARNESS = ("conftest.py", "pyproject.toml", "tests/imagesupport.py")


def miniature(repo: Path, *more: str) -> Path:
    """REPO's harness, and the files MORE (paths relative to the repository), copied to REPO."""
    for rel in (*HARNESS, *more):
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, repo / rel)
    return repo
