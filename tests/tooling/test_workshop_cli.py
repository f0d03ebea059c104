"""Tests of the `workshop` command (workshop/cli.py, workshop/commands.py and helpers).

Most run the real command in a subprocess against a miniature repository
(WORKSHOP_HOME): the suites of two steps, with this repository's conftest.py,
steps.toml and pytest settings, a runtime that is a few lines of Python, a
learner's folder that is broken on purpose. A few run against this repository
(`workshop demo`, pristine copies).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tooling.miniature import REPO, miniature
from workshop import meta, testing

STEPS = meta.numbers()  # the mini repository has this repository's steps.toml

# --------------------------------------------------------------------------- a miniature repository

GOOD = '''\
import os, sys
args = sys.argv[1:]
if args[:1] == ["--help"]:
    print("usage: udocker run IMAGE COMMAND [ARG...]")
    sys.exit(0)
if args[:1] == ["run"] and len(args) >= 3:
    sys.stdout.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(args[2], args[2:])
        except FileNotFoundError:
            print(f"udocker: {args[2]}: command not found", file=sys.stderr)
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    sys.exit(128 - code if code < 0 else code)
print("udocker: usage: udocker run IMAGE COMMAND [ARG...]", file=sys.stderr)
sys.exit(125)
'''

STARTING = '''\
import sys
args = sys.argv[1:]
if args[:1] == ["--help"]:
    print("usage: udocker run IMAGE COMMAND [ARG...]")
    sys.exit(0)
# TODO(step 1): fork, exec the command, wait for it and exit with its status.
sys.exit(0)
'''

STEP0_TESTS = '''\
def test_help_exits_0_and_mentions_run(udocker):
    """udocker --help works"""
    result = udocker.run("--help").expect_exit(0)
    result.check("run" in result.stdout, "the help to name `run`", repr(result.stdout))
'''

STEP1_TESTS = '''\
def test_stdout_and_stderr_are_the_commands(udocker):
    """the command's output is the container's"""
    udocker.run("run", "img", "echo", "hi").expect_stdout("hi\\n")

def test_exit_status_is_the_commands(udocker):
    """the exit status is the command's"""
    udocker.run("run", "img", "sh", "-c", "exit 3").expect_exit(3)
'''

GUIDE = '''\
# The guide

Intro.

## Step 0: The command line

Get ready.

## Step 1: Run a command

Fork and exec: SECTION-ONE-TEXT.

```sh
## not a heading: still step 1
```

## Step 2: A hostname of its own

