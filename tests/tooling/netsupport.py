"""Shared support of the tests of step 9's building blocks (test_net_*.py).

* The udocker modules are imported from reference/udocker (netlink, ipam, nat and
  netfiles carry no markers; network.py's command line is given code). The driver
  runs the newest solution's copy (RUNTIME): network.py and proxy.py hold step 9's
  lesson blocks, which only the generated solutions have as they run.
* ``sandbox``: a sandbox network namespace (workshop/netsandbox.py), removed after the test.
* ``nothing_left_on_the_network`` (autouse where imported): the test must leave the
  host's network as it was, no network namespace, no process.
* ``start(...)``: tests/tooling/net_driver.py (a minimal runtime around udocker.network)
  running tests/tooling/net_container.py (an echo server) in the sandbox.

Run these tests under the lock, as every test that creates namespaces:
``flock /tmp/workshop-pytest.lock python -m pytest tests/tooling/test_net_*.py``.
"""
from __future__ import annotations

import os
import shlex
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
REFERENCE = REPO / "reference"
for path in (str(REPO), str(REFERENCE)):
    if path not in sys.path:
        sys.path.insert(0, path)

from workshop import netsandbox, testing  # noqa: E402

#: the newest solutions/stepN with the network modules: what net_driver.py runs
RUNTIME = max((path.parent.parent for path in REPO.glob("solutions/step*/udocker/network.py")),
              key=lambda path: int(path.name.removeprefix("step")))
DRIVER = HERE / "net_driver.py"
CONTAINER = HERE / "net_container.py"
PYTHON = testing.SYSTEM_PYTHON  # a rootless user can run it


@pytest.fixture(autouse=True)
def nothing_left_on_the_network():
    """Fail a test that changed the host's network, or left a namespace or a process behind."""
    before = netsandbox.snapshot()
    pids_before = set(testing.all_pids())
    yield
    problems = netsandbox.wait_for_no_leftovers(before)
    me = os.getpid()
    for pid in sorted(set(testing.all_pids()) - pids_before):
        if pid in testing.descendants(me) or testing.ppid_of(pid) == me:
            problems.append(f"process {pid} ({' '.join(testing.cmdline(pid))}) left running")
            testing.kill_tree(pid)
    if problems:
        pytest.fail("the test left this behind:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def sandbox(tmp_path):
    """A sandbox "host" network namespace (lo up); fails the test if processes were left in it."""
    box = netsandbox.Sandbox(tmp_path / "net")
    print(f"# sandbox network namespace: nsenter --net={box.path}", flush=True)
    try:
        yield box
    finally:
        killed = box.close()
    if killed:
        pytest.fail("processes were still running in the sandbox:\n  " + "\n  ".join(killed), pytrace=False)


@pytest.fixture
def run_dir(tmp_path):
    """UDOCKER_RUN_DIR for the test (leases, locks): never the machine's /run/udocker."""
    path = tmp_path / "run"
    path.mkdir()
    return path


class Driven(testing.Container):
    """A run of net_driver.py: the "container" prints `listening PID` once it serves."""

    container_pid: int | None = None

    def serving(self, timeout: float = testing.DEFAULT_TIMEOUT) -> int:
        """Wait for the echo server; return its pid (on the host)."""
        self.wait_for("listening", timeout)
        line = next(line for line in self.stdout.splitlines() if line.startswith("listening"))
        self.container_pid = int(line.split()[1])
        return self.container_pid


def start(sandbox, *options: str, port: int = 80, user: bool = False, ignore_term: bool = False,
          env: dict | None = None) -> Driven:
    """net_driver.py OPTIONS -- net_container.py PORT, inside the sandbox (as uid 4242 if USER)."""
    # uid 4242 reads them where the checkout may be out of its reach
    driver, container, runtime = (map(testing.world_readable, (DRIVER, CONTAINER, RUNTIME)) if user
                                  else (DRIVER, CONTAINER, RUNTIME))
    inner = [PYTHON, str(driver), *options, "--", PYTHON, str(container), str(port)]
    if ignore_term:
        inner.append("--ignore-term")
    if user:
        inner = [*testing.SETPRIV, *inner]
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(runtime),
                "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    shown = f"nsenter --net={sandbox.path} -- " + " ".join(shlex.quote(a) for a in inner)
    return Driven(sandbox.argv(inner), shown, full_env, str(REPO))


def exchange(sock, payload: bytes, timeout: float = testing.DEFAULT_TIMEOUT) -> bytes:
    """Send PAYLOAD, half-close, read to end-of-file: the echo server answers PAYLOAD + b'bye'."""
    sock.settimeout(timeout)
    sock.sendall(payload)
    sock.shutdown(1)  # SHUT_WR
    return read_all(sock)


def read_all(sock) -> bytes:
    received = bytearray()
    while chunk := sock.recv(1 << 16):
        received += chunk
    return bytes(received)


def wait_until(condition, timeout: float = 5.0, interval: float = 0.02):
    """CONDITION() until it is true (returned) or TIMEOUT (its last value returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def check(ok: bool, expected: str, got) -> None:
    """The tests' assertion: expected X, got Y."""
    if not ok:
        raise AssertionError(f"expected {expected}, got {got}")
