"""Run the step suites against one implementation folder and collect the results.

`workshop check N` = ``python -m pytest tests/step0 ... tests/stepN --impl DIR``
in a subprocess, with the :mod:`workshop.harness.report` plugin writing the
results to a JSON file. The session gets a folder of its own
(``/tmp/workshop-check-<token>-*``, its TMPDIR) and a token in its
environment: after the run, and above all after Ctrl-C, whatever it left
(processes, their cgroups, mounts, files) is removed.

Each check becomes one dict, the same one `workshop check --json` prints
under "checks" (see :func:`to_json`).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from . import meta, paths, scratch

PASS_OUTCOMES = ("passed", "xpassed")
#: seconds pytest gets to clean up after Ctrl-C before it is killed (a second Ctrl-C: at once)
STOP_GRACE = 30


@dataclass
class Result:
    step: int
    impl: Path
    argv: list[str]
    returncode: int = 0
    checks: list[dict] = field(default_factory=list)
    output: str = ""
    error: str = ""            # set when grading itself could not run
    missing_suites: list[int] = field(default_factory=list)
    offline: dict | None = None  # {"reason", "checks"}: the network checks left out
    deselected: int = 0          # checks -k left out
    keyword: str | None = None
    only_step: bool = False
    interrupted: bool = False
    swept: list[str] = field(default_factory=list)  # what the session left and was removed after it

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    def by_step(self) -> dict[int, dict]:
        """{step: {"passed": n, "total": n, "tests": [...], "failing": [...]}} in step order."""
        out: dict[int, dict] = {}
        for c in self.checks:
            s = self.step if c["step"] is None else c["step"]
            e = out.setdefault(s, {"passed": 0, "total": 0, "tests": [], "failing": []})
            e["total"] += 1
            e["tests"].append(c)
            if c["ok"]:
                e["passed"] += 1
            else:
                e["failing"].append(c)
        return dict(sorted(out.items()))

    def failing(self) -> list[dict]:
        return [c for c in self.checks if not c["ok"]]

    @property
    def passed(self) -> int:
        return sum(1 for c in self.checks if c["ok"])

    @property
    def total(self) -> int:
        return len(self.checks)

    @property
    def ok(self) -> bool:
        return (not self.error and self.returncode == 0 and self.total > 0
                and self.passed == self.total and not self.missing_suites)

    @property
    def full(self) -> bool:
        """Did it run every check of its steps (no -k, no error)? Then it is the learner's progress."""
        return not self.error and not self.keyword and self.total > 0


def label(c: dict, impl: Path | None = None) -> str:
    """A check's name as shown: the function with its parameters, minus the
    implementation folder the conftest adds as a parameter to every test."""
    node = str(c.get("nodeid") or c.get("name") or "").rsplit("::", 1)[-1]
    if "[" not in node or not node.endswith("]"):
        return c.get("name") or node
    name, params = node[:-1].split("[", 1)
    if impl is not None:
        for ident in {paths.rel(impl), str(impl)}:
            for form in (f"{ident}-", f"-{ident}", ident):
                if form in params:
                    params = params.replace(form, "", 1)
                    break
    return f"{name}[{params}]" if params else name


def output_text(run: dict | None) -> str | None:
    """A runtime's output as the failure showed it: exit code, stdout, stderr, one line each."""
    if not run:
        return None
    from .harness.failure import Output

    return "\n".join(Output(**run).lines())


def check_of(t: dict, impl: Path | None) -> dict:
    """One check of the report, as `workshop check` (and its --json) shows it."""
    failure = t.get("failure") or {}
    ok = t["outcome"] in PASS_OUTCOMES
    step, name = t.get("step"), t.get("name", "")
    kind = None if ok else failure.get("kind", "check")
    return {
        "step": step, "name": name, "label": label(t, impl), "nodeid": t.get("nodeid"),
        "title": t.get("title", ""), "outcome": t["outcome"], "ok": ok,
        "command": failure.get("command"), "expected": failure.get("expected"), "got": failure.get("got"),
        "output": output_text(failure.get("output")), "run": failure.get("output"),
        "problem": failure.get("problem"), "kind": kind,
        "hint": None if ok else meta.hint_for(step, name, kind),
        "read": None if ok else (meta.check_read(step, name) if step is not None else []),
        "message": None if ok else (t.get("message") or None),
        "longrepr": None if ok else (t.get("longrepr") or None),
        "duration": round(float(t.get("duration") or 0.0), 3),
        "simulated": t.get("simulated"),
        "diagnosis": None,
    }