SECTION-TWO-TEXT.
'''


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
                        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"})


@pytest.fixture
def mini(tmp_path, monkeypatch) -> Path:
    """A miniature workshop repository (a git checkout) in WORKSHOP_HOME."""
    repo = miniature(tmp_path / "repo", "workshop/steps.toml")
    files = {
        "tests/step0/test_cli.py": STEP0_TESTS,
        "tests/step1/test_run.py": STEP1_TESTS,
        "solutions/step0/udocker/__main__.py": STARTING.replace("# TODO(step 1): fork, exec the command, "
                                                                "wait for it and exit with its status.\n", ""),
        "solutions/step1/udocker/__main__.py": GOOD,
        "steps/step0/udocker/__main__.py": STARTING.replace("step 1", "step 0"),
        "steps/step1/udocker/__main__.py": STARTING,
        "workshop.md": GUIDE,
    }
    for rel, text in files.items():
        path = repo / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    for kind in ("solutions", "steps"):
        for n in (0, 1):
            (repo / kind / f"step{n}" / "udocker" / "__init__.py").write_text("")
    (repo / ".gitignore").write_text("/.workshop/\n__pycache__/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "the workshop")
    monkeypatch.setenv("WORKSHOP_HOME", str(repo))
    return repo


def workshop(*args: str, input: str | None = None, timeout: float = 120, env: dict | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the real command: python3 -m workshop ARGS (not on a terminal: no colour)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), full_env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    full_env.pop("FORCE_COLOR", None)
    full_env["COLUMNS"] = "200"
    return subprocess.run([sys.executable, "-m", "workshop", *args], capture_output=True, text=True,
                          input=input, timeout=timeout, env=full_env, cwd=cwd or REPO)


def state_of(repo: Path) -> dict:
    return json.loads((repo / ".workshop" / "state.json").read_text())


def record(repo: Path, step: int, passed: int, total: int, failing=()) -> None:
    path = repo / ".workshop" / "state.json"
    data = json.loads(path.read_text()) if path.exists() else {"version": 1, "steps": {}, "hints": {}}
    data["steps"][str(step)] = {"status": "passing" if passed == total else "failing", "passed": passed,
                                "total": total, "failing": list(failing), "checked_at": "2024-01-01T00:00:00Z"}
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data))


# --------------------------------------------------------------------------- check


def test_check_broken_step_shows_command_expected_got_hint_and_fails(mini):
    r = workshop("check", "1")
    out = r.stdout
    assert r.returncode == 1, out + r.stderr
    assert "python3 -m pytest tests/step0 tests/step1 --impl steps/step1" in out
    # the new step's checks first, then the earlier steps
    assert out.index("Step 1: Run a command") < out.index("Step 0: The command line")
    assert "✗  test_stdout_and_stderr_are_the_commands" in out
    assert "✗ step 1 · test_exit_status_is_the_commands" in out
    assert f"ran:      PYTHONPATH={mini / 'steps' / 'step1'} python3 -m udocker run img sh -c 'exit 3'" in out
    assert re.search(r"expected: exit code 3\n\s+got:\s+0\n", out), out
    assert "stdout: ''" in out  # the runtime's output, from the test's message
    assert meta.check_hint(1, "test_exit_status_is_the_commands") in " ".join(out.split())
    assert "read:     man 2 fork" in out
    assert "step 1: 0 of 2 checks pass; step 0 still passes" in out
    assert "workshop hint 1" in out
    st = state_of(mini)["steps"]["1"]
    assert st["status"] == "failing" and (st["passed"], st["total"]) == (1, 3)
    assert st["failing"] == ["test_exit_status_is_the_commands", "test_stdout_and_stderr_are_the_commands"]


def test_check_a_learners_syntax_error(mini):
    (mini / "steps" / "step1" / "udocker" / "__main__.py").write_text("def broken(:\n")
    r = workshop("check", "1")
    assert r.returncode == 1
    assert "SyntaxError" in r.stdout
    # the step-0 check breaks too: shown as a regression under step 0
    assert "step 1: 0 of 2 checks pass; step 0: 1 of 1 checks now fail" in r.stdout
    assert "✗  Step 0: The command line" in r.stdout
    assert "broke something an earlier step built" not in r.stdout  # step 1 fails too: fix it first


def test_check_solution_passes_and_does_not_touch_the_learners_state(mini):
    r = workshop("check", "1", "--solution")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "--impl solutions/step1" in r.stdout
    assert "step 1: all 2 checks pass; step 0 still passes" in r.stdout
    assert "Step 1 done" in r.stdout
    assert not (mini / ".workshop" / "state.json").exists()


def test_check_fixed_step_records_passing_and_progress_moves_on(mini):
    shutil.copy(mini / "solutions" / "step1" / "udocker" / "__main__.py",
                mini / "steps" / "step1" / "udocker" / "__main__.py")
    assert workshop("check", "1").returncode == 0
    record(mini, 0, 1, 1)
    assert state_of(mini)["steps"]["1"]["status"] == "passing"
    r = workshop()
    assert f"2 of {len(STEPS)} steps pass" in r.stdout
    assert re.search(r"1  Run a command\s+✓ passing\s+3/3", r.stdout), r.stdout
    assert "Next: step 2, A hostname of its own" in r.stdout


def test_check_json(mini):
    r = workshop("check", "1", "--json")
    assert r.returncode == 1
    data = json.loads(r.stdout)
    assert data["ok"] is False and data["step"] == 1 and (data["passed"], data["total"]) == (1, 3)
    assert data["steps"] == {"0": {"passed": 1, "total": 1, "status": "passing"},
                             "1": {"passed": 0, "total": 2, "status": "failing"}}
    failing = {c["name"]: c for c in data["checks"] if not c["ok"]}
    c = failing["test_exit_status_is_the_commands"]
    assert c["step"] == 1 and c["outcome"] == "failed" and c["title"] == "the exit status is the command's"
    assert (c["expected"], c["got"]) == ("exit code 3", "0")
    assert c["command"].endswith("python3 -m udocker run img sh -c 'exit 3'")
    assert c["hint"] == meta.check_hint(1, "test_exit_status_is_the_commands")
    assert "man 2 fork" in c["read"]
    assert [c["name"] for c in data["checks"] if c["ok"]] == ["test_help_exits_0_and_mentions_run"]


def test_check_defaults_to_the_first_step_not_passing(mini):
    assert json.loads(workshop("check", "--json").stdout)["step"] == 0
    record(mini, 0, 1, 1)
    assert json.loads(workshop("check", "--json").stdout)["step"] == 1


def test_check_only_and_keyword(mini):
    r = workshop("check", "1", "--only", "--json")
    data = json.loads(r.stdout)
    assert list(data["steps"]) == ["1"] and "tests/step0" not in data["command"]
    r = workshop("check", "1", "-k", "exit_status", "--json")
    assert [c["name"] for c in json.loads(r.stdout)["checks"]] == ["test_exit_status_is_the_commands"]


def test_check_with_a_keyword_that_matches_nothing_says_so(mini):
    r = workshop("check", "1", "-k", "no_such_check")
    assert r.returncode == 2, r.stdout
    assert "no check of steps 0–1 matches -k 'no_such_check' (3 checks left out)" in " ".join(r.stdout.split())
    assert "set-up" not in r.stdout and "not with your code" not in r.stdout
    assert not (mini / ".workshop" / "state.json").exists()


def test_progress_and_hints_follow_the_last_full_check_only(mini):
    workshop("check", "1")
    assert state_of(mini)["steps"]["1"]["status"] == "failing"
    shutil.copy(mini / "solutions" / "step1" / "udocker" / "__main__.py",
                mini / "steps" / "step1" / "udocker" / "__main__.py")
    workshop("check", "1", "-k", "exit_status")  # passes, but checks only some: no verdict
    workshop("check", "1", "--only")
    assert state_of(mini)["steps"]["1"]["status"] == "failing"
    assert "test_exit_status_is_the_commands:" in workshop("hint", "1").stdout
    workshop("check", "1")
    steps = state_of(mini)["steps"]
    assert steps["1"]["status"] == "passing" and steps["1"]["failing"] == []
    # step 1's check ran step 0's checks: a learner who started at step 1 is not sent back to step 0
    assert steps["0"]["status"] == "passing" and steps["0"]["through"] == 1
    out = workshop().stdout
    assert "Next: step 2" in out and re.search(r"0  The command line\s+✓ passing \(with step 1\)", out), out
    assert "failed last time" not in workshop("hint", "1").stdout


def test_check_names_are_never_broken_across_lines(mini):
    r = workshop("check", "1", env={"COLUMNS": "60"})
    lines = r.stdout.splitlines()
    for name in ("test_stdout_and_stderr_are_the_commands", "test_exit_status_is_the_commands"):
        assert any(name in line for line in lines), f"{name} is broken across lines:\n{r.stdout}"


NETWORK_TEST = """
import pytest

@pytest.mark.network
def test_pull_from_docker_hub(udocker):
    udocker.run("pull", "busybox").expect_exit(0)
"""


def test_check_leaves_the_network_checks_out_when_docker_hub_does_not_answer(mini):
    (mini / "tests" / "step1" / "test_hub.py").write_text(NETWORK_TEST)
    shutil.copy(mini / "solutions" / "step1" / "udocker" / "__main__.py",
                mini / "steps" / "step1" / "udocker" / "__main__.py")
    r = workshop("check", "1", env={"WORKSHOP_DOCKER_HUB_PROBE": "127.0.0.1:9"})
    assert r.returncode == 0, r.stdout
    out = " ".join(r.stdout.split())
    assert ("1 check that needs Docker Hub was not run (127.0.0.1:9 cannot be reached from this machine "
            "([Errno 111] Connection refused)); where Docker Hub answers, `workshop check 1` runs it too.") in out
    assert "-m 'not network'" not in out and "step 1: all 2 checks pass" in out
    assert state_of(mini)["steps"]["1"]["status"] == "passing"
    data = json.loads(workshop("check", "1", "--offline", "--json").stdout)
    assert data["ok"] and data["offline"]["reason"] == "--offline was given"
    assert data["offline"]["checks"] == ["tests/step1/test_hub.py::test_pull_from_docker_hub[steps/step1]"]


SIMULATED_TEST = """
import pytest

@pytest.mark.simulated("cgroup v2: this machine has v1 or hybrid cgroups; the workshop VM runs it for real")
def test_v2_driver_writes_the_limits(udocker):
    udocker.run("run", "img", "true").expect_exit(0)
"""


def test_check_says_which_checks_ran_against_a_simulation(mini):
    (mini / "tests" / "step1" / "test_simulated.py").write_text(SIMULATED_TEST)
    r = workshop("check", "1", "--solution")
    out = " ".join(r.stdout.split())
    assert "test_v2_driver_writes_the_limits (simulated)" in out
    assert ("1 check (marked simulated) ran against a simulation, not the real kernel: cgroup v2: this machine "
            "has v1 or hybrid cgroups; the workshop VM runs it for real") in out
    assert "The other 3 ran against the real kernel of this machine." in out
    checks = json.loads(workshop("check", "1", "--solution", "--json").stdout)["checks"]
    assert [c["name"] for c in checks if c["simulated"]] == ["test_v2_driver_writes_the_limits"]


BUSY = """\
import sys
print("udocker: cannot set up the container: [Errno 16] Device or resource busy: '.'", file=sys.stderr)
sys.exit(125)
"""


def test_check_shows_one_diagnosis_when_most_checks_fail_the_same_way(mini):
    (mini / "steps" / "step1" / "udocker" / "__main__.py").write_text(BUSY)
    r = workshop("check", "1")
    out = r.stdout
    assert r.returncode == 1
    head = out.index("3 of 3 failing checks fail the same way: the container did not start: pivot_root(2) "
                     "failed with EBUSY")
    assert "bind-mount the rootfs onto itself" in out and "step 4's \"When it goes wrong\" (workshop show 4)" in out
    # every explained check in one line, without its own hint
    assert head < out.index("✗ step 1 · test_exit_status_is_the_commands: expected exit code 3, got 125")
    assert meta.check_hint(1, "test_exit_status_is_the_commands") not in " ".join(out.split())
    data = json.loads(workshop("check", "1", "--json").stdout)
    assert [d["name"] for d in data["diagnoses"]] == ["pivot-root-busy"]
    assert {c["diagnosis"] for c in data["checks"] if not c["ok"]} == {"pivot-root-busy"}


def test_check_usage_errors(mini):
    r = workshop("check", "7")
    assert r.returncode == 2 and "steps/step7 does not exist" in r.stdout
    r = workshop("check", "42")
    assert r.returncode == 2 and "there is no step 42" in r.stdout
    r = workshop("check", "banana")
    assert r.returncode == 2 and "not a step" in r.stderr
    r = workshop("check", "1", "--solution", "--impl", str(mini))
    assert r.returncode == 2


def test_check_when_the_suites_cannot_run(mini):
    (mini / "conftest.py").write_text("import no_such_module_here\n")
    r = workshop("check", "1")
    assert r.returncode == 2, r.stdout
    assert "not with your code" in r.stdout and "no_such_module_here" in r.stdout


def test_check_a_suite_that_cannot_be_collected(mini):
    (mini / "tests" / "step1" / "test_broken.py").write_text("def test_x(:\n")
    r = workshop("check", "1", "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 1 and not data["ok"]
    broken = [c for c in data["checks"] if c["name"] == "(collection)"]
    assert broken and broken[0]["step"] == 1 and "SyntaxError" in broken[0]["message"]


def test_check_impl_elsewhere(mini, tmp_path):
    elsewhere = tmp_path / "mine"
    shutil.copytree(mini / "solutions" / "step1", elsewhere)
    r = workshop("check", "1", "--impl", str(elsewhere))
    assert r.returncode == 0 and f"--impl {elsewhere}" in r.stdout
    assert not (mini / ".workshop" / "state.json").exists()


def test_check_watch_reruns_when_a_file_changes(mini):
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.Popen([sys.executable, "-m", "workshop", "check", "1", "--watch", "--interval", "0.1",
                             "--max-runs", "2"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, cwd=REPO)
    try:
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if line.startswith("watching steps/step1/"):
                break
        assert any("step 1: 0 of 2 checks" in x for x in seen), "".join(seen)
        time.sleep(0.3)
        shutil.copy(mini / "solutions" / "step1" / "udocker" / "__main__.py",
                    mini / "steps" / "step1" / "udocker" / "__main__.py")
        rest = proc.stdout.read()
        assert proc.wait(timeout=60) == 0, rest
        assert "step 1: all 2 checks pass" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------- progress


def test_progress_is_the_default_and_needs_neither_click_nor_rich(mini):
    code = ("import sys; from workshop import cli\n"
            "try:\n    cli.main([])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('click', 'rich') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert "LOADED []" in r.stdout, r.stdout + r.stderr
    assert f"0 of {len(STEPS)} steps pass" in r.stdout
    assert workshop("progress").stdout == workshop().stdout


def test_progress_states_and_next(mini):
    record(mini, 0, 5, 5)
    record(mini, 1, 1, 3, ["test_exit_status_is_the_commands"])
    out = workshop().stdout
    assert f"1 of {len(STEPS)} steps pass" in out and f"{100 // len(STEPS)}%" in out
    assert re.search(r"0  The command line\s+✓ passing\s+5/5\s+2024-01-01 00:00", out), out
    assert re.search(r"1  Run a command\s+✗ failing\s+1/3", out), out
    assert re.search(r"2  A hostname of its own \(no steps/step2 folder\)\s+· not started", out), out
    assert "Next: step 1, Run a command" in out
    assert "Last check: 1 of 3 checks pass." in out and "workshop check 1" in out and "workshop hint 1" in out
    assert "\033[" not in out  # no colour when not on a terminal


def test_progress_when_everything_passes(mini):
    for s in STEPS:
        record(mini, s, 1, 1)
    out = workshop().stdout
    assert f"{len(STEPS)} of {len(STEPS)} steps pass" in out and "100%" in out
    assert "you have built a container runtime" in out


def test_state_file_is_tolerant(mini):
    (mini / ".workshop").mkdir()
    (mini / ".workshop" / "state.json").write_text("{ not json")
    r = workshop()
    assert r.returncode == 0 and f"0 of {len(STEPS)} steps pass" in r.stdout


# --------------------------------------------------------------------------- show, hint


def test_show_prints_the_steps_section(mini):
    r = workshop("show", "1")
    assert r.returncode == 0
    assert "Step 1: Run a command" in r.stdout and "SECTION-ONE-TEXT" in r.stdout
    assert "not a heading: still step 1" in r.stdout  # a fenced ## line does not end the section
    assert "SECTION-TWO-TEXT" not in r.stdout and "Get ready" not in r.stdout
    raw = workshop("show", "step1", "--raw").stdout
    assert raw.startswith("## Step 1: Run a command\n") and "workshop check 1" in raw


def test_show_without_a_section_degrades_to_steps_toml(mini):
    r = workshop("show", "4")
    assert r.returncode == 0
    assert "The guide has no section for step 4" in r.stdout
    assert meta.step(4)["goal"][:40] in r.stdout and "man 7 pid_namespaces" in r.stdout
    (mini / "workshop.md").unlink()
    r = workshop("show", "1")
    assert "there is no workshop.md yet" in r.stdout


def test_hint_gives_one_tier_more_each_time(mini):
    hints = meta.step(1)["hints"]
    assert len(hints) == 3
    first = workshop("hint", "1").stdout
    assert "Hint 1 of 3:" in first and "Hint 2 of 3" not in first and "hint 2 of 3" in first
    second = workshop("hint", "1").stdout
    assert "Hint 1 of 3:" in second and "Hint 2 of 3:" in second and "Hint 3 of 3" not in second
    third = workshop("hint", "1").stdout
    assert "Hint 3 of 3:" in third and "That was the last hint" in third
    assert "Hint 3 of 3:" in workshop("hint", "1").stdout  # stays at the last tier
    assert state_of(mini)["hints"]["1"] == 3
    again = workshop("hint", "1", "--reset").stdout
    assert "Hint 2 of 3" not in again and state_of(mini)["hints"]["1"] == 1
    assert "Hint 3 of 3:" in workshop("hint", "1", "--all").stdout


def test_hint_names_the_checks_that_failed_last_time(mini):
    record(mini, 1, 1, 3, ["test_exit_status_is_the_commands"])
    out = workshop("hint", "1").stdout
    assert "For the checks that failed last time:" in out
    assert "test_exit_status_is_the_commands:" in out


def test_hint_text_is_not_taken_for_markup(mini):
    # hints hold code like `[cmd, *args]`: printed as they are, not as rich markup
    out = " ".join(workshop("hint", "1", "--all").stdout.split())
    assert "os.execvp(argv[0], argv)" in out


# --------------------------------------------------------------------------- diff, solution


def test_diff_between_solutions(mini):
    r = workshop("diff", "1")
    assert r.returncode == 0
    assert "--- a/solutions/step0/udocker/__main__.py" in r.stdout
    assert "+++ b/solutions/step1/udocker/__main__.py" in r.stdout
    assert "+    pid = os.fork()" in r.stdout
    stat = workshop("diff", "1", "--stat").stdout
    assert "udocker/__main__.py" in stat and "1 file changed" in stat
    whole = workshop("diff", "0").stdout
    assert "--- /dev/null" in whole and "+++ b/solutions/step0/udocker/__main__.py" in whole


def test_diff_mine_shows_the_learners_changes(mini):
    assert "no changes" in workshop("diff", "1", "--mine").stdout
    main = mini / "steps" / "step1" / "udocker" / "__main__.py"
    main.write_text(main.read_text().replace("sys.exit(0)\n", "sys.exit(MY_CHANGE)\n"))
    out = workshop("diff", "1", "--mine").stdout
    assert "+sys.exit(MY_CHANGE)" in out and "-sys.exit(0)" in out


def test_solution_only_after_passing_or_with_force(mini):
    r = workshop("solution", "1")
    assert r.returncode == 1 and "does not pass yet" in r.stdout and "--force" in r.stdout
    forced = workshop("solution", "1", "--force")
    assert forced.returncode == 0 and "solutions/step1/udocker/__main__.py" in forced.stdout
    assert "os.execvp(args[2], args[2:])" in forced.stdout
    record(mini, 1, 3, 3)
    assert workshop("solution", "1").returncode == 0
    as_diff = workshop("solution", "1", "--diff").stdout
    assert "--- a/steps/step1/udocker/__main__.py" in as_diff and "+    pid = os.fork()" in as_diff


# --------------------------------------------------------------------------- reset


def test_reset_asks_keeps_a_backup_and_restores(mini):
    main = mini / "steps" / "step1" / "udocker" / "__main__.py"
    original = main.read_text()
    main.write_text("my work\n")
    (main.parent / "extra.py").write_text("mine too\n")
    record(mini, 1, 1, 3)

    r = workshop("reset", "1", input="n\n")
    assert r.returncode == 1 and "Aborted" in r.stderr
    assert main.read_text() == "my work\n"

    r = workshop("reset", "1", input="y\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert main.read_text() == original and not (main.parent / "extra.py").exists()
    m = re.search(r"your version is in (\.workshop/backups/step1-\d{8}-\d{6})/", r.stdout)
    assert m and "from git HEAD" in r.stdout, r.stdout
    backup = mini / m.group(1)
    assert (backup / "udocker" / "__main__.py").read_text() == "my work\n"
    assert (backup / "udocker" / "extra.py").read_text() == "mine too\n"
    assert "1" not in state_of(mini)["steps"]

    main.write_text("again\n")
    r = workshop("reset", "step1", "--yes")
    assert r.returncode == 0 and main.read_text() == original
    assert len(list((mini / ".workshop" / "backups").iterdir())) == 2


def test_reset_under_sudo_gives_files_to_the_repositorys_owner(mini):
    _need_root()
    main = mini / "steps" / "step1" / "udocker" / "__main__.py"
    main.write_text("my work\n")
    os.chown(mini, 65534, 65534)  # the learner's checkout; we are root, as under sudo
    r = workshop("reset", "1", "--yes")
    assert r.returncode == 0 and "from git HEAD" in r.stdout, r.stdout + r.stderr
    for path in [main, main.parent, mini / "steps" / "step1", *(mini / ".workshop").rglob("*"),
                 mini / ".workshop"]:
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path
    record(mini, 1, 1, 2)
    workshop("hint", "1")  # writes the state
    assert (mini / ".workshop" / "state.json").stat().st_uid == 65534


def test_reset_all(mini):
    for s in (0, 1):
        (mini / "steps" / f"step{s}" / "udocker" / "__main__.py").write_text("mine\n")
    r = workshop("reset", "all", "--yes")
    assert r.returncode == 0
    assert "steps/step0 is back" in r.stdout and "steps/step1 is back" in r.stdout
    assert "TODO(step 1)" in (mini / "steps" / "step1" / "udocker" / "__main__.py").read_text()


def test_reset_ignores_a_learners_commit_of_their_work(mini, tmp_path, monkeypatch):
    """A learner who commits their work must not get it back from git HEAD: the generator is asked."""
    from workshop import paths, pristine

    main = mini / "steps" / "step1" / "udocker" / "__main__.py"
    main.write_text("solved, no TODO left\n")
    _git(mini, "commit", "-qam", "my step 1")
    calls = []

    def fake_generator(step, dest):
        calls.append(step)
        shutil.copytree(mini / "solutions" / "step0", dest)

    monkeypatch.setattr(pristine, "_from_generator", fake_generator)
    assert paths.root() == mini
    assert pristine.copy(1, tmp_path / "pristine") == "the generator" and calls == [1]
    assert not (tmp_path / "pristine" / "udocker" / "__main__.py").read_text().startswith("solved")


def test_pristine_copy_of_this_repository(tmp_path, monkeypatch):
    """Against the real repository: git HEAD when it has the steps, else the generator."""
    monkeypatch.delenv("WORKSHOP_HOME", raising=False)
    from workshop import pristine

    source = pristine.copy(2, tmp_path / "step2")
    assert source in ("git HEAD", "the generator")
    text = "\n".join(p.read_text() for p in (tmp_path / "step2").rglob("*.py"))
    assert "TODO(step 2)" in text


# --------------------------------------------------------------------------- doctor


def _fake_environment(tmp_path, body: str) -> dict:
    pkg = tmp_path / "fakepkg" / "workshop"
    pkg.mkdir(parents=True)
    # a package `workshop` whose environment module is ours, and everything else the real one
    (pkg / "__init__.py").write_text((REPO / "workshop" / "__init__.py").read_text()
                                     + f"\n__path__.append({str(REPO / 'workshop')!r})\n")
    (pkg / "environment.py").write_text(textwrap.dedent(body))
    return {"PYTHONPATH": f"{pkg.parent}{os.pathsep}{REPO}"}


def test_doctor_renders_checks_with_fixes(tmp_path):
    env = _fake_environment(tmp_path, '''
        from dataclasses import dataclass
        @dataclass
        class Check:
            name: str
            ok: bool
            detail: str
            fix: str = ""
        def check_good(): return Check("python", True, "Python 3.11")
        def check_bad(): return Check("userns", False, "unprivileged user namespaces are off",
                                      "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
        def check_crash(): raise RuntimeError("boom [red]x[/]")
        CHECKS = [check_good, check_bad, check_crash]
    ''')
    r = subprocess.run([sys.executable, "-m", "workshop", "doctor"], capture_output=True, text=True,
                       env={**os.environ, **env, "COLUMNS": "200"}, timeout=60, cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"✓\s+python\s+Python 3.11", r.stdout)
    assert "fix: sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in r.stdout
    assert "the check crashed: RuntimeError: boom [red]x[/]" in r.stdout
    assert "2 of 3 checks fail" in r.stdout
    j = subprocess.run([sys.executable, "-m", "workshop", "doctor", "--json"], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=60, cwd=tmp_path)
    assert j.returncode == 1
    assert [c["ok"] for c in json.loads(j.stdout)] == [True, False, False]


def test_doctor_all_good(tmp_path):
    env = _fake_environment(tmp_path, '''
        from collections import namedtuple
        Check = namedtuple("Check", "name ok detail fix")
        CHECKS = [lambda: Check("root", True, "running as root", "")]
    ''')
    r = subprocess.run([sys.executable, "-m", "workshop", "doctor"], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and "all 1 checks pass: this machine is ready" in r.stdout


def test_doctor_on_this_machine():
    from workshop import environment

    r = workshop("doctor", "--json")
    results = json.loads(r.stdout)
    assert [c["name"] for c in results] == [c.name for c in environment.run_checks()]
    assert r.returncode == (0 if all(c["ok"] for c in results) else 1)


# --------------------------------------------------------------------------- clean


def _need_root():
    if os.geteuid() != 0:
        pytest.fail("this test mounts and makes cgroups: run it as root (CI does)")


def _mounted(path: Path) -> bool:
    from workshop.clean import read_mounts

    return any(m.mountpoint == str(path) for m in read_mounts())


def _v1_or_v2_pids_hierarchy() -> Path:
    from workshop.clean import read_mounts

    for m in read_mounts():
        if m.fstype == "cgroup" and "pids" in m.options.split(","):
            return Path(m.mountpoint)
    for m in read_mounts():
        if m.fstype == "cgroup2" and "pids" in (Path(m.mountpoint) / "cgroup.controllers").read_text().split():
            return Path(m.mountpoint)
    pytest.fail("no cgroup hierarchy with the pids controller on this machine")


def test_clean_removes_processes_cgroups_and_mounts(tmp_path):
    _need_root()
    from workshop.clean import Cleaner

    token = os.urandom(4).hex()
    root = tmp_path / "udocker-root"
    container = root / "mnt" / f"c{token}"
    (container / "rootfs" / "proc").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(container / "rootfs")], check=True)
    (container / "rootfs" / "proc").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(container / "rootfs" / "proc")], check=True)

    # a stray runtime: `python3 -m udocker` that never exits
    fake = tmp_path / "fake" / "udocker"
    fake.mkdir(parents=True)
    (fake / "__main__.py").write_text("import time\ntime.sleep(120)\n")
    runtime = subprocess.Popen([sys.executable, "-m", "udocker", "run", "x", "sleep"],
                               env={**os.environ, "PYTHONPATH": str(fake.parent)})

    # a leftover cgroup udocker-<id> with a process in it, inside a parent of our own
    hierarchy = _v1_or_v2_pids_hierarchy()
    parent = hierarchy / f"workshop-clean-test-{token}"
    cgroup = parent / f"udocker-{token}"
    cgroup.mkdir(parents=True)
    sleeper = subprocess.Popen(["sleep", "120"])
    try:
        (cgroup / "cgroup.procs").write_text(str(sleeper.pid))
        # the runtime's parent (this test) lives: a running container, left alone by default
        cleaner = Cleaner(root, [], cgroup_mounts=[str(parent)], pids={runtime.pid, sleeper.pid}, tmp_dirs=[])
        plan = {(a.kind, a.target) for a in cleaner.plan()}
        assert ("process", str(runtime.pid)) not in plan
        assert [(a.kind, a.target) for a in cleaner.skipped] == [("process", str(runtime.pid))]
        cleaner = Cleaner(root, [], cgroup_mounts=[str(parent)], pids={runtime.pid, sleeper.pid}, tmp_dirs=[], all=True)
        plan = {(a.kind, a.target) for a in cleaner.plan()}
        assert ("process", str(runtime.pid)) in plan
        assert ("cgroup", str(cgroup)) in plan
        assert ("mount", str(container / "rootfs" / "proc")) in plan
        assert ("mount", str(container / "rootfs")) in plan
        kinds = [a.kind for a in cleaner.plan()]
        assert kinds == sorted(kinds, key=["process", "cgroup", "mount"].index)
        mounts = [a.target for a in cleaner.plan() if a.kind == "mount"]
        assert mounts.index(str(container / "rootfs" / "proc")) < mounts.index(str(container / "rootfs"))

        done = cleaner.run()
        assert all(a.done for a in done), [(a.kind, a.target, a.error) for a in done]
        assert runtime.wait(timeout=10) == -signal.SIGKILL
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
        assert not cgroup.exists()
        assert not _mounted(container / "rootfs") and not _mounted(container / "rootfs" / "proc")
        assert Cleaner(root, [], cgroup_mounts=[str(parent)], pids={runtime.pid, sleeper.pid}, tmp_dirs=[]).plan() == []
    finally:
        for p in (runtime, sleeper):
            if p.poll() is None:
                p.kill()
                p.wait()
        for m in (container / "rootfs" / "proc", container / "rootfs"):
            if _mounted(m):
                subprocess.run(["umount", "-l", str(m)], check=False)
        for d in (cgroup, parent):
            if d.exists():
                d.rmdir()


def _fake_proc(base: Path, procs: dict) -> str:
    """A /proc with {pid: (ppid, argv, root)} for Cleaner."""
    for pid, (ppid, argv, root) in procs.items():
        d = base / str(pid)
        d.mkdir(parents=True)
        (d / "stat").write_text(f"{pid} ({argv[0][:15]}) S {ppid} {pid} {pid} 0 -1\n")
        (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
        os.symlink(root, d / "root")
    return str(base)


def test_clean_leaves_running_containers_alone_unless_all(tmp_path):
    from workshop.clean import Cleaner

    root, rootfs = tmp_path / "udocker", "/srv/busybox"
    proc = _fake_proc(tmp_path / "proc", {
        1: (0, ["init"], "/"),
        100: (1, ["bash"], "/"),
        200: (100, ["python3", "-m", "udocker", "run", "busybox", "sleep", "9"], "/"),   # running
        201: (200, ["sleep", "9"], f"{root}/mnt/rootfs"),
        300: (1, ["python3", "-m", "udocker", "run", rootfs, "sh"], "/"),                # orphaned
        301: (300, ["sh"], rootfs),
        400: (1, ["sleep", "60"], rootfs),                                               # lost
        500: (100, ["python3", "-m", "pytest", "-k", "udocker"], "/"),                   # unrelated
    })
    (tmp_path / "mountinfo").write_text("")
    kw = dict(proc=proc, mountinfo=str(tmp_path / "mountinfo"), cgroup_mounts=[], tmp_dirs=[])
    cleaner = Cleaner(root, [rootfs], **kw)
    plan = [(a.kind, a.target) for a in cleaner.plan()]
    assert plan == [("process", "300"), ("process", "301"), ("process", "400")]
    assert [(a.kind, a.target) for a in cleaner.skipped] == [("process", "200")]
    everything = Cleaner(root, [rootfs], all=True, **kw).plan()
    assert [a.target for a in everything if a.kind == "process"] == ["200", "201", "300", "301", "400"]


def test_clean_finds_mounts_on_the_rootfs_and_overlays(tmp_path):
    from workshop.clean import Cleaner

    root, rootfs = "/var/lib/udocker", "/srv/busybox"
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(textwrap.dedent(f"""\
        21 1 0:20 / / rw - ext4 /dev/vda rw
        30 21 0:30 / {rootfs} rw - ext4 /dev/vda rw
        31 30 0:31 / {rootfs}/proc rw - proc proc rw
        32 21 0:32 / /mnt/merged rw - overlay overlay rw,lowerdir={root}/layers/a,upperdir={root}/containers/x/upper
        33 21 0:33 / {root} rw - ext4 /dev/vdb rw
        34 33 0:34 / {root}/containers/x/rootfs rw - overlay overlay rw
        35 34 0:35 / {root}/containers/x/rootfs/proc rw - proc proc rw
        36 21 0:36 / /elsewhere rw - tmpfs tmpfs rw
        37 21 0:37 / /with\\040space/udocker rw - tmpfs tmpfs rw
    """))
    found = [m.mountpoint for m in Cleaner(root, [rootfs], mountinfo=str(mountinfo)).find_mounts()]
    # UDOCKER_ROOT itself (a disk of its own) and unrelated mounts stay
    assert sorted(found) == sorted([rootfs, f"{rootfs}/proc", "/mnt/merged", f"{root}/containers/x/rootfs",
                                    f"{root}/containers/x/rootfs/proc"])
    # deepest first
    assert found.index(f"{root}/containers/x/rootfs/proc") < found.index(f"{root}/containers/x/rootfs")
    assert found.index(f"{rootfs}/proc") < found.index(rootfs)


def test_clean_removes_the_scratch_folders_of_owners_killed_outright(tmp_path):
    """A folder whose owner's lock is free goes, after the processes that name it and what is mounted
    in it; one whose owner lives, and one nobody ever held, stay."""
    _need_root()
    from workshop.clean import Cleaner

    base = tmp_path / "tmp"
    live, dead, never = base / "workshop-check-live", base / "workshop-tests-dead", base / "workshop-bench-never"
    for folder in (live, dead, never):
        (folder / "rootfs").mkdir(parents=True)
    hold = ("import sys, time; from workshop import scratch; scratch.hold(sys.argv[1]); print(flush=True);"
            " time.sleep(120)")
    owners = [subprocess.Popen([sys.executable, "-c", hold, str(f)], stdout=subprocess.PIPE, cwd=REPO)
              for f in (live, dead)]
    registry = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(dead / "registry.yml")])
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(dead / "rootfs")], check=True)
    try:
        for owner in owners:
            owner.stdout.readline()  # it holds its folder now
        owners[1].kill()
        owners[1].wait()
        cleaner = Cleaner(tmp_path / "udocker", [], cgroup_mounts=[], tmp_dirs=[str(base)],
                          pids={owners[0].pid, registry.pid})
        plan = [(a.kind, a.target) for a in cleaner.plan()]
        assert plan == [("process", str(registry.pid)), ("folder", str(dead))], plan
        done = cleaner.run()
        assert all(a.done for a in done), [(a.kind, a.target, a.error) for a in done]
        assert registry.wait(timeout=10) == -signal.SIGKILL
        assert not dead.exists() and not _mounted(dead / "rootfs")
        assert live.is_dir() and never.is_dir() and owners[0].poll() is None
    finally:
        for p in (*owners, registry):
            if p.poll() is None:
                p.kill()
                p.wait()
        if _mounted(dead / "rootfs"):
            subprocess.run(["umount", "-l", str(dead / "rootfs")], check=False)


def test_a_running_test_session_holds_its_folder(session_dir):
    from workshop import scratch

    assert (session_dir / scratch.ALIVE).exists() and not scratch.abandoned(session_dir)


def test_clean_recognises_runtimes():
    from workshop.clean import _is_runtime

    assert _is_runtime(["python3", "-m", "udocker", "run", "x", "sh"])
    assert _is_runtime(["/usr/bin/python3.11", "-X", "importtime", "-m", "udocker"])
    assert _is_runtime(["python3", "-mudocker"])
    assert _is_runtime(["python3", "/home/me/steps/step4/udocker/__main__.py", "run"])
    assert not _is_runtime(["python3", "-m", "pytest", "tests/step4", "-k", "udocker"])
    assert not _is_runtime(["python3", "-c", "print('-m udocker')"])
    assert not _is_runtime(["bash", "-c", "python3 -m udocker"])


def test_clean_dry_run_changes_nothing(tmp_path):
    _need_root()
    root = tmp_path / "udocker-root"
    (root / "mnt").mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "left", str(root / "mnt")], check=True)
    try:
        r = workshop("clean", "--dry-run", env={"UDOCKER_ROOT": str(root),
                                                "WORKSHOP_ROOTFS": str(tmp_path / "rootfs")})
        assert r.returncode == 0, r.stdout + r.stderr
        assert "would unmount mount" in r.stdout and str(root / "mnt") in r.stdout
        assert _mounted(root / "mnt")
    finally:
        subprocess.run(["umount", "-l", str(root / "mnt")], check=False)


# --------------------------------------------------------------------------- demo, selftest


def test_demo_needs_a_runtime_with_a_root_filesystem(mini):
    r = workshop("demo")
    assert r.returncode == 1 and "needs a runtime from step 3 on" in r.stdout


def test_demo_on_this_repository(tmp_path, monkeypatch):
    _need_root()
    monkeypatch.delenv("WORKSHOP_HOME", raising=False)
    r = workshop("demo", env={"WORKSHOP_ROOTFS": str(tmp_path / "busybox")}, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (tmp_path / "busybox" / "bin" / "busybox").exists()
    assert "building the busybox root filesystem" in r.stdout
    assert "python3 -m udocker run --hostname demo" in r.stdout
    assert "demo runs behaved" in r.stdout


def test_selftest_passes_arguments_and_exit_status(mini):
    r = workshop("selftest", "tests/step1", "-q", "-p", "no:cacheprovider")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 passed" in r.stdout
    assert "python3 -m pytest -m 'not network' tests/step1 -q" in r.stderr
    r = workshop("selftest", "--network", "tests/step1", "-q", "-p", "no:cacheprovider")
    assert r.returncode == 0 and "python3 -m pytest tests/step1 -q" in r.stderr
    r = workshop("selftest", "tests/step1", "-k", "exit_status", "--impl", "steps/step1", "-p", "no:cacheprovider")
    assert r.returncode == 1 and "1 failed" in r.stdout
    assert workshop("selftest", "tests/no_such_dir", "-p", "no:cacheprovider").returncode == 4


def test_dev_check_runs_in_seconds_without_root(tmp_path):
    """`workshop dev check`, as an ordinary user: the static tests of this repository."""
    from workshop.maintainer import STATIC_TESTS
    from workshop.testing import SETPRIV

    as_user = [*SETPRIV] if os.geteuid() == 0 else []
    start = time.monotonic()
    repo = testing.world_readable(REPO) if as_user else REPO  # the checkout may be out of the user's reach
    r = subprocess.run([*as_user, "env", f"HOME={tmp_path}", "PYTHONDONTWRITEBYTECODE=1", f"PYTHONPATH={repo}",
                        f"WORKSHOP_HOME={repo}",
                        sys.executable, "-m", "workshop", "dev", "check"], capture_output=True, text=True,
                       timeout=120, cwd="/")
    took = time.monotonic() - start
    assert r.returncode == 0, r.stdout + r.stderr
    assert all(t in r.stderr for t in STATIC_TESTS) and " passed" in r.stdout
    assert took < 20, f"expected seconds, got {took:.0f} s"


def test_version_and_help():
    r = workshop("--version")
    assert r.returncode == 0 and re.fullmatch(r"workshop \d+\.\d+\.\d+\n", r.stdout)
    r = workshop("--help")
    for command in ("check", "progress", "show", "hint", "diff", "solution", "reset", "doctor", "clean", "demo",
                    "selftest", "dev"):
        assert re.search(rf"^  {command}\s", r.stdout, re.M), command
