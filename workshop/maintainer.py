"""What `workshop selftest` and `workshop dev check` run: pytest in the repository.

STATIC_TESTS are the tests that only read files (no root, no container, a few
seconds): the generated folders against reference/, the markers, steps.toml
against the suites and the guide, each starter against its previous solution.
CI (.ci/run) runs them before everything else.
"""

from __future__ import annotations

import subprocess
import sys

from . import paths

STATIC_TESTS = [
    "tests/tooling/test_generated.py",
    "tests/tooling/test_guide.py",
    "tests/tooling/test_metadata.py",
]


def pytest_in_repo(args: list[str]) -> int:
    """python -m pytest ARGS from the repository's root (the command is said on stderr first)."""
    from .grading import pytest_env

    shown = " ".join(repr(a) if " " in a else a for a in args)
    print(f"$ (cd {paths.root()} && python3 -m pytest {shown})".rstrip(), file=sys.stderr, flush=True)
    try:
        return subprocess.call([sys.executable, "-m", "pytest", *args], cwd=paths.root(), env=pytest_env())
    except KeyboardInterrupt:
        return 130
