"""The diagnoses of steps.toml on failures recorded from runtimes broken on purpose.

Each file of tests/tooling/diagnoses/ holds the failing checks of one
`workshop check` of a solution with one mistake in it (record.py made them and
says how). A diagnosis must explain the failures its mistake causes, and only
those; where no diagnosis applies, every failing check keeps its own hint.
"""
import json
from pathlib import Path

import pytest

from workshop import meta
from workshop.diagnosis import diagnose, found, matches

RECORDED = Path(__file__).resolve().parent / "diagnoses"
#: the mistake recorded -> the diagnosis `workshop check` must show first (None: the checks' own hints)
EXPECTED = {
    "pivot-root-busy": "pivot-root-busy",
    "pivot-root-shared": "pivot-root-invalid",
    "raw-wait-status": "raw-wait-status",
    "gid-map-before-setgroups": "user-namespace-refused",
    "docker-media-type-missing": "manifest-digest-mismatch",
    "python-traceback": "python-error",
    "seccomp-last-without-no-new-privs": "seccomp-needs-no-new-privs",
    "network-handshake-in-the-wrong-order": "network-handshake-deadlock",
    "pid-namespace-in-the-child": None,  # the PID checks fail, each its own way: their hints say it
}


def recorded(name: str) -> list[dict]:
    return json.loads((RECORDED / f"{name}.json").read_text())["checks"]


def test_every_recording_is_expected_and_every_diagnosis_is_recorded():
    assert {p.stem for p in RECORDED.glob("*.json")} == set(EXPECTED)
    assert {d for d in EXPECTED.values() if d} | {"fork-enomem"} == {d.name for d in meta.diagnoses()}


@pytest.mark.parametrize("mistake", sorted(EXPECTED))
def test_the_mistake_gets_its_diagnosis(mistake):
    checks = recorded(mistake)
    used = diagnose(checks)
    expected = EXPECTED[mistake]
    assert [d.name for d in used] == ([expected] if expected else [])
    explained = [c for c in checks if c["diagnosis"]]
    if expected:
        assert 2 * len(explained) >= len(checks) and (len(explained) >= 2 or len(explained) == len(checks))
    # whatever it does not explain keeps its own hint
    for c in checks:
        if not c["diagnosis"] and c["kind"] == "check":
            assert meta.check_hint(c["step"], c["name"]), c["label"]


@pytest.mark.parametrize("mistake", sorted(m for m, d in EXPECTED.items() if d))
def test_no_other_diagnosis_matches_the_mistake(mistake):
    """A diagnosis says one thing: none matches most of another mistake's failures."""
    for other in meta.diagnoses():
        if other.name != EXPECTED[mistake]:
            hits = [c for c in recorded(mistake) if matches(other, c)]
            assert 2 * len(hits) < len(recorded(mistake)), f"{other.name} matches {mistake}"


def test_a_leak_or_a_single_odd_failure_is_not_a_diagnosis():
    checks = recorded("pivot-root-shared")
    diagnose(checks)
    leak = [c for c in checks if c["kind"] == "left-behind"]
    assert leak and all(c["diagnosis"] is None for c in leak)
    # fork-enomem matches the one check that shows it, but that is 1 of 7: the PID hints stay
    pid = recorded("pid-namespace-in-the-child")
    enomem = next(d for d in meta.diagnoses() if d.name == "fork-enomem")
    assert [c["name"] for c in pid if matches(enomem, c)] == ["test_other_signals_are_forwarded_to_the_command"]
    assert diagnose(pid) == []


def test_found_groups_the_explained_checks():
    checks = recorded("pivot-root-busy")
    diagnose(checks)
    [(diagnosis, explained)] = found(checks)
    assert diagnosis.name == "pivot-root-busy" and len(explained) == len(checks)
