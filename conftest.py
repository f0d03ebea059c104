"""The implementation matrix, the shared fixtures and the leak check of the step suites.

* ``pytest tests/stepN --impl DIR`` runs step N's tests against the udocker
  package in DIR (``steps/step4``, ``solutions/step4``, a learner's folder).
* Plain ``pytest``: every test in ``tests/stepN`` that uses the ``udocker``
  fixture runs
  - against ``solutions/stepK`` for every K >= N: it must pass;
  - against ``steps/step(N+1)``, the next step's starting code: it must pass
    (that code holds step N+1's given code, which must not break step N);
  - against ``steps/stepN`` as a strict xfail: it must fail on the step's own
    starting code.
  The steps are those of workshop/steps.toml (:func:`workshop.meta.numbers`).
  Guard tests (``@pytest.mark.guard``) check the machine, not the code: they
  are not run against starting code, and not parametrized at all when they
  do not use the implementation.
* Every step test is checked for what it leaves on the host (mounts, cgroups
  named ``udocker*``, processes, ``udocker*`` temporary files, the hostname:
  :mod:`workshop.harness.leaks`), and stopped when it runs longer than
  :data:`DEADLINE` seconds.
* tests/imagesupport.py (the registry and image fixtures of steps 7 and 8) is
  a plugin of every session: its fixtures are everybody's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest

from workshop import meta, mountinfo, paths, scratch
from workshop import rootfs as rootfs_builder
from workshop import testing
from workshop.harness import leaks

pytest_plugins = ["imagesupport"]  # tests/ is on the path (pyproject.toml's pythonpath)

ROOT = Path(__file__).resolve().parent
os.environ.setdefault("WORKSHOP_HOME", str(ROOT))  # steps.toml and the step folders are this repository's
LEAK_GRACE = 1.0  # seconds a test's processes get to disappear after it
#: seconds a step test may take (setting up, then running) before it is stopped; thrice that
#: for the checks that talk to Docker Hub
DEADLINE = 6 * testing.DEFAULT_TIMEOUT


def pytest_addoption(parser):
    parser.addoption(
        "--impl", metavar="DIR", default=None,
        help="test the udocker package in DIR (e.g. steps/step3) instead of the whole matrix",
    )


def pytest_generate_tests(metafunc):
    if "impl" not in metafunc.fixturenames:
        return
    option = metafunc.config.getoption("--impl")
    if option:
        path = Path(option).expanduser().resolve()
        metafunc.parametrize("impl", [pytest.param(path, id=paths.rel(path))], scope="function")
        return
    step = paths.suite_step(metafunc.definition.path)
    if step is None:  # a test outside tests/stepN: it needs --impl
        metafunc.parametrize("impl", [pytest.param(None, id="no-impl")])
        return
    guard = metafunc.definition.get_closest_marker("guard") is not None
    solutions, starters = paths.step_folders("solutions"), paths.step_folders("steps")
    later = [k for k in meta.numbers() if k > step]
    params = [pytest.param(path, id=paths.rel(path)) for k, path in solutions.items() if k >= step]
    if later and later[0] in starters:
        params.append(pytest.param(starters[later[0]], id=paths.rel(starters[later[0]])))
    if step in starters and not guard:
        params.append(pytest.param(starters[step], id=paths.rel(starters[step]), marks=pytest.mark.xfail(
            strict=True, reason=f"starting code of step {step}: must fail until the step is done")))
    if not params:  # no silent skip: a test with nothing to run against fails and says why
        params = [pytest.param(None, id="missing")]
    metafunc.parametrize("impl", params)


# --------------------------------------------------------------------------- session resources


@pytest.fixture(scope="session")
def session_token():
    """The token in the environment of every runtime of the session; `workshop check` gives its own
    (to find what an interrupted session left)."""
    return os.environ.get(leaks.CHECK_SESSION_ENV) or testing.token("s")


@pytest.fixture(scope="session")
def session_dir(session_token):
    """A world-readable temporary directory for the session (the rootless user must reach the rootfs)."""
    base = Path(tempfile.gettempdir())
    if not testing.world_traversable(base):
        base = Path("/tmp")
    path = Path(tempfile.mkdtemp(prefix=f"workshop-tests-{session_token}-", dir=base))
    os.chmod(path, 0o755)
    held = scratch.hold(path)  # `workshop clean` removes it if the session is killed outright
    yield path
    leaks.remove_tree(path)
    os.close(held)


@pytest.fixture(scope="session")
def rootfs(session_dir) -> Path:
    """The session's busybox root filesystem (treat it as read-only; see private_rootfs)."""
    try:
        return rootfs_builder.build_rootfs(session_dir / "rootfs")
    except (rootfs_builder.RootfsError, OSError) as e:
        pytest.fail(f"cannot build the busybox root filesystem: {e}")


