"""The step folders are generated from reference/ and must stay in step with it."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

from workshop import generate

REPO = Path(__file__).resolve().parents[2]
SOURCES = generate.load_sources()
LAST = generate.last_step(SOURCES)


def python_files(folder):
    return {p.relative_to(folder): p for p in folder.rglob("*.py") if "__pycache__" not in p.parts}


def test_committed_folders_are_up_to_date():
    """`python3 -m workshop.generate --check` finds nothing to regenerate."""
    result = subprocess.run(
        [sys.executable, "-m", "workshop.generate", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("kind", generate.KINDS)
def test_no_marker_is_left_in_generated_code(kind):
    for step in range(LAST + 1):
        for relative, path in python_files(REPO / kind / f"step{step}").items():
            text = path.read_text()
            for marker in ("# >>>", "# <<<", "# --- before", "# udocker: from step"):
                assert marker not in text, f"{kind}/step{step}/{relative} still holds {marker!r}"


@pytest.mark.parametrize("step", range(1, LAST + 1))
def test_starting_code_is_previous_solution_plus_todos(step):
    """steps/stepN has the code of solutions/step(N-1): only comments (the TODOs) differ.

    This is why steps/stepN need not be run against the suites of steps 0..N-1:
    solutions/step(N-1) is, and it is the same program.
    """
    start = python_files(REPO / "steps" / f"step{step}")
    previous = python_files(REPO / "solutions" / f"step{step - 1}")
    new_files = {s.path for s in SOURCES if s.first_step == step}
    assert set(start) - set(previous) == new_files
    for relative in previous:
        left = ast.dump(ast.parse(start[relative].read_text()))
        right = ast.dump(ast.parse(previous[relative].read_text()))
        assert left == right, f"steps/step{step}/{relative} differs from solutions/step{step - 1} beyond comments"


@pytest.mark.parametrize("step", range(0, LAST + 1))
def test_every_step_has_a_todo(step):
    todos = [
        path for path in python_files(REPO / "steps" / f"step{step}").values()
        if f"TODO(step {step})" in path.read_text()
    ]
    assert todos, f"steps/step{step} has no TODO(step {step}): nothing for the learner to do"


@pytest.mark.parametrize("kind", generate.KINDS)
def test_generated_code_compiles(kind):
    for step in range(LAST + 1):
        for relative, path in python_files(REPO / kind / f"step{step}").items():
            compile(path.read_text(), f"{kind}/step{step}/{relative}", "exec")


def test_marker_errors_name_the_file_and_line():
    with pytest.raises(generate.MarkerError, match=r"x.py:2: a step block needs a TODO text"):
        generate.parse(Path("x.py"), "a = 1\n# >>> step 3\nb = 2\n# <<<\n")
    with pytest.raises(generate.MarkerError, match="never closed"):
        generate.parse(Path("x.py"), "# >>> step 3: do it\nb = 2\n")


def test_rendering_of_a_nested_block():
    source = generate.parse(Path("x.py"), "\n".join([
        "def f():",
        "    # >>> step 4: use pivot_root",
        "    pivot()",
        "    # --- before",
        "    # >>> step 3: use chroot",
        "    chroot()",
        "    # <<<",
        "    # <<<",
    ]))
    assert generate.render(source, "solutions", 2) == "def f():\n"
    assert generate.render(source, "solutions", 3) == "def f():\n    chroot()\n"
    assert generate.render(source, "solutions", 4) == "def f():\n    pivot()\n"
    assert generate.render(source, "steps", 3) == "def f():\n    # TODO(step 3): use chroot\n"
    assert generate.render(source, "steps", 4) == "def f():\n    # TODO(step 4): use pivot_root\n    chroot()\n"
