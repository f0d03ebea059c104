"""One diagnosis for many failures: when most failing checks fail the same way.

A runtime whose containers never start fails every check of a step, each with
its own hint, all beside the point. The [[diagnosis]] entries of
workshop/steps.toml name such symptoms (`[Errno 16] Device or resource busy`
from pivot_root, a raw wait status as exit code, ...); :func:`diagnose` marks
the failing checks that show one, when at least half of all failing checks
do, and at least :data:`AT_LEAST` of them (or all). `workshop check` then shows that diagnosis
first, and its own hint for every other failing check.
"""

from __future__ import annotations

import re

from . import meta

AT_LEAST = 2  # one failing check has its own hint; a diagnosis is for a pattern


def fields(check: dict) -> dict[str, str]:
    """What a diagnosis can match in a failed check (a check as grading.check_of makes it)."""
    run = check.get("run") or {}
    message = "\n".join(str(check.get(k) or "") for k in ("problem", "expected", "got", "output", "message"))
    return {
        "stderr": run.get("stderr") or "",
        "stdout": run.get("stdout") or "",
        "got": check.get("got") or "",
        "expected": check.get("expected") or "",
        "command": check.get("command") or "",
        "message": message,
    }


def matches(diagnosis: meta.Diagnosis, check: dict) -> bool:
    found = fields(check)
    return all(re.search(pattern, found.get(name, ""), re.MULTILINE) for name, pattern in diagnosis.match.items())


def diagnose(checks: list[dict], diagnoses: list[meta.Diagnosis] | None = None) -> list[meta.Diagnosis]:
    """Set check["diagnosis"] to the name of the diagnosis that explains it, for the failing
    checks a diagnosis explains when it explains most of them. Returns the diagnoses used."""
    for c in checks:
        c.setdefault("diagnosis", None)
    failing = [c for c in checks if not c["ok"]]
    candidates = [c for c in failing if c.get("kind") in ("check", "hung", None)]  # a leak is not a symptom
    used = []
    for diagnosis in meta.diagnoses() if diagnoses is None else diagnoses:
        explained = [c for c in candidates if c["diagnosis"] is None and matches(diagnosis, c)]
        if explained and (len(explained) >= AT_LEAST or len(explained) == len(failing)) \
                and 2 * len(explained) >= len(failing):
            for c in explained:
                c["diagnosis"] = diagnosis.name
            used.append(diagnosis)
    return used


def found(checks: list[dict]) -> list[tuple[meta.Diagnosis, list[dict]]]:
    """[(diagnosis, the checks it explains)] as diagnose() marked them, in steps.toml's order."""
    by_name = {d.name: d for d in meta.diagnoses()}
    out: dict[str, list[dict]] = {}
    for c in checks:
        if c.get("diagnosis") in by_name:
            out.setdefault(c["diagnosis"], []).append(c)
    return [(by_name[name], explained) for name, explained in sorted(out.items(),
                                                                    key=lambda kv: list(by_name).index(kv[0]))]
