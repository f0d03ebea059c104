"""The implementation matrix, the shared fixtures and the leak check of the step suites.

* ``pytest tests/stepN --impl DIR`` runs step N's tests against the udocker
  package in DIR (``steps/step4``, ``solutions/step4``, a learner's folder).
* Plain ``pytest``: every test in ``tests/stepN`` that uses the ``udocker``
  fixture runs against ``solutions/stepK`` for every existing K >= N (it must
  pass) and against ``steps/stepN`` as a strict xfail (it must fail on the
  starting code). Guard tests (``@pytest.mark.guard``) check the machine, not
  the code: they are not run against starting code, and not parametrized at
  all when they do not use the implementation.
* Every step test is checked for what it leaves on the host: mounts, cgroups
  named ``udocker*``, processes, ``udocker*`` temporary files.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from workshop import rootfs as rootfs_builder
from workshop import testing

ROOT = Path(__file__).resolve().parent
STEP_DIR = re.compile(r"^step(\d+)$")
LEAK_GRACE = 1.0  # seconds a test's processes get to disappear after it


def pytest_addoption(parser):
    parser.addoption(
        "--impl", metavar="DIR", default=None,
        help="test the udocker package in DIR (e.g. steps/step3) instead of the whole matrix",
    )


def step_of(path: Path) -> int | None:
    """N for a test file in tests/stepN/ (None elsewhere)."""
    for part in reversed(Path(path).parts[:-1]):
        m = STEP_DIR.match(part)
        if m:
            return int(m[1])
    return None


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def _existing(folder: str) -> dict[int, Path]:
    found = {}
    base = ROOT / folder
    if base.is_dir():
        for d in base.iterdir():
            m = STEP_DIR.match(d.name)
            if m and (d / "udocker").is_dir():
                found[int(m[1])] = d
    return found


def pytest_generate_tests(metafunc):
    if "impl" not in metafunc.fixturenames:
        return
    option = metafunc.config.getoption("--impl")
    if option:
        path = Path(option).expanduser().resolve()
        metafunc.parametrize("impl", [pytest.param(path, id=_rel(path))], scope="function")
        return
    step = step_of(metafunc.definition.path)
    if step is None:  # a test outside tests/stepN: it needs --impl
        metafunc.parametrize("impl", [pytest.param(None, id="no-impl")])
        return
    guard = metafunc.definition.get_closest_marker("guard") is not None
    params = [pytest.param(path, id=_rel(path))
              for k, path in sorted(_existing("solutions").items()) if k >= step]
    start = _existing("steps").get(step)
    if start is not None and not guard:
        params.append(pytest.param(start, id=_rel(start), marks=pytest.mark.xfail(
            strict=True, reason=f"starting code of step {step}: must fail until the step is done")))
    if not params:  # no silent skip: a test with nothing to run against fails and says why
        params = [pytest.param(None, id="missing")]
    metafunc.parametrize("impl", params)


# --------------------------------------------------------------------------- session resources


def _world_traversable(path: Path) -> bool:
    path = path.resolve()
    for p in [path, *path.parents]:
        if not os.stat(p).st_mode & stat.S_IXOTH:
            return False
    return True


@pytest.fixture(scope="session")
def session_dir():
    """A world-readable temporary directory for the session (nobody must reach the rootfs in it)."""
    base = Path(tempfile.gettempdir())
    if not _world_traversable(base):
        base = Path("/tmp")
    path = Path(tempfile.mkdtemp(prefix="workshop-tests-", dir=base))
    os.chmod(path, 0o755)
    yield path
    _remove_tree(path)


def _remove_tree(path: Path) -> None:
    """rm -r, after detaching anything still mounted below PATH (never delete through a mount)."""
    below = [m.mountpoint for m in testing.mounts()
             if m.mountpoint == str(path) or m.mountpoint.startswith(str(path) + "/")]
    for mountpoint in sorted(below, key=len, reverse=True):
        subprocess.run(["umount", "-l", mountpoint], capture_output=True, timeout=10, check=False)
    if any(m.mountpoint.startswith(str(path) + "/") for m in testing.mounts()):
        return  # still mounted: leave it rather than delete the host's files through it
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def session_token():
    return testing.token("s")


@pytest.fixture(scope="session")
def rootfs(session_dir) -> Path:
    """The session's busybox root filesystem (treat it as read-only; see private_rootfs)."""
    try:
        return rootfs_builder.build_rootfs(session_dir / "rootfs")
    except (rootfs_builder.RootfsError, OSError) as e:
        pytest.fail(f"cannot build the busybox root filesystem: {e}")


