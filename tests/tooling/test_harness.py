"""Tests of the test harness: failures as data, the report plugin, what a failure shows,
the leak check, deadlines, and Ctrl-C during `workshop check`.

Most run pytest in a small repository that has this repository's conftest.py
and pytest settings, with test files written for the purpose.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workshop import mountinfo, testing
from workshop.harness import shown
from workshop.harness.failure import CheckFailure, Output

from tooling.miniature import REPO, miniature



def _need_root():
    if os.geteuid() != 0:
        pytest.fail("this test mounts, changes the hostname or runs containers: run it as root (CI does)")


@pytest.fixture
def suite(tmp_path):
    """run(tests, *pytest_args, env=...) -> (pytest's CompletedProcess, its report), in a repository
    with this conftest.py; TESTS: {path under tests/: source}."""
    repo = miniature(tmp_path / "repo", "workshop/steps.toml")

    def run(tests: dict[str, str], *args: str, env: dict | None = None, timeout: float = 120):
        for rel, text in tests.items():
            (repo / "tests" / rel).parent.mkdir(parents=True, exist_ok=True)
            (repo / "tests" / rel).write_text(textwrap.dedent(text))
        report = tmp_path / "report.json"
        report.unlink(missing_ok=True)
        proc = subprocess.run([sys.executable, "-m", "pytest", "-c", str(repo / "pyproject.toml"),
                               "--rootdir", str(repo), "-p", "workshop.harness.report",
                               "--workshop-report", str(report), "-p", "no:cacheprovider", "-q", *args],
                              cwd=repo, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "PYTHONPATH": str(REPO), "WORKSHOP_HOME": str(repo), **(env or {})})
        data = json.loads(report.read_text()) if report.exists() else None
        return proc, data

    run.repo = repo
    return run


def by_name(data: dict) -> dict[str, dict]:
    return {t["nodeid"].split("::")[1]: t for t in data["tests"]}


# --------------------------------------------------------------------------- the report plugin


def test_report_outcomes(suite):
    proc, data = suite({"step3/test_kinds.py": '''
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("fixture broke")

        def test_passes():
            """It passes."""

        def test_fails():
            assert 1 == 2, "one is not two"

        def test_setup_error(broken):
            pass

        def test_skipped():
            pytest.skip("no registry here")

        @pytest.mark.xfail(reason="not yet")
        def test_xfails():
            assert False

        @pytest.mark.parametrize("n", [1, 2])
        def test_param(n):
            assert n == 1
    '''})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert data["exitstatus"] == 1 and data["collect_errors"] == [] and data["offline"] is None
    got = by_name(data)
    assert {k: t["outcome"] for k, t in got.items()} == {
        "test_passes": "passed", "test_fails": "failed", "test_setup_error": "error",
        "test_skipped": "skipped", "test_xfails": "xfailed", "test_param[1]": "passed", "test_param[2]": "failed"}
    assert all(t["step"] == 3 for t in data["tests"])
    assert got["test_passes"]["title"] == "It passes." and got["test_param[2]"]["name"] == "test_param"
    assert "one is not two" in got["test_fails"]["message"] and got["test_fails"]["failure"] is None
    assert "fixture broke" in got["test_setup_error"]["message"]
    assert got["test_skipped"]["message"] == "no registry here"


def test_a_check_failure_reaches_the_report_as_fields(suite):
    proc, data = suite({"step3/test_fields.py": '''
        from workshop.testing import Result

        def test_exit(capsys):
            print("a line the test printed")
            Result(["x"], "udocker run img sh -c 'exit 3'", 0, "out\\n", "err\\n").expect_exit(3)

        def test_problem():
            Result(["x"], "udocker pull x", 125, "", "").fail("expected a request for layer 2, got none")
    '''})
    assert proc.returncode == 1
    got = by_name(data)
    failure = got["test_exit"]["failure"]
    assert failure == {"kind": "check", "expected": "exit code 3", "got": "0", "problem": None,
                       "command": "udocker run img sh -c 'exit 3'",
                       "output": {"exit_code": 0, "stdout": "out\n", "stderr": "err\n", "timed_out": None,
                                  "stdout_more": 0, "stderr_more": 0}}
    assert got["test_exit"]["captured"]["stdout"] == "a line the test printed\n"
    assert got["test_problem"]["failure"]["problem"] == "expected a request for layer 2, got none"
    # plain pytest shows the same as text
    assert "expected exit code 3, got 0" in proc.stdout and "$ udocker run img sh -c 'exit 3'" in proc.stdout


def test_simulated_checks_are_named_with_their_reason(suite):
    proc, data = suite({"step6/test_sim.py": '''
        import pytest

        @pytest.mark.simulated("cgroup v2: this machine has v1 cgroups; the workshop VM runs it for real")
        def test_v2_driver():
            pass

        def test_real():
            pass
    '''})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = by_name(data)
    assert got["test_v2_driver"]["simulated"].startswith("cgroup v2: this machine has v1 cgroups")
    assert got["test_real"]["simulated"] is None
    assert "1 check ran against a simulation, not the real kernel: cgroup v2" in proc.stdout


def test_network_checks_are_left_out_when_docker_hub_does_not_answer(suite):
    tests = {"step7/test_net.py": '''
        import pytest

        @pytest.mark.network
        def test_needs_docker_hub():
            pass

        def test_local():
            pass
    '''}
    with socket.socket() as closed:  # a port where nothing listens
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    proc, data = suite(tests, "--workshop-network", "auto",
                       env={"WORKSHOP_DOCKER_HUB_PROBE": f"127.0.0.1:{port}"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [t["name"] for t in data["tests"]] == ["test_local"]
    assert data["offline"]["checks"] == ["tests/step7/test_net.py::test_needs_docker_hub"]
    assert f"127.0.0.1:{port}" in data["offline"]["reason"] and data["deselected"] == 0
    proc, data = suite(tests, "--workshop-network", "off", "-k", "nothing_matches")
    assert data["offline"]["reason"] == "--offline was given" and data["deselected"] == 1
    proc, data = suite(tests)  # plain pytest: it runs (and would fail with the reason)
    assert len(data["tests"]) == 2 and data["offline"] is None


# --------------------------------------------------------------------------- what a failure shows


def test_output_is_bounded_first_lines_of_stdout_last_of_stderr():
    stdout = "".join(f"process {n}\n" for n in range(250))
    stderr = "".join(f"  frame {n}\n" for n in range(20)) + "SyntaxError: invalid syntax\n"
    out = Output.of(0, stdout, stderr)
    assert out.stdout == "".join(f"process {n}\n" for n in range(shown.MAX_LINES)) and out.stdout_more == 244
    assert out.stderr.endswith("SyntaxError: invalid syntax\n") and out.stderr_more == 21 - shown.MAX_LINES
    lines = out.lines()
    assert lines[1].endswith("... 244 more lines")
    assert lines[2].startswith(f"stderr: {21 - shown.MAX_LINES} lines, then:")
    # a repr()'d got is cut at its escaped newlines
    failure = CheckFailure("only the container's processes", repr(stdout))
    assert failure.got.endswith("... 244 more lines") and failure.got.count("\\n") == shown.MAX_LINES


def test_other_processes_of_the_host_are_not_shown():
    secret = f"SECRET_TOKEN=hunter2-{os.urandom(4).hex()}"
    # a process that is neither this test's descendant nor a test session's: an orphan
    marker = f"not-yours-{os.urandom(4).hex()}"
    launcher = subprocess.run(
        ["sh", "-c", f"{sys.executable} -c 'import time; time.sleep(60)' {marker} >/dev/null 2>&1 & echo $!"],
        capture_output=True, text=True, env={"PATH": os.environ["PATH"], secret.split("=")[0]: secret.split("=")[1]})
    pid = int(launcher.stdout)
    try:
        time.sleep(0.2)
        listing = f"PID COMMAND\n1 init\n{pid} {' '.join(testing.cmdline(pid))}\n{os.getpid()} pytest\nenv: {secret}\n"
        failure = CheckFailure("only the container's processes", listing,
                               output=Output.of(0, listing, ""))
        for text in (failure.got, failure.output.stdout, str(failure)):
            assert marker not in text and "hunter2" not in text, text
            assert shown.HIDDEN in text and f"{os.getpid()} pytest" in text
    finally:
        os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- nothing left behind, no hang


def test_the_leak_check_puts_the_hostname_back_and_says_what_it_was(suite):
    _need_root()
    before = socket.gethostname()
    proc, data = suite({"step2/test_rename.py": '''
        import socket

        def test_renames_the_host():
            socket.sethostname("renamed-by-a-test")
    '''})
    try:
        assert socket.gethostname() == before
    finally:
        socket.sethostname(before)
    assert proc.returncode == 1
    test = by_name(data)["test_renames_the_host"]
    assert test["outcome"] == "error" and test["failure"]["kind"] == "left-behind"
    assert (f"the host's hostname: it was {before!r}, the test left 'renamed-by-a-test' (put back: {before!r})"
            in test["failure"]["problem"])


def test_the_leak_check_detaches_a_leaked_mount_and_no_copy_takes_it(suite):
    _need_root()
    proc, data = suite({"step4/test_mounts.py": '''
        import subprocess

        def test_a_leak(rootfs):
            subprocess.run(["mount", "-t", "tmpfs", "leaked", str(rootfs / "proc")], check=True)

        def test_a_copy_after_it(rootfs, private_rootfs):
            assert not list((private_rootfs / "proc").iterdir())
            assert not [m for m in open("/proc/self/mountinfo") if str(rootfs) in m]
    '''})
    got = by_name(data)
    assert got["test_a_leak"]["outcome"] == "error", proc.stdout
    assert "mount tmpfs leaked on " in got["test_a_leak"]["failure"]["problem"]
    assert got["test_a_copy_after_it"]["outcome"] == "passed", proc.stdout
    assert not [m for m in mountinfo.read() if m.source == "leaked"]


def test_a_hung_check_fails_at_its_deadline(suite):
    start = time.monotonic()
    proc, data = suite({"step1/test_hangs.py": '''
        import os

        def test_reads_forever():
            r, w = os.pipe()
            os.read(r, 1)
    '''}, env={"WORKSHOP_TEST_TIMEOUT": "0.5"})
    took = time.monotonic() - start
    test = by_name(data)["test_reads_forever"]
    assert test["outcome"] == "failed" and test["failure"]["kind"] == "hung", proc.stdout
    assert test["failure"]["expected"] == "the check to finish within 3 s"
    assert took < 30


def test_no_container_outlives_its_lifetime(tmp_path):
    """At its lifetime a runtime gets SIGTERM (it may say where it was stuck), then SIGKILL with all
    it started, when it ignores that."""
    c = testing.Container(["sleep", "30"], "sleep 30", dict(os.environ), str(tmp_path), lifetime=0.5)
    time.sleep(1.0)
    result = c.finish(timeout=5)
    assert result.timed_out == 0.5 and result.returncode == -signal.SIGTERM
    tag = f"30.{time.time_ns() % 10**6:06d}"  # a duration no other sleep has
    deaf = ["sh", "-c", f"trap '' TERM; sleep {tag} & wait"]  # sleep inherits the ignored SIGTERM
    c = testing.Container(deaf, "sh", dict(os.environ), str(tmp_path), lifetime=0.5)
    result = c.finish(timeout=5)
    assert result.timed_out == 0.5 and result.returncode == -signal.SIGKILL
    time.sleep(0.2)
    left = [pid for pid in testing.all_pids() if tag in " ".join(testing.cmdline(pid))]
    assert left == [], f"expected nothing of the runtime left, got {left}"


def _leftovers_of(session: str) -> list[str]:
    marker = f"WORKSHOP_CHECK_SESSION={session}".encode()
    found = []
    for pid in testing.all_pids():
        try:
            if marker in Path(f"/proc/{pid}/environ").read_bytes() or \
                    f"{testing.SESSION_ENV}={session}".encode() in Path(f"/proc/{pid}/environ").read_bytes():
                found.append(f"process {pid} {' '.join(testing.cmdline(pid))}")
        except OSError:
            pass
    found += [f"mount {m.mountpoint}" for m in mountinfo.read() if f"workshop-check-{session}" in m.mountpoint
              or f"workshop-tests-{session}" in m.mountpoint]
    found += [str(p) for p in Path("/tmp").glob(f"workshop-*{session}*")]
    return found


@pytest.mark.parametrize("presses", [1, 2, "sigterm"])
def test_ctrl_c_during_a_check_leaves_nothing_behind(presses):
    """SIGINT to the check's process group (as a terminal sends it) while containers run, once or
    twice; or SIGTERM to the workshop command alone (as `timeout` or a closed session sends it)."""
    _need_root()
    cgroups_before = _udocker_cgroups()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop("WORKSHOP_HOME", None)
    proc = subprocess.Popen([sys.executable, "-m", "workshop", "check", "6", "--solution", "-k", "cpu or memory"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        session = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and session is None:  # wait for a running container
            for pid in testing.descendants(proc.pid):
                argv = testing.cmdline(pid)
                if argv[:1] == ["sh"] or argv[-2:] == ["while", ":"]:
                    environ = Path(f"/proc/{pid}/environ").read_bytes()
                    for entry in environ.split(b"\0"):
                        if entry.startswith(testing.SESSION_ENV.encode() + b"="):
                            session = entry.split(b"=", 1)[1].decode()
            time.sleep(0.05)
        assert session, "no container of the check started within 60 s"
        if presses == "sigterm":
            proc.send_signal(signal.SIGTERM)
        for _ in range(0 if presses == "sigterm" else presses):
            os.killpg(proc.pid, signal.SIGINT)
            time.sleep(0.3)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, output
    assert "interrupted" in output
    time.sleep(0.5)
    assert _leftovers_of(session) == [], output
    assert _udocker_cgroups() <= cgroups_before, output


def _udocker_cgroups() -> set[str]:
    from workshop.harness.leaks import udocker_cgroups

    return udocker_cgroups()
