"""The pure cgroup-v2 lane: the runtime's cgroup v2 code, tested for real.

This machine and CI mount cgroups "hybrid" (the controllers live in v1), while
learners' VMs (Ubuntu 24.04, Debian 12) have pure cgroup v2. So this module
boots a small qemu VM (software emulation) with Debian's kernel, a busybox
initramfs and the host's root file system shared read-only over 9p with a
tmpfs overlay (vm/init), and runs vm/guest-suite.sh inside: tests/step6 against
solutions/step6 and the newest solution, the cgroup tests of tests/step8
against the newest solution, a check of each mechanism of tests/step9 (its
sandbox networks need no network of the guest's) and of tests/step10 (a cgroup
namespace and a read-only cgroup2 mount) (:func:`lane`, the one list of the
lane's checks). One boot for everything; each guest check becomes one test
result here, and a
failing one shows the guest's output.

The kernel and initramfs are cached in /var/cache/container-workshop/vm
(``setup.sh --with-vm-lane``); when they are missing this module prepares them
with the same script (vm/prepare.sh), and fails with the reason when it cannot.
The whole guest log of the last run is kept in that folder as last-run.log.
It takes about 3 minutes (WORKSHOP_VM_TIMEOUT, default 1200 s, counts as hung).
Deselect the lane with ``-m "not vm"``. Details: vm/README.md. On a machine that is
itself pure cgroup v2 (the workshop's VM, say), the same checks run natively, without qemu.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from workshop import paths

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "vm"
CACHE = Path(os.environ.get("WORKSHOP_VM_CACHE", "/var/cache/container-workshop/vm"))
#: the whole boot may take this long before it counts as hung (TCG is slow)
TIMEOUT = int(os.environ.get("WORKSHOP_VM_TIMEOUT", "1200"))

#: the steps whose suites the lane runs: the cgroups (6) and running images (8, its cgroup tests)
CGROUP_STEP, IMAGE_STEP = 6, 8
IMAGE_CGROUP_TESTS = "cgroup or memory or cpus or pids or limit"
#: step 9 on a distribution kernel (veth, bridge, nftables as modules): one check of each
#: mechanism; the whole suite passes there too, but takes 4 more minutes (258 s)
NETWORK_STEP = 9
NETWORK_TESTS = ("none_has_only or lo_down or rootless_container_has or eth0_has or internet_through_nat"
                 " or two_containers or after_exit or publish_in or publish_rootless or exit_status_with"
                 " or stop_timeout")

#: step 10 where it meets cgroup v2 (a cgroup namespace, one read-only cgroup2 mount), with one
#: check of each other mechanism on a distribution kernel (capabilities, seccomp, a read-only /sys)
LOCKDOWN_STEP = 10
LOCKDOWN_TESTS = ("memory_cgroup_cannot_be_escaped or ipc_and_cgroup_namespaces or sys_is_read_only"
                  " or dockers_14_capabilities or seccomp_filter_is_on")


def lane() -> list[tuple[str, str]]:
    """The lane's checks, in order: (name, what vm/guest-suite.sh runs: @FUNCTION, one of its
    shell checks, or pytest's arguments). The newest solution is always among them."""
    newest = max(paths.step_folders("solutions"))
    checks = [("pure-cgroup-v2", "@pure_v2")]
    for k in sorted({CGROUP_STEP, newest}):
        checks.append((f"step{CGROUP_STEP}-on-solutions-step{k}", f"tests/step{CGROUP_STEP} --impl solutions/step{k}"))
    # the part of a later step's suite that meets cgroup v2 or a distribution kernel: (step, what, -k)
    subsets = ((IMAGE_STEP, "-cgroups", IMAGE_CGROUP_TESTS), (NETWORK_STEP, "", NETWORK_TESTS),
               (LOCKDOWN_STEP, "", LOCKDOWN_TESTS))
    for step, what, keyword in subsets:
        if newest >= step:
            checks.append((f"step{step}{what}-on-solutions-step{newest}",
                           f"tests/step{step} --impl solutions/step{newest} -k '{keyword}'"))
    checks.append(("no-leftover-cgroups", "@no_leftovers"))
    return checks


CHECKS = [name for name, _ in lane()]


def _write_checks(folder: Path) -> Path:
    """The checks file vm/guest-suite.sh reads (under FOLDER: the guest sees it there too)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "lane-checks"
    path.write_text("".join(f"{name}={what}\n" for name, what in lane()))
    return path

MARKER = re.compile(r"^@@VMLANE (?P<what>[A-Z-]+)(?: (?P<name>[\w.-]+))?(?P<rest>.*)$")

pytestmark = pytest.mark.vm


class GuestRun:
    """What one boot of the lane printed, cut into the checks' sections."""

    def __init__(self, output: str, seconds: float, returncode: int):
        self.output = output
        self.seconds = seconds
        self.returncode = returncode
        self.sections: dict[str, list[str]] = {}
        self.status: dict[str, int] = {}
        self.finished = False
        self.init_failure = None
        current = None
        for line in output.splitlines():
            line = line.rstrip("\r")
            m = MARKER.match(line)
            if not m:
                if current is not None:
                    self.sections[current].append(line)
                continue
            what, name, rest = m["what"], m["name"], m["rest"]
            if what == "BEGIN":
                current = name
                self.sections[name] = []
            elif what == "END":
                rc = re.search(r"rc=(\d+)", rest)
                self.status[name] = int(rc.group(1)) if rc else -1
                current = None
            elif what == "ALL-DONE":
                self.finished = True
            elif what == "INIT-FAILED":
                self.init_failure = f"{name}{rest}"

    def tail(self, lines: int = 60) -> str:
        return "\n".join(self.output.splitlines()[-lines:])


