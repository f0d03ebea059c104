"""The learner's progress, kept in .workshop/state.json (gitignored).

{"version": 1,
 "steps": {"3": {"status": "passing" | "failing", "passed": 6, "total": 6,
                 "failing": ["test_x", ...], "checked_at": "2024-...Z"}},
 "hints": {"3": 2}}          # hint tiers shown so far
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from . import paths

NOT_STARTED, FAILING, PASSING = "not started", "failing", "passing"


def _file() -> Path:
    return paths.state_dir() / "state.json"


def load() -> dict:
    try:
        with open(_file(), encoding="utf-8") as f:
            data = json.load(f)
        if isinstance(data, dict):
            data.setdefault("steps", {})
            data.setdefault("hints", {})
            return data
    except (OSError, ValueError):
        pass
    return {"version": 1, "steps": {}, "hints": {}}


def save(data: dict) -> None:
    """Write the state; a state that cannot be written is only a warning."""
    path = _file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.give_to_owner(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o644)
        paths.give_to_owner(Path(tmp))
        os.replace(tmp, path)
    except OSError as e:
        import sys

        print(f"workshop: cannot save your progress in {path}: {e.strerror or e}"
              f" (was it written with sudo? sudo chown -R $USER {path.parent})", file=sys.stderr)


def step_status(data: dict, step: int) -> str:
    entry = data["steps"].get(str(step))
    return entry["status"] if entry else NOT_STARTED


def record_check(step: int, passed: int, total: int, failing: list[str]) -> dict:
    data = load()
    data["steps"][str(step)] = {
        "status": PASSING if total and passed == total else FAILING,
        "passed": passed,
        "total": total,
        "failing": failing,
        "checked_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    save(data)
    return data


def forget_step(step: int) -> None:
    data = load()
    if data["steps"].pop(str(step), None) is not None:
        save(data)


def hint_tier(data: dict, step: int) -> int:
    return int(data["hints"].get(str(step), 0))


def set_hint_tier(step: int, tier: int) -> None:
    data = load()
    data["hints"][str(step)] = tier
    save(data)
