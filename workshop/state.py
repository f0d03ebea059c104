"""The learner's progress, kept in .workshop/state.json (gitignored).

{"version": 1,
 "steps": {"3": {"status": "passing" | "failing", "passed": 6, "total": 6,
                 "failing": ["test_x", ...], "checked_at": "2024-...Z",
                 "through": 5}},     # (only when) a check of step 5 passed step 3's checks
 "hints": {"3": 2}}          # hint tiers shown so far

Only full checks of the learner's own folder count (:func:`record_check`): not
a `-k` or `--only` run, nor one of a solution. `workshop check N` runs the
checks of steps 0..N, so a step whose checks all pass there is passing too
(a learner who starts at step 4 is not sent back to step 0).
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


def record_check(step: int, passed: int, total: int, failing: list[str],
                 earlier: dict[int, tuple[int, int]] | None = None) -> dict:
    """Record a full check of STEP: PASSED of TOTAL checks, the names of the FAILING ones of
    STEP's own suite. EARLIER: {step K < STEP: (passed, total) of K's suite in the same run}:
    each K whose checks all passed is passing from now on."""
    data = load()
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data["steps"][str(step)] = {
        "status": PASSING if total and passed == total else FAILING,
        "passed": passed,
        "total": total,
        "failing": failing,
        "checked_at": now,
    }
    for k, (k_passed, k_total) in (earlier or {}).items():
        if k_total and k_passed == k_total and step_status(data, k) != PASSING:
            data["steps"][str(k)] = {"status": PASSING, "passed": k_passed, "total": k_total, "failing": [],
                                     "checked_at": now, "through": step}
    save(data)
    return data


def record_result(result) -> None:
    """Record a workshop.grading.Result of the learner's steps/STEP, when it was a full check
    (not -k, not --only: those check only some)."""
    if not result.full or result.only_step:
        return
    groups = result.by_step()
    own = groups.get(result.step, {"failing": []})
    record_check(result.step, result.passed, result.total, sorted({c["name"] for c in own["failing"]}),
                 {k: (e["passed"], e["total"]) for k, e in groups.items() if k < result.step})


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


def first_unfinished(data: dict | None = None) -> int:
    """The first step that does not pass yet (the last step when every one passes)."""
    from . import meta

    data = load() if data is None else data
    steps = meta.numbers()
    for s in steps:
        if step_status(data, s) != PASSING:
            return s
    return steps[-1] if steps else 0