def _fail_setup(reason: str) -> None:
    pytest.fail(f"cgroup-v2 lane: {reason}", pytrace=False)


@pytest.fixture(scope="module")
def guest() -> GuestRun:
    """Boot the VM once, run every check in it, and return what it printed."""
    python = sys.executable
    # The guest's /tmp is empty: keep the folders it needs when they are under /tmp.
    keep = sorted({str(REPO), str(CACHE), sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(python))})
    if os.geteuid() != 0:
        _fail_setup("needs root (qemu's 9p share of / and the guest's root are root's); run pytest as root")

    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        # This machine already is what learners have (pure cgroup v2, e.g. the workshop's
        # Ubuntu VM): run the same checks here, natively, instead of in an emulated VM.
        start = time.monotonic()
        checks = _write_checks(Path(tempfile.mkdtemp(prefix="workshop-vm-lane-")))
        native = subprocess.run(["sh", str(VM / "guest-suite.sh"), python, str(checks)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                timeout=TIMEOUT)
        shutil.rmtree(checks.parent, ignore_errors=True)
        run = GuestRun(native.stdout.decode(errors="replace"), time.monotonic() - start, native.returncode)
        print(f"\ncgroup-v2 lane: this machine is pure cgroup v2 itself; {len(run.status)} checks ran here, "
              f"without a VM, in {run.seconds:.0f} s")
        if not run.sections:
            _fail_setup(f"vm/guest-suite.sh ran no check (exit {native.returncode}):\n{run.tail()}")
        return run

    prepare = subprocess.run(
        [str(VM / "prepare.sh"), "--quiet"], capture_output=True, text=True, timeout=900
    )
    if prepare.returncode != 0:
        _fail_setup(
            "cannot prepare the VM (kernel, initramfs, qemu) with vm/prepare.sh, "
            f"exit {prepare.returncode}:\n{prepare.stdout}{prepare.stderr}"
        )

    command = f"sh {VM / 'guest-suite.sh'} {python} {_write_checks(CACHE)}"
    start = time.monotonic()
    try:
        boot = subprocess.run(
            [str(VM / "boot.sh"), "--timeout", str(TIMEOUT), *(a for k in keep for a in ("--keep", k)), command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            timeout=TIMEOUT + 120,
        )
        output, returncode = boot.stdout.decode(errors="replace"), boot.returncode
    except subprocess.TimeoutExpired as e:
        output, returncode = (e.stdout or b"").decode(errors="replace"), -1
    seconds = time.monotonic() - start
    try:
        (CACHE / "last-run.log").write_text(output)
    except OSError:
        pass
    run = GuestRun(output, seconds, returncode)
    print(f"\ncgroup-v2 lane: one VM boot ran {len(run.status)} checks in {seconds:.0f} s "
          f"(guest log: {CACHE / 'last-run.log'})")
    if run.init_failure:
        _fail_setup(f"the guest's /init failed: {run.init_failure}\n{run.tail()}")
    if not run.sections:
        _fail_setup(f"the VM ran no check (qemu exit {returncode}, {seconds:.0f} s); its output ends with:\n{run.tail()}")
    unknown = set(run.sections) - set(CHECKS)
    if unknown:
        _fail_setup(f"vm/guest-suite.sh ran checks that lane() does not list: {sorted(unknown)}")
    return run


@pytest.mark.parametrize("check", CHECKS)
def test_cgroup_v2(guest: GuestRun, check: str) -> None:
    if check not in guest.sections:
        pytest.fail(
            f"the guest never started check {check!r} (hung, crashed or timed out after "
            f"{guest.seconds:.0f} s; qemu exit {guest.returncode}); its output ends with:\n{guest.tail()}",
            pytrace=False,
        )
    body = "\n".join(guest.sections[check])
    if check not in guest.status:
        pytest.fail(
            f"check {check!r} did not finish (the VM stopped after {guest.seconds:.0f} s, "
            f"timeout {TIMEOUT} s); its output:\n{body}\n--- end of guest output:\n{guest.tail(15)}",
            pytrace=False,
        )
    rc = guest.status[check]
    if rc != 0:
        pytest.fail(f"check {check!r} failed in the cgroup-v2 VM (exit {rc}); its output:\n{body}", pytrace=False)
