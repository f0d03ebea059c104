"""workshop/steps.toml against the step suites: every step complete, every check with a hint,
every diagnosis well-formed. (Static: `workshop dev check` runs these.)

They read the repository of paths.root() (WORKSHOP_HOME, else this checkout), so that the
test of a new step can run them in a miniature repository.
"""
import ast
import os
import re
import subprocess
import sys

import pytest

from workshop import meta, paths

REPO = paths.root()


def _test_functions(step: int) -> set[str]:
    names = set()
    for path in paths.tests_dir(step).glob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_steps_toml_is_complete():
    steps = meta.load()
    assert list(steps) == list(range(len(steps))), "steps are numbered 0, 1, 2, ... without gaps"
    for n, s in steps.items():
        assert s["title"] and s["goal"] and s["learn"] and s["read"], f"step {n} lacks a title/goal/learn/read"
        assert len(s["hints"]) >= 2, f"step {n}: give at least two hint tiers"
    for kind in ("steps", "solutions", "tests"):
        found = {int(d.name[4:]) for d in (REPO / kind).glob("step*") if d.name[4:].isdigit()}
        assert found <= set(steps), f"{kind}/ has steps that steps.toml lacks: {sorted(found - set(steps))}"


@pytest.mark.parametrize("step", meta.numbers())
def test_steps_toml_hints_match_the_step_suites(step):
    """Every hint names a test of its step, and every test of the step has a hint."""
    tests = _test_functions(step)
    assert tests, f"tests/step{step} has no test: every step has a suite"
    hinted = set(meta.step(step)["checks"])
    assert not hinted - tests, (f"steps.toml has hints for tests that tests/step{step} does not have "
                                f"(renamed or removed?): {sorted(hinted - tests)}")
    assert not tests - hinted, (f"tests/step{step} has tests without a hint in workshop/steps.toml: "
                                f"{sorted(tests - hinted)}; add [step.checks.NAME] hint = \"...\"")


def test_diagnoses_are_well_formed():
    fields = {"stderr", "stdout", "got", "expected", "command", "message"}
    names = [d.name for d in meta.diagnoses()]
    assert len(names) == len(set(names)), "two [[diagnosis]] entries have the same name"
    for d in meta.diagnoses():
        assert d.step in meta.numbers(), f"diagnosis {d.name}: there is no step {d.step}"
        assert d.symptom and d.fix and d.match, f"diagnosis {d.name} needs a symptom, a fix and a match"
        assert set(d.match) <= fields, f"diagnosis {d.name} matches {set(d.match) - fields}: not a field"
        for pattern in d.match.values():
            re.compile(pattern)


def test_meta_is_cheap_to_import():
    code = "import sys, workshop.meta; print(sorted(m for m in ('click', 'rich', 'pytest') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(paths.PACKAGE_DIR.parent)})
    assert r.stdout.strip() == "[]", r.stdout + r.stderr