def collection_error(c: dict) -> dict:
    """A test file that could not be loaded, as a failing check named "(collection)"."""
    return {
        "step": c.get("step"), "name": "(collection)", "label": "(collection)", "nodeid": c.get("nodeid"),
        "title": "the suite could not be loaded", "outcome": "error", "ok": False,
        "command": None, "expected": None, "got": None, "output": None, "run": None, "problem": None,
        "kind": "collection", "hint": None, "read": [], "message": c.get("message") or None,
        "longrepr": c.get("longrepr") or None, "duration": 0.0, "simulated": None, "diagnosis": None,
    }


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


def suites(step: int, only_step: bool = False) -> tuple[list[int], list[int]]:
    """(the steps whose suites grade STEP, those of them without a tests/stepN folder)."""
    wanted = [step] if only_step else [k for k in meta.numbers() if k <= step]
    return ([k for k in wanted if paths.tests_dir(k).is_dir()],
            [k for k in wanted if not paths.tests_dir(k).is_dir()])


def visible_args(step: int, impl: Path, only_step: bool = False,
                 extra: list[str] | None = None) -> tuple[list[str], list[int]]:
    """(pytest's arguments as a learner would type them, the steps without a suite)."""
    found, missing = suites(step, only_step)
    where = paths.rel(impl) if _inside(impl, paths.root()) else str(impl)
    return ["-m", "pytest", *(f"tests/step{k}" for k in found), "--impl", where, *(extra or [])], missing


def build_argv(step: int, impl: Path, report: str, only_step: bool = False, extra: list[str] | None = None,
               network: str = "on") -> tuple[list[str], list[int]]:
    """(pytest's whole command line, the steps without a suite)."""
    visible, missing = visible_args(step, impl, only_step, extra)
    return [sys.executable, *visible, *plumbing(report, network)], missing


def plumbing(report: str, network: str) -> list[str]:
    """The arguments of `workshop check`'s pytest that a learner need not see (nor type)."""
    root = paths.root()
    args = ["-p", "workshop.harness.report", "--workshop-report", report, "--workshop-network", network,
            "-p", "no:cacheprovider", "--rootdir", str(root), "--continue-on-collection-errors", "-q"]
    config = root / "pyproject.toml"
    if config.is_file():  # say which: an existing path among the arguments could win otherwise
        args[:0] = ["-c", str(config)]
    return args


def _inside(path: Path, root: Path) -> bool:
    try:
        Path(path).resolve().relative_to(root)
        return True
    except ValueError:
        return False


def run(step: int, impl: Path, only_step: bool = False, keyword: str | None = None, offline: bool = False,
        stream=None, progress=None) -> Result:
    """Grade IMPL against the suites of steps 0..STEP (or STEP only).

    keyword: pytest's -k. offline: leave the `network` checks out (by default they are left
    out only when Docker Hub does not answer). stream: a file to copy pytest's output to as it
    comes (``--verbose``). progress: called with (number, total, name) as each check starts.
    """
    from .harness.leaks import CHECK_SESSION_ENV, sweep, udocker_cgroups

    token = secrets.token_hex(5)
    cgroups_before = udocker_cgroups()
    folder = Path(tempfile.mkdtemp(prefix=f"workshop-check-{token}-"))
    os.chmod(folder, 0o755)
    held = scratch.hold(folder)  # `workshop clean` removes it if we are killed outright
    report = str(folder / "report.json")
    extra = ["-k", keyword] if keyword else []
    argv, missing = build_argv(step, impl, report, only_step, extra, "off" if offline else "auto")
    result = Result(step=step, impl=impl, argv=["python3", *visible_args(step, impl, only_step, extra)[0]],
                    missing_suites=missing, keyword=keyword, only_step=only_step)
    try:
        if not any(a.startswith("tests/") for a in argv):
            result.error = f"no test suite found for step {step} (looked for tests/step{step}/)"
            return result
        env = {**pytest_env(), CHECK_SESSION_ENV: token, "TMPDIR": str(folder)}
        watcher = _watch_progress(report + ".progress", progress) if progress else None
        try:
            result.returncode, result.output, result.interrupted = _pytest(argv, env, stream)
        finally:
            if watcher:
                watcher.set()
        _read_report(result, report)
        return result
    finally:
        result.swept = [line for line in sweep(token, folder, cgroups_before) if line != f"directory {folder}"]
        os.close(held)


