"""`workshop check` collects the suites of steps 0..N together, with the project's pytest settings."""
import subprocess

from workshop import grading, meta, paths


def test_every_suite_collects_together_with_an_existing_report_file(tmp_path):
    """A report path that already exists must not make pytest look for its settings in /tmp
    (without pyproject.toml's --import-mode=importlib, tests/step0 and tests/step7 clash)."""
    report = tmp_path / "report.json"
    report.write_text("")
    last = meta.numbers()[-1]
    argv, missing = grading.build_argv(last, paths.solution_dir(last), str(report))
    result = subprocess.run([*argv, "--collect-only"], cwd=paths.root(), capture_output=True, text=True, timeout=120)
    assert missing == []
    summary = result.stdout.strip().splitlines()[-1]
    assert result.returncode == 0 and "error" not in summary, result.stdout[-2000:] + result.stderr
