"""reference/udocker/ipam.py: addresses leased under a lock, one file per container, reclaimed from the dead.

Pure file work in a test directory (UDOCKER_RUN_DIR): no namespace needed.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import PYTHON, REFERENCE, check, nothing_left_on_the_network, run_dir, wait_until  # noqa: E402,F401
from udocker import ipam  # noqa: E402
from udocker.errors import UdockerError  # noqa: E402

ALLOCATE = """
import os, sys, time
from udocker import ipam
go = sys.argv[1]
while not os.path.exists(go):   # all start together: the race is real
    time.sleep(0.001)
lease = ipam.allocate(sys.argv[2])
print(lease.address, flush=True)
sys.stdin.readline()             # hold the lease until told
lease.release()
"""


@pytest.fixture
def env(run_dir, monkeypatch):
    monkeypatch.setenv("UDOCKER_RUN_DIR", str(run_dir))
    monkeypatch.delenv("UDOCKER_SUBNET", raising=False)
    return {"PYTHONPATH": str(REFERENCE), "PYTHONDONTWRITEBYTECODE": "1", "UDOCKER_RUN_DIR": str(run_dir)}


def holder(env, container_id, go, subnet=None):
    extra = {"UDOCKER_SUBNET": subnet} if subnet else {}
    return subprocess.Popen([PYTHON, "-c", ALLOCATE, str(go), container_id], env={**env, **extra},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_first_lease(env, run_dir):
    """The gateway is .1; the first container gets .2, with the subnet's prefix; the file says who holds it."""
    lease = ipam.allocate("c0ffee000001")
    try:
        check((lease.address, lease.gateway, lease.prefix, lease.cidr) == ("10.88.0.2", "10.88.0.1", 24, "10.88.0.2/24"),
              "10.88.0.2, gateway 10.88.0.1, /24", (lease.address, lease.gateway, lease.prefix, lease.cidr))
        path = run_dir / "leases" / "10.88.0.0-24" / "10.88.0.2"
        fields = path.read_text().split()
        check(fields[:2] == ["c0ffee000001", str(os.getpid())], f"{path} naming the container and pid {os.getpid()}", fields)
        second = ipam.allocate("c0ffee000002")
        check(second.address == "10.88.0.3", "the next container 10.88.0.3", second.address)
        second.release()
    finally:
        lease.release()
    check(not path.exists(), f"{path} removed by release()", "it is still there")


def test_release_frees_the_address(env):
    with ipam.allocate("a") as first:
        address = first.address
    again = ipam.allocate("b")
    check(again.address == address, f"{address} leased again after release", again.address)
    again.release()


def test_release_leaves_anothers_lease(env):
    """A lease that was reclaimed and given to another container is not removed by its old owner."""
    lease = ipam.allocate("old")
    Path(lease.path).write_text(f"new {os.getpid()} {ipam._start_time(os.getpid())} {ipam._boot_id()}\n")
    lease.release()
    check(os.path.exists(lease.path), "the new owner's lease kept", "removed")
    os.unlink(lease.path)


def test_concurrent_allocations_are_distinct(env, tmp_path):
    """24 processes allocating at the same instant get 24 different addresses."""
    go = tmp_path / "go"
    procs = [holder(env, f"c{i:011d}", go) for i in range(24)]
    try:
        time.sleep(0.3)  # let them all start and spin on `go`
        go.touch()
        addresses = [p.stdout.readline().strip() for p in procs]
        check(all(addresses) and len(set(addresses)) == len(addresses), "24 distinct addresses",
              sorted(addresses, key=lambda a: tuple(map(int, a.split(".")))) if all(addresses)
              else [p.stderr.read() for p in procs if p.poll() is not None][:1])
        check(set(addresses) == {f"10.88.0.{n}" for n in range(2, 26)}, "exactly 10.88.0.2 to .25", sorted(addresses))
    finally:
        for p in procs:
            p.communicate("\n", timeout=10)
    check(all(p.returncode == 0 for p in procs), "every holder exiting 0", [p.returncode for p in procs])
    check(ipam.leases() == [], "no lease left once all released", ipam.leases())


