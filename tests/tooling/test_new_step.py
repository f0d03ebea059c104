"""A step is one unit: adding one takes its four parts and no other edit.

A miniature workshop (WORKSHOP_HOME) with steps 0-8: a reference runtime in
which each step adds one feature, a suite per step, steps.toml, a guide, and
this repository's conftest.py (the matrix), pytest settings and metadata test.
Then step 9 comes, as CONTRIBUTING.md's "Adding a step" says: a block in the
reference, tests/step9, a [[step]] in steps.toml, a guide section. The
generator, the matrix, `workshop progress/check/hint/show` and the hint
coverage test must all have it, with nothing else changed.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tooling.miniature import REPO, miniature


NEW_STEP = 9  # the miniature has steps 0-8 before
RUNTIME_HEAD = '''\
"""A runtime of features: `udocker feature N` prints N when step N added it."""
import sys

FEATURES = set()
'''
RUNTIME_TAIL = '''
args = sys.argv[1:]
if args[:1] == ["feature"] and len(args) == 2 and args[1] in FEATURES:
    print(args[1])
    sys.exit(0)
print(f"udocker: no such feature: {args}", file=sys.stderr)
sys.exit(125)
'''


def block(n: int) -> str:
    return f'# >>> step {n}: add feature {n}\nFEATURES.add("{n}")\n# <<<\n'


def suite(n: int) -> str:
    return textwrap.dedent(f'''\
        def test_feature_{n}(udocker):
            """feature {n} works"""
            udocker.run("feature", "{n}").expect_exit(0).expect_stdout("{n}\\n")
        ''')


def step_entry(n: int) -> str:
    return textwrap.dedent(f'''
        [[step]]
        number = {n}
        title = "Feature {n}"
        goal = "`udocker feature {n}` prints {n}."
        learn = ["How feature {n} works."]
        read = ["man 7 feature{n}"]
        hints = ["Feature {n} is one line: FEATURES.add.", "FEATURES.add(\\"{n}\\") at the TODO."]

        [step.checks.test_feature_{n}]
        hint = "Add \\"{n}\\" to FEATURES."
        ''')


def guide_section(n: int) -> str:
    return f"\n## Step {n}: Feature {n}\n\nFEATURE-{n}-TEXT: add it to FEATURES.\n"


def add_step(repo: Path, n: int) -> None:
    """The four parts of a step, as CONTRIBUTING.md lists them."""
    main = repo / "reference" / "udocker" / "__main__.py"
    main.write_text(main.read_text().replace(RUNTIME_TAIL, block(n) + RUNTIME_TAIL))
    (repo / "tests" / f"step{n}").mkdir(parents=True)
    (repo / "tests" / f"step{n}" / "test_feature.py").write_text(suite(n))
    with open(repo / "workshop" / "steps.toml", "a") as f:
        f.write(step_entry(n))
    with open(repo / "workshop.md", "a") as f:
        f.write(guide_section(n))


@pytest.fixture
def workshop_of_nine_steps(tmp_path) -> Path:
    repo = miniature(tmp_path / "repo", "tests/tooling/test_metadata.py")
    (repo / "reference" / "udocker").mkdir(parents=True)
    (repo / "reference" / "udocker" / "__init__.py").write_text("")
    (repo / "reference" / "udocker" / "__main__.py").write_text(RUNTIME_HEAD + RUNTIME_TAIL)
    (repo / "workshop").mkdir()
    (repo / "workshop" / "steps.toml").write_text("# the miniature workshop's steps\n")
    (repo / "workshop.md").write_text("# The miniature workshop\n")
    for n in range(NEW_STEP):
        add_step(repo, n)
    generate(repo)
    return repo


def run(repo: Path, *argv: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "WORKSHOP_HOME": str(repo), "COLUMNS": "200"}
    return subprocess.run([sys.executable, *argv], cwd=repo, env=env, capture_output=True, text=True,
                          timeout=timeout)


def generate(repo: Path) -> None:
    r = run(repo, "-m", "workshop.generate")
    assert r.returncode == 0, r.stdout + r.stderr


def test_a_new_step_needs_its_four_parts_and_nothing_else(workshop_of_nine_steps):
    repo = workshop_of_nine_steps
    assert not (repo / "steps" / "step9").exists()
    add_step(repo, 9)

    # the generator: solutions/step9, steps/step9 (step 8's solution plus the TODO)
    generate(repo)
    assert 'FEATURES.add("9")' in (repo / "solutions" / "step9" / "udocker" / "__main__.py").read_text()
    start = (repo / "steps" / "step9" / "udocker" / "__main__.py").read_text()
    assert "TODO(step 9): add feature 9" in start and 'FEATURES.add("8")' in start

    # the matrix and the hint coverage test
    r = run(repo, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    assert "PASSED tests/step9/test_feature.py::test_feature_9[solutions/step9]" in r.stdout
    assert "XFAIL tests/step9/test_feature.py::test_feature_9[steps/step9]" in r.stdout
    assert "PASSED tests/step8/test_feature.py::test_feature_8[steps/step9]" in r.stdout  # the next starter
    assert "PASSED tests/step8/test_feature.py::test_feature_8[solutions/step9]" in r.stdout
    assert "PASSED tests/tooling/test_metadata.py::test_steps_toml_hints_match_the_step_suites[9]" in r.stdout

    # the tool
    progress = run(repo, "-m", "workshop").stdout
    assert "0 of 10 steps pass" in progress and "9  Feature 9" in progress
    check = run(repo, "-m", "workshop", "check", "9", "--json")
    data = json.loads(check.stdout)
    assert check.returncode == 1 and "tests/step9" in data["command"] and "tests/step0" in data["command"]
    assert data["steps"]["9"] == {"passed": 0, "total": 1, "status": "failing"}
    assert data["steps"]["8"]["status"] == "passing"
    [failing] = [c for c in data["checks"] if not c["ok"]]
    assert failing["name"] == "test_feature_9" and failing["hint"] == 'Add "9" to FEATURES.'
    assert run(repo, "-m", "workshop", "check", "9", "--solution").returncode == 0
    assert "Hint 1 of 2:" in run(repo, "-m", "workshop", "hint", "9").stdout
    assert "FEATURE-9-TEXT" in run(repo, "-m", "workshop", "show", "9").stdout
    assert "the steps are 0 to 9" in run(repo, "-m", "workshop", "check", "10").stdout