@pytest.fixture
def private_rootfs(rootfs, session_dir) -> Path:
    """A copy of the rootfs for this test alone (hard links: add files, do not modify the old ones)."""
    dest = Path(tempfile.mkdtemp(prefix="rootfs-", dir=session_dir))
    os.rmdir(dest)
    rootfs_builder.clone_rootfs(rootfs, dest)
    yield dest
    _remove_tree(dest)


@pytest.fixture(scope="session")
def _shared_impls(session_dir):
    """World-readable copies of implementation folders, for runs as nobody."""
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
def _nobody_home(session_dir) -> Path:
    home = session_dir / "home-nobody"
    home.mkdir(exist_ok=True)
    os.chown(home, testing.NOBODY, testing.NOBODY)
    return home


@pytest.fixture
def udocker(request, impl, _shared_impls, _nobody_home, session_token) -> testing.Udocker:
    """The implementation under test: .run(...) and .popen(...) its CLI."""
    if impl is None:
        step = step_of(request.node.path)
        pytest.fail(f"no implementation to test: neither solutions/stepK (K >= {step}) nor steps/step{step} "
                    "exists; run `python3 -m workshop.generate`, or pass --impl DIR" if step is not None
                    else "this test needs --impl DIR", pytrace=False)
    if not (Path(impl) / "udocker" / "__main__.py").is_file():
        pytest.fail(f"no udocker package in {impl}: expected {impl}/udocker/__main__.py", pytrace=False)
    impl = Path(impl)
    return testing.Udocker(impl=impl, shared_impl=_shared_impls(impl), session=session_token, home=_nobody_home)


# --------------------------------------------------------------------------- nothing left behind


@pytest.fixture(autouse=True)
def nothing_left_behind(request, session_token, session_dir, tmp_path_factory):
    """Fail a step test that leaves a mount, a udocker* cgroup, a process or a udocker* temp file."""
    if step_of(request.node.path) is None:
        yield
        return
    before = testing.snapshot()
    yield
    paths = [str(session_dir), str(tmp_path_factory.getbasetemp())]
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        problems = testing.leftovers(before, session_token, paths, mount_dirs=[str(ROOT)])
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if problems:
        testing.clean_up(problems, before, session_token, paths)
        pytest.fail("the test left this behind on the host:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def nothing_left_on_the_network(request):
    """Fail a step test that changed the host's network, left a network namespace or a lease behind.

    The host's own links, addresses, routes, listening sockets, nftables ruleset and
    ip_forward (workshop/netsandbox.py), and the leases of UDOCKER_RUN_DIR (/run/udocker).
    Only for implementations with a network (step 9 on: udocker/network.py), and guards.
    """
    if step_of(request.node.path) is None or not _may_network(request):
        yield
        return
    from workshop import netsandbox

    before, leases = netsandbox.snapshot(), _leases()
    yield
    problems = netsandbox.wait_for_no_leftovers(before)
    problems += [f"lease {path}" for path in sorted(_leases() - leases)]
    if problems:
        pytest.fail("the test left this behind on the host's network:\n  " + "\n  ".join(problems), pytrace=False)


def _may_network(request) -> bool:
    """Does the test's implementation make networks (or has the test none, a guard)?"""
    impl = getattr(getattr(request.node, "callspec", None), "params", {}).get("impl")
    return impl is None or (Path(impl) / "udocker" / "network.py").exists()


def _leases() -> set[str]:
    root = Path(os.environ.get("UDOCKER_RUN_DIR", "/run/udocker")) / "leases"
    return {str(path) for path in root.glob("*/*") if path.name != "lock"}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed check shows its hint and what to read, from workshop/steps.toml (the one place for them)."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    step = step_of(item.path)
    if step is None:
        return
    from workshop import meta

    hint = meta.check_hint(step, item.name)
    if hint:
        read = ", ".join(meta.check_read(step, item.name))
        report.sections.append(("hint", f"{hint}\nread: {read}" if read else hint))
