"""Step metadata from workshop/steps.toml: the steps, their titles, goals, hints, man pages, and
the diagnoses of failures that many checks share.

:func:`numbers` is THE list of steps: everything that goes through the steps
(the matrix, `workshop progress` and `check`, the tooling tests, the VM lane,
the benchmark) asks it. Standard library only (tomllib), cheap to import::

    from workshop import meta
    meta.numbers()                                              # [0, 1, ..., 8]
    meta.check_hint(5, "test_rootless_user_is_root_inside")    # str or None

The file is the repository's (``paths.root()/workshop/steps.toml``, so that a
miniature repository in WORKSHOP_HOME brings its own), else the package's.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from . import paths

PACKAGE_FILE = Path(__file__).resolve().with_name("steps.toml")


@dataclass(frozen=True)
class Diagnosis:
    """One symptom that many checks can share (a [[diagnosis]] of steps.toml).

    A failed check shows it when every regular expression of MATCH is found in
    its field of that name: stderr or stdout (the runtime's), got, expected,
    command, message (everything the check said).
    """

    name: str
    step: int  # the step whose "When it goes wrong" explains it
    symptom: str
    fix: str
    match: dict
    read: str = ""  # where the guide explains it, when not in step STEP's "When it goes wrong"

    def where(self) -> str:
        return self.read or f"step {self.step}'s \"When it goes wrong\" (workshop show {self.step})"


def file() -> Path:
    own = paths.root() / "workshop" / "steps.toml"
    return own if own.is_file() else PACKAGE_FILE


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
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
    diagnoses = [Diagnosis(d["name"], int(d["step"]), d["symptom"], d["fix"], dict(d["match"]), d.get("read", ""))
                 for d in data.get("diagnosis", [])]
    kinds = {name: value.get("hint", "") for name, value in (data.get("failure") or {}).items()}
    return {"steps": dict(sorted(steps.items())), "diagnoses": diagnoses, "kinds": kinds}


def _data() -> dict:
    return _load(str(file()))


def load() -> dict[int, dict]:
    """{step number: {number, title, goal, learn, read, hints, checks}}."""
    return _data()["steps"]


def numbers() -> list[int]:
    """The workshop's steps, in order: the one list of them."""
    return list(load())


def step(n: int) -> dict:
    """The step's metadata; a placeholder for a step steps.toml lacks."""
    return load().get(int(n)) or {
        "number": int(n), "title": f"Step {n}", "goal": "", "learn": [],
        "read": [], "hints": [], "checks": {},
    }


def title(n: int) -> str:
    return step(n)["title"]


def check_key(test_name: str) -> str:
    """'tests/step5/test_x.py::TestY::test_z[a-b]' -> 'test_z'."""
    name = test_name.rsplit("::", 1)[-1]
    return name.split("[", 1)[0]


def check(n: int, test_name: str) -> dict | None:
    return step(n)["checks"].get(check_key(test_name))


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


def hint_for(n: int | None, test_name: str, kind: str = "check") -> str | None:
    """The hint for a failed check: its kind's ([failure.KIND] of steps.toml: a leak, a hang)
    when it has one, else the check's own."""
    hint = _data()["kinds"].get(kind)
    if hint:
        return hint
    return check_hint(n, test_name) if n is not None else None


def diagnoses() -> list[Diagnosis]:
    return list(_data()["diagnoses"])
