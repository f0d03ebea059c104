"""workshop/netsandbox.py: the sandbox builds its world and takes it all away; the leak check sees leaks."""
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from netsupport import check, nothing_left_on_the_network  # noqa: E402,F401
from workshop import netsandbox  # noqa: E402


def test_sandbox_and_remote_are_removed(tmp_path):
    before = netsandbox.snapshot()
    box = netsandbox.Sandbox(tmp_path)
    remote = box.add_remote()
    during = netsandbox.snapshot()
    check({box.inode, remote.inode} <= during.netns, "both namespaces alive", during.netns)
    sleeper = remote.popen(["sleep", "30"])
    got = box.run(["ip", "-j", "route", "get", netsandbox.INTERNET], check=True).stdout
    check(f'"gateway":"{netsandbox.UPLINK_REMOTE}"' in got, f"the internet via {netsandbox.UPLINK_REMOTE}", got)
    killed = box.close()
    sleeper.wait(5)
    check(len(killed) == 1 and "sleep 30" in killed[0], "close() killing the sleeper and saying so", killed)
    check(not list(tmp_path.iterdir()), "no namespace file left", list(tmp_path.iterdir()))
    check(netsandbox.wait_for_no_leftovers(before) == [], "nothing left", netsandbox.leftovers(before))


def test_the_remote_sees_the_sandbox_uplink(tmp_path):
    with netsandbox.Sandbox(tmp_path) as box:
        remote = box.add_remote()
        server = remote.socket()
        server.bind((netsandbox.INTERNET, 7000))
        server.listen()
        with box.connect((netsandbox.INTERNET, 7000)):
            conn, peer = server.accept()
            conn.close()
        server.close()
    check(peer[0] == netsandbox.UPLINK_HOST, f"the sandbox's uplink {netsandbox.UPLINK_HOST}", peer[0])


def test_leftovers_sees_a_namespace_kept_by_a_process():
    before = netsandbox.snapshot()
    leak = subprocess.Popen(["unshare", "--net", "sleep", "30"])
    try:
        found = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [p for p in netsandbox.leftovers(before) if "network namespace" in p]
            if found:
                break
            time.sleep(0.02)
        check(len(found) == 1 and f"process {leak.pid}" in found[0], "the leaked namespace and its process", found)
    finally:
        leak.kill()
        leak.wait()


def test_leftovers_sees_host_changes():
    """A change of the host's links, addresses, routes, listening sockets or ruleset is reported (simulated)."""
    now = netsandbox.snapshot()
    faked = dataclasses.replace(now, links=now.links - {("lo", "")}, listening=now.listening | {"127.0.0.1:1"},
                                nat=now.nat + "table ip x {}")
    problems = netsandbox.leftovers(faked, now)
    check(any("new link ('lo', '')" in p for p in problems), "a new link reported", problems)
    check(any("listening socket 127.0.0.1:1 is gone" in p for p in problems), "a closed listener reported", problems)
    check(any("ruleset changed" in p for p in problems), "the ruleset change reported", problems)


def test_listening_sockets_are_per_namespace(tmp_path):
    with netsandbox.Sandbox(tmp_path) as box:
        server = box.socket()
        server.bind(("127.0.0.1", 7001))
        server.listen()
        try:
            check(box.listening() == {"127.0.0.1:7001"}, "the sandbox's listener seen there", box.listening())
            check("127.0.0.1:7001" not in netsandbox.listening_sockets(), "not on the host", "it is")
        finally:
            server.close()
