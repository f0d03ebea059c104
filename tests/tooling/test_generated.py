"""The step folders are generated from reference/ and must stay in step with it."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from workshop import generate

REPO = Path(__file__).resolve().parents[2]
SOURCES = generate.load_sources(REPO / "reference")
STEPS = sorted({step for _, step in generate.targets(SOURCES)})


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
    for step in STEPS:
        for relative, path in python_files(REPO / kind / f"step{step}").items():
            text = path.read_text()
            for marker in ("# >>>", "# <<<", "# --- before", "# udocker: from step"):
                assert marker not in text, f"{kind}/step{step}/{relative} still holds {marker!r}"


@pytest.mark.parametrize("step", STEPS[1:])
def test_starting_code_is_previous_solution_plus_todos(step):
    """steps/stepN is solutions/step(N-1) plus step N's given blocks: only comments (the TODOs) differ.

    So steps/stepN runs the same program as solutions/step(N-1), plus the given
    code of step N, which the matrix checks by running suite N-1 on steps/stepN.
    """
    start = python_files(REPO / "steps" / f"step{step}")
    previous = python_files(REPO / "solutions" / f"step{step - 1}")
    new_files = {s.path for s in SOURCES if s.first_step == step}
    assert set(start) - set(previous) == new_files
    for source in SOURCES:
        baseline = generate.render(source, "baseline", step)
        if baseline is None:
            continue
        left = ast.dump(ast.parse(start[source.path].read_text()))
        assert left == ast.dump(ast.parse(baseline)), (
            f"steps/step{step}/{source.path} differs from solutions/step{step - 1} "
            f"(plus step {step}'s given blocks) beyond comments")


@pytest.mark.parametrize("step", STEPS[1:])
def test_given_code_is_all_that_separates_a_start_from_the_previous_solution(step):
    """Without the given blocks, steps/stepN is exactly solutions/step(N-1), comments aside."""
    given = {s.path for s in SOURCES if _has_given(s.items, step)}
    for relative, path in python_files(REPO / "solutions" / f"step{step - 1}").items():
        if relative in given:
            continue
        left = ast.dump(ast.parse((REPO / "steps" / f"step{step}" / relative).read_text()))
        assert left == ast.dump(ast.parse(path.read_text())), (
            f"steps/step{step}/{relative} differs from solutions/step{step - 1} beyond comments")


def _has_given(items, step):
    return any(isinstance(i, generate.Block) and ((i.given and i.step == step)
               or _has_given(i.code, step) or _has_given(i.before, step)) for i in items)


@pytest.mark.parametrize("step", STEPS)
def test_every_step_has_a_todo(step):
    todos = [
        path for path in python_files(REPO / "steps" / f"step{step}").values()
        if f"TODO(step {step})" in path.read_text()
    ]
    assert todos, f"steps/step{step} has no TODO(step {step}): nothing for the learner to do"


@pytest.mark.parametrize("kind", generate.KINDS)
def test_generated_code_compiles(kind):
    for step in STEPS:
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


def test_a_given_block_is_code_in_the_starting_code_of_its_step():
    source = generate.parse(Path("x.py"), "\n".join([
        "# >>> step 4 given",
        "from udocker import devices",
        "# <<<",
        "# >>> step 4: mount /dev",
        "# ... with the devices module",
        "devices.mount_dev()",
        "# <<<",
    ]))
    assert generate.render(source, "solutions", 3) == "\n"
    assert generate.render(source, "steps", 4) == (
        "from udocker import devices\n# TODO(step 4): mount /dev with the devices module\n")
    assert generate.render(source, "baseline", 4) == "from udocker import devices\n"
    assert generate.render(source, "steps", 5) == "from udocker import devices\ndevices.mount_dev()\n"


def test_a_given_block_takes_no_todo_text():
    with pytest.raises(generate.MarkerError, match=r"x.py:1: a given block has no TODO text"):
        generate.parse(Path("x.py"), "# >>> step 3 given: do it\nb = 2\n# <<<\n")


def test_a_step_the_metadata_lacks_is_an_error():
    source = generate.parse(Path("x.py"), "# >>> step 99: do it\nb = 2\n# <<<\n")
    with pytest.raises(generate.MarkerError, match="step 99, which workshop/steps.toml lacks"):
        generate.targets([source])


def test_marker_lines_are_short():
    """A long task goes on `# ...` lines: marker lines stay readable in the reference."""
    long = [f"{path.relative_to(REPO)}:{number}"
            for path in sorted((REPO / "reference").rglob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), start=1)
            if ("# >>>" in line or "# ..." in line) and len(line) > 100]
    assert not long, f"marker lines over 100 characters: {long}"


@pytest.mark.parametrize("path", sorted((REPO / "reference").rglob("*.py")), ids=lambda p: str(p.relative_to(REPO)))
def test_the_reference_is_real_python(path):
    """Every reference file parses as it is, markers and all."""
    ast.parse(path.read_text(), str(path))


def test_the_reference_and_the_generated_code_pass_the_linter():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    assert Path(ruff).exists(), "ruff is not installed: run `sudo ./setup.sh --with-vm-lane` (or pip install ruff)"
    result = subprocess.run([ruff, "check", "--no-cache", "reference", "solutions"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
