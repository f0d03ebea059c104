"""workshop clean, step 9's part (Cleaner.network): stale leases, and with --network the NAT rule and
the bridge, unless a running container uses them. All of it inside a sandbox namespace."""
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import check, nothing_left_on_the_network, run_dir, sandbox  # noqa: E402,F401
from udocker import ipam, nat  # noqa: E402
from workshop.clean import Cleaner  # noqa: E402

LEASES = "10.88.0.0-24"


def lease(run_dir, address, pid, start="1", boot=None):
    """A lease file as ipam writes it: '<container id> <pid> <start time> <boot id>'."""
    directory = run_dir / "leases" / LEASES
    directory.mkdir(parents=True, exist_ok=True)
    boot = boot or Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    (directory / address).write_text(f"c0ffee{address[-1]}00000 {pid} {start} {boot}\n")
    return directory / address


def my_start_time():
    return Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]


def udocker_world(sandbox):
    """What --network bridge leaves in the host's namespace: udocker0 and the masquerade rule."""
    sandbox.run(["ip", "link", "add", "udocker0", "type", "bridge"], check=True)
    sandbox.call(nat.enable, ipam.subnet(), "udocker0")


def names(sandbox):
    return {link["ifname"] for link in sandbox.ip_json("link")}


def has_rule(sandbox):
    return sandbox.run(["nft", "list", "table", "ip", nat.TABLE]).returncode == 0


def test_stale_leases_and_with_network_the_rule_and_the_bridge(sandbox, run_dir, monkeypatch):
    monkeypatch.setenv("UDOCKER_RUN_DIR", str(run_dir))
    udocker_world(sandbox)
    stale = lease(run_dir, "10.88.0.2", 999999999)
    cleaner = Cleaner(run_dir / "root")
    plan = sandbox.call(cleaner.network, True, True)
    check([(a.kind, a.done) for a in plan] == [("lease", False), ("nat", False), ("bridge", False)],
          "a dry run listing the lease, the rule and the bridge", plan)
    check(stale.exists() and "udocker0" in names(sandbox) and has_rule(sandbox), "nothing removed by the dry run",
          "something was")
    done = sandbox.call(cleaner.network, True)
    check([(a.kind, a.done) for a in done] == [("lease", True), ("nat", True), ("bridge", True)],
          "the lease released, the rule and the bridge removed", done)
    check(not stale.exists() and "udocker0" not in names(sandbox) and not has_rule(sandbox),
          "no lease, no udocker0, no udocker table", (stale.exists(), names(sandbox), has_rule(sandbox)))


def test_without_network_the_rule_and_the_bridge_stay(sandbox, run_dir, monkeypatch):
    monkeypatch.setenv("UDOCKER_RUN_DIR", str(run_dir))
    udocker_world(sandbox)
    stale = lease(run_dir, "10.88.0.2", 999999999)
    done = sandbox.call(Cleaner(run_dir / "root").network)
    check([(a.kind, a.done) for a in done] == [("lease", True)], "only the stale lease released", done)
    check(not stale.exists() and "udocker0" in names(sandbox) and has_rule(sandbox), "the rule and bridge kept",
          (stale.exists(), names(sandbox), has_rule(sandbox)))


def test_a_running_container_keeps_the_rule_and_the_bridge(sandbox, run_dir, monkeypatch):
    """A live lease (here: this very process holds it) or a veth on udocker0 means a container runs."""
    monkeypatch.setenv("UDOCKER_RUN_DIR", str(run_dir))
    udocker_world(sandbox)
    live = lease(run_dir, "10.88.0.3", os.getpid(), my_start_time())
    stale = lease(run_dir, "10.88.0.2", 999999999)
    cleaner = Cleaner(run_dir / "root")
    done = sandbox.call(cleaner.network, True)
    check([(a.kind, a.done) for a in done] == [("lease", True)] and not stale.exists() and live.exists(),
          "the stale lease released, the live one kept", done)
    check({a.kind for a in cleaner.skipped} == {"nat", "bridge"} and "10.88.0.3" in cleaner.skipped[0].detail,
          "the rule and the bridge left alone, naming the live lease", cleaner.skipped)
    check("udocker0" in names(sandbox) and has_rule(sandbox), "udocker0 and the rule still there", names(sandbox))
    live.unlink()
    sandbox.run(["ip", "link", "add", "veth0", "type", "veth", "peer", "name", "ceth0"], check=True)
    sandbox.run(["ip", "link", "set", "veth0", "master", "udocker0"], check=True)
    cleaner = Cleaner(run_dir / "root")
    done = sandbox.call(cleaner.network, True)
    check(done == [] and any("veth0" in a.detail for a in cleaner.skipped), "a veth on udocker0 keeps them too",
          (done, cleaner.skipped))
