"""reference/udocker/nat.py, inside a sandbox namespace only: the rule, once, listed by nft or iptables there.

nat.py runs nft/iptables as subprocesses; they start from a thread that joined
the sandbox (Sandbox.call), so they act on the sandbox's ruleset. The leak
check proves that the host's ruleset and ip_forward did not change.
"""
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import check, nothing_left_on_the_network, run_dir, sandbox  # noqa: E402,F401
from udocker import nat  # noqa: E402

SUBNET = "10.88.0.0/24"
TOOLS = [pytest.param(tool, id=tool) for tool in ("nft", "iptables")]


@pytest.fixture(autouse=True)
def private_run_dir(run_dir, monkeypatch):
    monkeypatch.setenv("UDOCKER_RUN_DIR", str(run_dir))


def rules(sandbox, tool):
    """The sandbox's masquerade rules, as the tool lists them."""
    if tool == "nft":
        listing = sandbox.run(["nft", "list", "ruleset"], check=True).stdout
        return [line.strip() for line in listing.splitlines() if "masquerade" in line]
    listing = sandbox.run(["iptables", "-t", "nat", "-S", "POSTROUTING"], check=True).stdout
    return [line for line in listing.splitlines() if "MASQUERADE" in line]


def test_tools_are_installed():
    """The NAT tests need both nft and iptables (setup.sh: apt-get install nftables iptables)."""
    missing = [tool for tool in ("nft", "iptables") if not shutil.which(tool)]
    check(not missing, "nft and iptables on PATH", f"missing {missing}")


@pytest.mark.parametrize("tool", TOOLS)
def test_enable_adds_one_rule_once(sandbox, tool):
    check(rules(sandbox, tool) == [], "no masquerade rule in a new namespace", rules(sandbox, tool))
    added = sandbox.call(nat.enable, SUBNET, "udocker0", tool)
    again = sandbox.call(nat.enable, SUBNET, "udocker0", tool)
    check((added, again) == (True, False), "enable() True the first time, False the second", (added, again))
    found = rules(sandbox, tool)
    expected = (['ip saddr 10.88.0.0/24 oifname != "udocker0" masquerade'] if tool == "nft"
                else ["-A POSTROUTING -s 10.88.0.0/24 ! -o udocker0 -j MASQUERADE"])
    check(found == expected, f"exactly {expected}", found)
    check(sandbox.call(nat.enabled, SUBNET, "udocker0", tool), "enabled() True", "False")
    forward = sandbox.run(["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.strip()
    check(forward == "1", "ip_forward 1 in the sandbox", forward)


@pytest.mark.parametrize("tool", TOOLS)
def test_remove(sandbox, tool):
    sandbox.call(nat.enable, SUBNET, "udocker0", tool)
    sandbox.call(nat.enable, "10.99.0.0/24", "udocker0", tool)  # another subnet: a second rule
    check(len(rules(sandbox, tool)) == 2, "two rules for two subnets", rules(sandbox, tool))
    check(sandbox.call(nat.remove, "udocker0", tool) is True, "remove() True", "False")
    check(rules(sandbox, tool) == [], "no masquerade rule after remove()", rules(sandbox, tool))
    check(sandbox.call(nat.remove, "udocker0", tool) is False, "remove() False when there is nothing", "True")
    check(not sandbox.call(nat.enabled, SUBNET, "udocker0", tool), "enabled() False", "True")


def test_remove_keeps_other_rules(sandbox):
    """remove() takes only udocker's rule: someone else's masquerade rule stays."""
    sandbox.run(["iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "172.17.0.0/16", "!", "-o", "docker0",
                 "-j", "MASQUERADE"], check=True)
    sandbox.call(nat.enable, SUBNET, "udocker0", "iptables")
    sandbox.call(nat.remove, "udocker0", "iptables")
    check(rules(sandbox, "iptables") == ["-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE"],
          "docker0's rule kept", rules(sandbox, "iptables"))


def test_concurrent_enables_add_one_rule(sandbox):
    """Eight runtimes enabling NAT at once (the lock) end with one rule."""
    import threading

    errors = []

    def enable():
        try:
            sandbox.call(nat.enable, SUBNET, "udocker0", "iptables")
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=enable) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check(not errors, "no error", errors)
    check(len(rules(sandbox, "iptables")) == 1, "one rule", rules(sandbox, "iptables"))


def test_backend_prefers_nft():
    check(nat.backend() == "nft", "nft chosen when installed", nat.backend())