def _watch_progress(path: str, progress) -> threading.Event:
    """Call progress(number, total, name) whenever the report plugin names a new check; set the
    returned event to stop."""
    done = threading.Event()

    def watch():
        seen = None
        while not done.wait(0.2):
            try:
                with open(path, encoding="utf-8") as f:
                    line = f.read().strip()
            except OSError:
                continue
            if line and line != seen:
                seen = line
                number, total, name = line.split(" ", 2)
                progress(int(number), int(total), name)

    threading.Thread(target=watch, daemon=True).start()
    return done


def _pytest(argv: list[str], env: dict, stream) -> tuple[int, str, bool]:
    """Run pytest; (exit status, its output, whether Ctrl-C stopped it). On Ctrl-C pytest (in the
    same process group) stops and cleans up; a second Ctrl-C, or STOP_GRACE seconds, kills it."""
    proc = subprocess.Popen(argv, cwd=paths.root(), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    chunks = []
    assert proc.stdout is not None
    # SIGTERM (`timeout`, a closed session) stops the checks as Ctrl-C does; pytest, which
    # does not get it, is then sent the SIGINT a terminal would have sent its process group
    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm) if threading.current_thread() is threading.main_thread() \
        else None
    try:
        for line in proc.stdout:
            chunks.append(line)
            if stream is not None:
                stream.write(line)
                stream.flush()
        return proc.wait(), "".join(chunks), False
    except KeyboardInterrupt:
        print("\nworkshop check: stopping the checks and cleaning up (Ctrl-C again to stop at once)",
              file=sys.stderr, flush=True)
        if terminated:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=STOP_GRACE)
        except (KeyboardInterrupt, subprocess.TimeoutExpired):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        return proc.returncode, "".join(chunks), True
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _read_report(result: Result, report: str) -> None:
    try:
        with open(report, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        data = None
    if result.interrupted:
        result.error = "the checks were interrupted (Ctrl-C)"
    if not data:
        result.error = result.error or f"pytest stopped before running any check (exit status {result.returncode})"
        return
    result.checks = ([check_of(t, result.impl) for t in data.get("tests", [])]
                     + [collection_error(c) for c in data.get("collect_errors", [])])
    result.offline = data.get("offline")
    result.deselected = data.get("deselected", 0)
    if result.error:
        return
    if result.returncode == 2 and "KeyboardInterrupt" in result.output:
        result.error = "the checks were interrupted (Ctrl-C)"
    elif result.returncode in (2, 3, 4) and not result.checks:
        result.error = f"pytest could not run the checks (exit status {result.returncode})"
    elif not result.checks and not (result.keyword and result.deselected):
        result.error = "pytest found no checks to run"
    if not result.error:
        from .diagnosis import diagnose

        diagnose(result.checks)


def to_json(result: Result) -> dict:
    """`workshop check --json`.

    {"step", "impl", "command", "ok", "error", "pytest_exit_status", "passed", "total",
     "missing_suites", "steps": {"N": {"passed", "total", "status"}},
     "checks": [{"step", "name", "label", "nodeid", "title", "outcome", "ok", "command",
                 "expected", "got", "output", "hint", "read", "message", "duration",
                 "run", "problem", "kind", "simulated", "diagnosis"}],
     "diagnoses": [{"name", "step", "symptom", "fix", "checks": [label, ...]}],
     "offline": null | {"reason", "checks": [nodeid, ...]}}

    The keys of the first releases keep their meaning ("output": the runtime's exit
    code, stdout and stderr as text). New: a check's "run" (the same output as an object:
    exit_code, stdout, stderr, timed_out, stdout_more, stderr_more), "problem" (a failure
    said in words), "kind" (check, left-behind, hung, collection), "simulated" (the reason,
    for a check graded against a simulation), "diagnosis" (the name of the diagnosis that
    explains it); "diagnoses" (shown first) and "offline" (the network checks left out).
    """
    from .diagnosis import found

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
        "checks": [{k: v for k, v in c.items() if k != "longrepr"} for c in result.checks],
        "diagnoses": [{"name": d.name, "step": d.step, "symptom": d.symptom, "fix": d.fix,
                       "checks": [c["label"] for c in checks]} for d, checks in found(result.checks)],
        "offline": result.offline,
    }
