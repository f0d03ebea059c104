"""Step metadata from steps.toml: titles, goals, hints, man pages.

Standard library only (tomllib), cheap to import: the step suites' conftest
calls :func:`check_hint` to put a hint in a failing check's message::

    from workshop.meta import check_hint
    hint = check_hint(5, "test_rootless_uid_is_root_inside")   # str or None

``WORKSHOP_STEPS_TOML`` points at another file (the tool's own tests use it).
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path

DEFAULT_FILE = Path(__file__).resolve().with_name("steps.toml")


def _file() -> Path:
    return Path(os.environ.get("WORKSHOP_STEPS_TOML") or DEFAULT_FILE)


@lru_cache(maxsize=4)
def _load(path: str) -> dict[int, dict]:
    with open(path, "rb") as f:
        data = tomllib.load(f)
    steps: dict[int, dict] = {}
    for entry in data.get("step", []):
        n = int(entry["number"])
        checks = {}
        for name, value in (entry.get("checks") or {}).items():
            if isinstance(value, str):
                value = {"hint": value}
            checks[name] = {"hint": value.get("hint"), "read": list(value.get("read", []))}
        steps[n] = {
            "number": n,
            "title": entry.get("title", f"Step {n}"),
            "goal": entry.get("goal", ""),
            "learn": list(entry.get("learn", [])),
            "read": list(entry.get("read", [])),
            "hints": list(entry.get("hints", [])),
            "checks": checks,
        }
    return dict(sorted(steps.items()))


def load() -> dict[int, dict]:
    """{step number: {number, title, goal, learn, read, hints, checks}}."""
    return _load(str(_file()))


def numbers() -> list[int]:
    return list(load())


def step(n: int) -> dict:
    """The step's metadata; a placeholder for a step steps.toml lacks."""
    return load().get(int(n)) or {
        "number": int(n), "title": f"Step {n}", "goal": "", "learn": [],
        "read": [], "hints": [], "checks": {},
    }


def title(n: int) -> str:
    return step(n)["title"]


def _check_key(test_name: str) -> str:
    """'tests/step5/test_x.py::TestY::test_z[a-b]' -> 'test_z'."""
    name = test_name.rsplit("::", 1)[-1]
    return name.split("[", 1)[0]


def check(n: int, test_name: str) -> dict | None:
    return step(n)["checks"].get(_check_key(test_name))


def check_hint(n: int, test_name: str) -> str | None:
    """The hint for one check (a test function of tests/stepN), or None."""
    c = check(n, test_name)
    return c["hint"] if c else None


def check_read(n: int, test_name: str) -> list[str]:
    """What to read for one check: its own list, else the step's."""
    c = check(n, test_name)
    if c and c["read"]:
        return c["read"]
    return step(n)["read"]