def test_dead_holder_is_reclaimed(env, tmp_path, monkeypatch):
    """A /30 has one address for a container: a live holder keeps it, a holder killed with SIGKILL loses it."""
    monkeypatch.setenv("UDOCKER_SUBNET", "10.77.0.0/30")
    go = tmp_path / "go"
    go.touch()
    first = holder(env, "first", go, subnet="10.77.0.0/30")
    try:
        check(first.stdout.readline().strip() == "10.77.0.2", "the holder leasing 10.77.0.2", "something else")
        with pytest.raises(UdockerError) as refused:
            ipam.allocate("second")
        check("no free address left in 10.77.0.0/30" in str(refused.value) and "UDOCKER_SUBNET" in str(refused.value),
              "a message naming the full subnet and UDOCKER_SUBNET", str(refused.value))
        check(ipam.leases() == [("10.77.0.2", "first", True)], "one live lease", ipam.leases())
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=10)
    check(ipam.leases() == [("10.77.0.2", "first", False)], "the lease still there, its holder dead", ipam.leases())
    lease = ipam.allocate("second")
    check(lease.address == "10.77.0.2", "10.77.0.2 reclaimed for the second container", lease.address)
    lease.release()


def test_reused_pid_does_not_keep_a_lease(env, run_dir):
    """A lease naming a live pid with another start time (the pid was reused) is stale; so is a cut-short file."""
    directory = Path(ipam.lease_dir(ipam.subnet()))
    directory.mkdir(parents=True)
    (directory / "10.88.0.2").write_text(f"ghost 1 999999999 {ipam._boot_id()}\n")  # pid 1, not started then
    (directory / "10.88.0.3").write_text("cut sh")
    (directory / "10.88.0.4").write_text(f"other-boot {os.getpid()} {ipam._start_time(os.getpid())} 1234\n")
    check(ipam.reclaim() == ["10.88.0.2", "10.88.0.3", "10.88.0.4"], "the three stale leases reclaimed", ipam.leases())


def test_zombie_holder_is_dead(env, tmp_path):
    """A holder that has exited but is not reaped yet (a zombie) holds nothing."""
    go = tmp_path / "go"
    go.touch()
    proc = holder(env, "zombie", go)
    try:
        check(proc.stdout.readline().strip() == "10.88.0.2", "10.88.0.2 leased", "something else")
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z")
        check(ipam.leases() == [("10.88.0.2", "zombie", False)], "the zombie's lease dead", ipam.leases())
    finally:
        proc.communicate(timeout=10)


@pytest.mark.parametrize("subnet, words", [
    ("10.88.0.0", None),  # a bare address is a /32: too small
    ("10.88.0.1/24", "not an IPv4 subnet"),  # host bits set
    ("fd00::/64", "not an IPv4 subnet"),
    ("nonsense", "not an IPv4 subnet"),
    ("10.88.0.0/31", "too small"),
])
def test_bad_subnet(env, monkeypatch, subnet, words):
    monkeypatch.setenv("UDOCKER_SUBNET", subnet)
    with pytest.raises(UdockerError) as error:
        ipam.allocate("x")
    message = str(error.value)
    check(message.startswith(f"UDOCKER_SUBNET={subnet!r}") and (words or "too small") in message
          and "10.88.0.0/24" in message, f"a message about UDOCKER_SUBNET={subnet!r}", message)


def test_leases_default_to_run():
    """Without UDOCKER_RUN_DIR, leases live on /run (a tmpfs: they cannot outlive a reboot)."""
    env = {k: v for k, v in os.environ.items() if k != "UDOCKER_RUN_DIR"}
    code = "from udocker import ipam; print(ipam.lease_dir(ipam.subnet()))"
    result = subprocess.run([PYTHON, "-c", code], env={**env, "PYTHONPATH": str(REFERENCE)}, capture_output=True,
                            text=True, timeout=10)
    check(result.stdout.strip() == "/run/udocker/leases/10.88.0.0-24", "/run/udocker/leases/10.88.0.0-24",
          result.stdout + result.stderr)
