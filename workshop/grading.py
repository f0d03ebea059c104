"""Run the step suites against one implementation folder and collect results.

`workshop check N` = ``python -m pytest tests/step0 ... tests/stepN --impl DIR``
in a subprocess, with the :mod:`workshop.pytest_report` plugin writing the
results to a temporary JSON file.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import paths

PASS_OUTCOMES = ("passed", "xpassed")


@dataclass
class Result:
    step: int
    impl: Path
    argv: list[str]
    returncode: int = 0
    tests: list[dict] = field(default_factory=list)
    collect_errors: list[dict] = field(default_factory=list)
    output: str = ""
    error: str = ""            # set when grading itself could not run
    missing_suites: list[int] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def by_step(self) -> dict[int, dict]:
        """{step: {"passed": n, "total": n, "tests": [...], "failing": [...]}} in step order."""
        out: dict[int, dict] = {}
        for t in self.tests:
            s = t.get("step")
            s = self.step if s is None else s
            e = out.setdefault(s, {"passed": 0, "total": 0, "tests": [], "failing": []})
            e["total"] += 1
            e["tests"].append(t)
            if t["outcome"] in PASS_OUTCOMES:
                e["passed"] += 1
            else:
                e["failing"].append(t)
        for c in self.collect_errors:
            s = c.get("step")
            s = self.step if s is None else s
            e = out.setdefault(s, {"passed": 0, "total": 0, "tests": [], "failing": []})
            e["total"] += 1
            e["failing"].append({**c, "name": "(collection)", "title": "the suite could not be loaded",
                                 "outcome": "error", "command": "", "expected": "", "got": "",
                                 "hint": "", "read": "", "stdout": "", "stderr": ""})
        return dict(sorted(out.items()))

    @property
    def passed(self) -> int:
        return sum(1 for t in self.tests if t["outcome"] in PASS_OUTCOMES)

    @property
    def total(self) -> int:
        return len(self.tests) + len(self.collect_errors)

    @property
    def ok(self) -> bool:
        return (not self.error and self.returncode == 0 and self.total > 0
                and self.passed == self.total and not self.missing_suites)


def label(t: dict, impl: Path | None = None) -> str:
    """A check's name as shown: the function with its parameters, minus the
    implementation folder the conftest adds as a parameter to every test."""
    node = str(t.get("nodeid") or t.get("name") or "").rsplit("::", 1)[-1]
    if "[" not in node or not node.endswith("]"):
        return t.get("name") or node
    name, params = node[:-1].split("[", 1)
    if impl is not None:
        for ident in {paths.rel(impl), str(impl)}:
            for form in (f"{ident}-", f"-{ident}", ident):
                if form in params:
                    params = params.replace(form, "", 1)
                    break
    return f"{name}[{params}]" if params else name


def impl_for(step: int, solution: bool = False, impl: str | os.PathLike | None = None) -> Path:
    if impl:
        return Path(impl).expanduser().resolve()
    return paths.solution_dir(step) if solution else paths.steps_dir(step)


def pytest_env() -> dict[str, str]:
    env = dict(os.environ)
    pkg_parent = str(paths.PACKAGE_DIR.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if pkg_parent not in parts:
        parts.insert(0, pkg_parent)
    env["PYTHONPATH"] = os.pathsep.join(parts)
    env.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    return env


def build_argv(step: int, impl: Path, report: str, only_step: bool = False,
               extra: list[str] | None = None) -> tuple[list[str], list[int]]:
    root = paths.root()
    suites, missing = [], []
    for k in ([step] if only_step else range(step + 1)):
        if paths.tests_dir(k).is_dir():
            suites.append(f"tests/step{k}")
        else:
            missing.append(k)
    argv = [sys.executable, "-m", "pytest", *suites, "--impl", paths.rel(impl) if _inside(impl, root) else str(impl),
            "-p", "workshop.pytest_report", "--workshop-report", report,
            "-p", "no:cacheprovider", "--rootdir", str(root), "--continue-on-collection-errors", "-q", *(extra or [])]
    config = root / "pyproject.toml"
    if config.is_file():  # say which: an existing path among the arguments could win otherwise
        argv[argv.index("--rootdir"):argv.index("--rootdir")] = ["-c", str(config)]
    return argv, missing


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root)
        return True
    except ValueError:
        return False


def run(step: int, impl: Path, only_step: bool = False, extra: list[str] | None = None,
        stream=None) -> Result:
    """Grade IMPL against the suites of steps 0..STEP (or STEP only).

    stream: a file to copy pytest's output to as it comes (``--verbose``).
    """
    fd, report = tempfile.mkstemp(prefix="workshop-report-", suffix=".json")
    os.close(fd)
    try:
        argv, missing = build_argv(step, impl, report, only_step, extra)
        # What the learner sees: the command without the plugin plumbing.
        plumbing = {"-p", "workshop.pytest_report", "--workshop-report", report, "no:cacheprovider",
                    "--rootdir", str(paths.root()), "--continue-on-collection-errors"}
        shown = [a for a in argv if a not in plumbing]
        shown[0] = "python3"
        result = Result(step=step, impl=impl, argv=shown, missing_suites=missing)
        if not any(a.startswith("tests/") for a in argv):
            result.error = f"no test suite found for step {step} (looked for tests/step{step}/)"
            return result
        proc = subprocess.Popen(argv, cwd=paths.root(), env=pytest_env(), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, errors="replace")
        chunks = []
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                chunks.append(line)
                if stream is not None:
                    stream.write(line)
                    stream.flush()
            result.returncode = proc.wait()
        except KeyboardInterrupt:
            # Ctrl-C reached pytest too (same process group): let it clean up, then go
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
        result.output = "".join(chunks)
        try:
            with open(report, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = None
        if not data:
            result.error = (f"pytest stopped before running any check (exit status {result.returncode})")
            return result
        result.tests = data.get("tests", [])
        result.collect_errors = data.get("collect_errors", [])
        if result.returncode == 2 and "KeyboardInterrupt" in result.output:
            result.error = "the checks were interrupted (Ctrl-C)"
        elif result.returncode in (2, 3, 4) and not result.tests and not result.collect_errors:
            result.error = f"pytest could not run the checks (exit status {result.returncode})"
        elif result.returncode == 5 or (not result.tests and not result.collect_errors):
            result.error = "pytest found no checks to run"
        return result
    finally:
        try:
            os.unlink(report)
        except OSError:
            pass


def to_json(result: Result) -> dict:
    steps = {}
    for s, e in result.by_step().items():
        steps[str(s)] = {"passed": e["passed"], "total": e["total"],
                         "status": "passing" if e["total"] and e["passed"] == e["total"] else "failing"}
    return {
        "step": result.step,
        "impl": str(result.impl),
        "command": result.command,
        "ok": result.ok,
        "error": result.error or None,
        "pytest_exit_status": result.returncode,
        "passed": result.passed,
        "total": result.total,
        "missing_suites": result.missing_suites,
        "steps": steps,
        "checks": [_check_json(t, result.impl) for e in result.by_step().values() for t in e["tests"]]
                  + [_check_json({**c, "name": "(collection)", "outcome": "error"}, result.impl)
                     for c in result.collect_errors],
    }


def _hint(t: dict) -> str | None:
    from .checkview import _hint as hint

    return hint(t) or None


def _check_json(t: dict, impl: Path | None = None) -> dict:
    from . import meta
    step = t.get("step")
    name = t.get("name", "")
    ok = t.get("outcome") in PASS_OUTCOMES
    return {
        "step": step, "name": name, "label": label(t, impl), "nodeid": t.get("nodeid"),
        "title": t.get("title", ""),
        "outcome": t.get("outcome"), "ok": ok,
        "command": t.get("command") or None, "expected": t.get("expected") or None,
        "got": t.get("got") or None, "output": t.get("output") or None,
        "hint": None if ok else _hint(t),
        "read": None if ok else ([t["read"]] if t.get("read") else
                                 (meta.check_read(step, name) if step is not None else [])),
        "message": None if ok else (t.get("message") or None),
        "duration": round(float(t.get("duration") or 0.0), 3),
    }
