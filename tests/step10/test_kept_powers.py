"""Step 10: what a locked-down container can still do, as under docker, and the capability that allows it.

ping needs CAP_NET_RAW (a raw ICMP socket), a server on port 80 CAP_NET_BIND_SERVICE
(ports below 1024): both are in docker's default set, and --cap-drop takes them away.
The network: a namespace the test makes, with lo up (lockdownsupport.netns_prefix),
so that nothing reaches the host's network; step 9's runtime makes the container's
own namespace inside it. Rootless, the same lockdown applies in its user namespace.
"""
import os
import re

from lockdownsupport import DOCKER_MASK, MASKED_PATHS, Running, expect_ok, expect_refused, mask_text, netns_prefix
from lockdownsupport import outcomes
from workshop.testing import token

PING = "try ping busybox ping -c 1 -W 2 127.0.0.1"


def test_ping_works_with_net_raw(udocker, rootfs):
    with Running(udocker, rootfs, script=PING, prefix=netns_prefix()) as box:
        status = box.status()
        result = box.finish()
    expect_ok(result, outcomes(result), ["ping"], " (CAP_NET_RAW is in docker's default set)")
    result.check(status["CapEff"] == mask_text(DOCKER_MASK), f"CapEff {mask_text(DOCKER_MASK)}", status["CapEff"])
    with Running(udocker, "--cap-drop", "NET_RAW", rootfs, script=PING, prefix=netns_prefix()) as box:
        result = box.finish()
    tried = outcomes(result)
    result.check(tried.get("ping", "").startswith("failed"), "ping to fail with --cap-drop NET_RAW (no raw socket)",
                 tried.get("ping", "no line"))


def _serve(page_token):
    return (f"busybox mkdir -p /dev/www; echo {page_token} > /dev/www/index.html\n"
            "busybox httpd -f -p 80 -h /dev/www 2>/dev/httpd.err & sleep 0.3\n"
            "for i in 1 2 3 4 5 6 7 8 9 10; do busybox wget -q -O /dev/page http://127.0.0.1/ && break; "
            "sleep 0.2; done\n"
            "echo page=$(cat /dev/page 2>/dev/null) httpd=$(cat /dev/httpd.err)\n")


def _listening_on_80(pid):
    """Is a socket of the process's network namespace listening on TCP port 80 (/proc/PID/net/tcp, tcp6)?"""
    rows = []
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as file:
                rows += [line.split() for line in file.readlines()[1:]]
        except FileNotFoundError:  # a kernel without IPv6
            pass
    return any(row[1].endswith(":0050") and row[3] == "0A" for row in rows)  # 0A: LISTEN


def test_a_server_binds_port_80(udocker, rootfs):
    page = token("page")
    with Running(udocker, rootfs, script=_serve(page), prefix=netns_prefix()) as box:
        listening = _listening_on_80(box.pid)
        status = box.status()
        result = box.finish()
    result.check(f"page={page}" in result.stdout, f"httpd on port 80 to serve its page {page!r}", repr(result.stdout))
    result.check(listening, f"a socket listening on port 80 in /proc/{box.pid}/net/tcp or tcp6", "none")
    result.check(status["CapEff"] == mask_text(DOCKER_MASK), f"CapEff {mask_text(DOCKER_MASK)}", status["CapEff"])
    with Running(udocker, "--cap-drop", "NET_BIND_SERVICE", rootfs, script=_serve(page), prefix=netns_prefix()) as box:
        listening = _listening_on_80(box.pid)
        result = box.finish()
    result.check(not listening and f"page={page}" not in result.stdout,
                 "with --cap-drop NET_BIND_SERVICE, httpd unable to bind port 80", repr(result.stdout))


def test_a_rootless_container_gets_the_same_lockdown(udocker, rootfs):
    script = "try mount busybox mount -t tmpfs tmpfs /tmp\ntry sys sh -c 'echo x > /sys/kernel/udocker-test'"
    with Running(udocker, rootfs, script=script, as_user=True) as box:
        status = box.status()
        mounts = box.mounts()
        result = box.finish()
    got = {k: status[k] for k in ("CapBnd", "CapEff", "CapPrm", "Seccomp")}
    wanted = {"CapBnd": mask_text(DOCKER_MASK), "CapEff": mask_text(DOCKER_MASK), "CapPrm": mask_text(DOCKER_MASK),
              "Seccomp": "2"}
    result.check(got == wanted, f"{wanted} in /proc/{box.pid}/status (inside its user namespace)", str(got))
    tried = outcomes(result)
    expect_refused(result, tried, ["mount"])
    expect_refused(result, tried, ["sys"], pattern=re.compile("Read-only file system"))
    present = [p for p in MASKED_PATHS if p.startswith("/proc/") and os.path.exists(p)]
    uncovered = [p for p in present if p not in mounts]
    result.check(present and not uncovered, f"Docker's masked /proc paths {present} covered "
                 f"(/proc/{box.pid}/mountinfo)", f"uncovered: {uncovered}")
    sys_mount = mounts.get("/sys")
    result.check(sys_mount is not None and "ro" in sys_mount.flags, "/sys mounted read-only", str(sys_mount))
