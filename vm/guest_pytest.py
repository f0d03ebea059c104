"""Run the cgroup-v2 lane's checks in ONE Python process, framed by lane markers.

Used by vm/guest-suite.sh, inside the cgroup-v2 VM: under software emulation
starting Python and importing pytest costs 10-20 s, so the pytest sessions
share one interpreter. CHECKS-FILE holds one check a line, NAME=WHAT: WHAT is
@FUNCTION (a shell check of vm/guest-suite.sh) or pytest's arguments (split
like a shell would):

    pure-cgroup-v2=@pure_v2
    step6-on-solutions-step6=tests/step6 --impl solutions/step6

    python3 vm/guest_pytest.py CHECKS-FILE
"""

import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.getcwd())  # as `python -m pytest` does: the repository's own packages first

import pytest  # noqa: E402

COMMON = ["-p", "no:cacheprovider", "-v", "--color=no", "--tb=short"]


def uptime():
    with open("/proc/uptime") as f:
        return f.read().split()[0]


def run_pytest(args: list[str]) -> int:
    missing = [a for a in args if not a.startswith("-") and "/" in a and not os.path.exists(a)]
    if missing:
        print(f"{', '.join(missing)}: no such folder in {os.getcwd()}", flush=True)
        return 3
    print(f"$ pytest {shlex.join(args)}", flush=True)
    start = time.monotonic()
    try:
        rc = int(pytest.main(args + COMMON))
    except BaseException as error:  # pytest itself broke: still close the check
        print(f"pytest.main raised {error!r}", flush=True)
        rc = 4
    if rc == pytest.ExitCode.NO_TESTS_COLLECTED:
        print(f"no test was selected by `pytest {shlex.join(args)}`: the suite has none for this check", flush=True)
    print(f"({time.monotonic() - start:.0f} s)", flush=True)
    return rc


def run_shell_check(function: str) -> int:
    return subprocess.call(["sh", "vm/guest-suite.sh", "--check", function], stderr=subprocess.STDOUT)


def main(checks_file: str) -> int:
    with open(checks_file) as f:
        specs = [line.strip() for line in f if line.strip()]
    for spec in specs:
        name, _, what = spec.partition("=")
        print(f"@@VMLANE BEGIN {name} uptime={uptime()}", flush=True)
        rc = run_shell_check(what[1:]) if what.startswith("@") else run_pytest(shlex.split(what))
        print(f"@@VMLANE END {name} rc={rc} uptime={uptime()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