@pytest.fixture
def private_rootfs(rootfs, session_dir) -> Path:
    """A copy of the rootfs for this test alone (hard links: add files, do not modify the old ones).

    Never a copy of a tree with mounts in it (a leaked /proc would be copied, or block the copy):
    anything mounted in the session's rootfs is detached first.
    """
    for m in sorted(mountinfo.read(), key=lambda m: len(m.mountpoint), reverse=True):
        if m.mountpoint == str(rootfs) or m.mountpoint.startswith(f"{rootfs}/"):
            mountinfo.detach(m.mountpoint)
    dest = Path(tempfile.mkdtemp(prefix="rootfs-", dir=session_dir))
    os.rmdir(dest)
    rootfs_builder.clone_rootfs(rootfs, dest)
    yield dest
    leaks.remove_tree(dest)


@pytest.fixture(scope="session")
def _shared_impls(session_dir):
    """World-readable copies of implementation folders, for rootless runs."""
    copies: dict[Path, Path] = {}

    def get(impl: Path) -> Path:
        if impl not in copies:
            dest = Path(tempfile.mkdtemp(prefix="impl-", dir=session_dir))
            os.chmod(dest, 0o755)
            shutil.copytree(impl / "udocker", dest / "udocker",
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            for dirpath, dirnames, filenames in os.walk(dest):
                for d in dirnames:
                    os.chmod(os.path.join(dirpath, d), 0o755)
                for f in filenames:
                    os.chmod(os.path.join(dirpath, f), 0o644)
            copies[impl] = dest
        return copies[impl]

    return get


@pytest.fixture(scope="session")
def _rootless_home(session_dir) -> Path:
    home = session_dir / "home-rootless"
    home.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(home, testing.ROOTLESS_UID, testing.ROOTLESS_UID)
    return home


@pytest.fixture
def udocker(request, impl, _shared_impls, _rootless_home, session_token) -> testing.Udocker:
    """The implementation under test: .run(...) and .popen(...) its CLI."""
    if impl is None:
        step = paths.suite_step(request.node.path)
        pytest.fail(f"no implementation to test: neither solutions/stepK (K >= {step}) nor steps/step{step} "
                    "exists; run `python3 -m workshop.generate`, or pass --impl DIR" if step is not None
                    else "this test needs --impl DIR", pytrace=False)
    if not (Path(impl) / "udocker" / "__main__.py").is_file():
        pytest.fail(f"no udocker package in {impl}: expected {impl}/udocker/__main__.py", pytrace=False)
    impl = Path(impl)
    return testing.Udocker(impl=impl, shared_impl=_shared_impls(impl), session=session_token, home=_rootless_home)


# --------------------------------------------------------------------------- nothing left behind, no hang


@pytest.fixture(autouse=True)
def nothing_left_behind(request, session_token, session_dir, tmp_path_factory):
    """Fail a step test that leaves a mount, a udocker* cgroup, a process, a udocker* temp file
    or another hostname behind, and remove it."""
    if paths.suite_step(request.node.path) is None:
        yield
        return
    before = leaks.snapshot()
    yield
    where = [str(session_dir), str(tmp_path_factory.getbasetemp())]
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        problems = leaks.leftovers(before, session_token, where, mount_dirs=[str(ROOT)])
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if problems:
        leaks.clean_up(before, session_token, where, mount_dirs=[str(ROOT)])
        raise testing.CheckFailure(problem="the test left this behind on the host:\n  " + "\n  ".join(problems),
                                   kind="left-behind")


class _Hung(BaseException):
    """Raised in a step test that outlived its deadline (a BaseException: no `except Exception` eats it)."""


@contextlib.contextmanager
def _deadline(item):
    """Run a phase of a step test with an alarm at its deadline: a hang becomes a failure."""
    if paths.suite_step(item.path) is None:
        yield
        return
    seconds = DEADLINE * (3 if item.get_closest_marker("network") else 1)

    def alarm(signum, frame):
        raise _Hung(seconds)

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    with _deadline(item):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    with _deadline(item):
        yield



@pytest.fixture(autouse=True)
def nothing_left_on_the_network(request):
    """Fail a step test that changed the host's network, left a network namespace or a lease behind.

    The host's own links, addresses, routes, listening sockets, nftables ruleset and
    ip_forward (workshop/netsandbox.py), and the leases of UDOCKER_RUN_DIR (/run/udocker).
    Only for implementations with a network (step 9 on: udocker/network.py), and guards.
    """
    if paths.suite_step(request.node.path) is None or not _may_network(request):
        yield
        return
    from workshop import netsandbox

    before, leases = netsandbox.snapshot(), _leases()
    yield
    problems = netsandbox.wait_for_no_leftovers(before)
    problems += [f"lease {path}" for path in sorted(_leases() - leases)]
    if problems:
        raise testing.CheckFailure(problem="the test left this behind on the host's network:\n  "
                                   + "\n  ".join(problems), kind="left-behind")


def _may_network(request) -> bool:
    """Does the test's implementation make networks (or has the test none, a guard)?"""
    impl = getattr(getattr(request.node, "callspec", None), "params", {}).get("impl")
    return impl is None or (Path(impl) / "udocker" / "network.py").exists()


def _leases() -> set[str]:
    root = Path(os.environ.get("UDOCKER_RUN_DIR", "/run/udocker")) / "leases"
    return {str(path) for path in root.glob("*/*") if path.name != "lock"}


# --------------------------------------------------------------------------- what a failure shows


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A hung check fails and says so; a failed check shows its hint and what to read, from
    workshop/steps.toml (the one place for them); a leak shows only what was left."""
    if call.excinfo is not None and call.excinfo.type is _Hung:
        seconds = call.excinfo.value.args[0]
        failure = testing.CheckFailure(f"the check to finish within {seconds:g} s",
                                       "it was still running: stopped it", kind="hung")
        call.excinfo = pytest.ExceptionInfo.from_exception(failure.with_traceback(call.excinfo.tb))
    outcome = yield
    report = outcome.get_result()
    error = call.excinfo.value if call.excinfo is not None else None
    if isinstance(error, testing.CheckFailure) and error.kind == "left-behind":
        report.longrepr = str(error)  # the leak check's own frames say nothing
    if not report.failed or report.when == "setup":
        return
    step = paths.suite_step(item.path)
    if step is None:
        return
    hint = meta.hint_for(step, item.name, getattr(error, "kind", "check"))
    if hint:
        read = ", ".join(meta.check_read(step, item.name))
        report.sections.append(("hint", f"{hint}\nread: {read}" if read else hint))
    simulated = item.get_closest_marker("simulated")
    if simulated is not None:
        report.sections.append(("simulated", simulated.args[0] if simulated.args else "a simulation"))


def pytest_terminal_summary(terminalreporter):
    """Say which checks ran against a simulation rather than the real kernel."""
    simulated: dict[str, int] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            reason = _simulation_reasons.get(getattr(report, "nodeid", None))
            if reason and getattr(report, "when", None) == "call":
                simulated[reason] = simulated.get(reason, 0) + 1
    for reason, count in simulated.items():
        terminalreporter.write_line(f"{count} check{'s' if count != 1 else ''} ran against a simulation, "
                                    f"not the real kernel: {reason}")


_simulation_reasons: dict[str, str] = {}


def pytest_collection_modifyitems(items):
    for item in items:
        marker = item.get_closest_marker("simulated")
        if marker is not None:
            _simulation_reasons[item.nodeid] = str(marker.args[0] if marker.args else "a simulation")
