"""The pure cgroup-v2 lane: the runtime's cgroup v2 code, tested for real.

This machine and CI mount cgroups "hybrid" (the controllers live in v1), while
learners' VMs (Ubuntu 24.04, Debian 12) have pure cgroup v2. So this module
boots a small qemu VM (software emulation) with Debian's kernel, a busybox
initramfs and the host's root file system shared read-only over 9p with a
tmpfs overlay (vm/init), and runs vm/guest-suite.sh inside: tests/step6 against
solutions/step6 and solutions/step8, the cgroup tests of tests/step8, and
tests/step9 (its sandbox networks need no network of the guest's). One
boot for everything; each guest check becomes one test result here, and a
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
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "vm"
CACHE = Path(os.environ.get("WORKSHOP_VM_CACHE", "/var/cache/container-workshop/vm"))
#: the whole boot may take this long before it counts as hung (TCG is slow)
TIMEOUT = int(os.environ.get("WORKSHOP_VM_TIMEOUT", "1200"))

#: the checks vm/guest-suite.sh runs, in order (keep both lists in step)
CHECKS = (
    "pure-cgroup-v2",
    "step6-on-solutions-step6",
    "step6-on-solutions-step8",
    "step8-cgroups-on-solutions-step8",
    "step9-on-solutions-step9",
    "no-leftover-cgroups",
)

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
    keep = sorted({str(REPO), sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(python))})
    if os.geteuid() != 0:
        _fail_setup("needs root (qemu's 9p share of / and the guest's root are root's); run pytest as root")

    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):
        # This machine already is what learners have (pure cgroup v2, e.g. the workshop's
        # Ubuntu VM): run the same checks here, natively, instead of in an emulated VM.
        start = time.monotonic()
        native = subprocess.run(["sh", str(VM / "guest-suite.sh"), python], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
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

    command = f"sh {VM / 'guest-suite.sh'} {python}"
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
        _fail_setup(f"vm/guest-suite.sh ran checks this module does not know: {sorted(unknown)}; update CHECKS")
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
