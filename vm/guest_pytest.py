"""Run several pytest sessions in ONE Python process, framed by lane markers.

Used inside the cgroup-v2 VM by vm/guest-suite.sh: under software emulation
starting Python and importing pytest costs 10-20 s, so the suites share one
interpreter. Each argument is NAME=PYTEST-ARGS (split like a shell would):

    python3 vm/guest_pytest.py "step6-on-solutions-step6=tests/step6 --impl solutions/step6"
"""

import os
import shlex
import sys
import time

sys.path.insert(0, os.getcwd())  # as `python -m pytest` does: the repository's own packages first

import pytest  # noqa: E402

COMMON = ["-p", "no:cacheprovider", "-v", "--color=no", "--tb=short"]


def uptime():
    with open("/proc/uptime") as f:
        return f.read().split()[0]


def main(specs):
    for spec in specs:
        name, _, args = spec.partition("=")
        args = shlex.split(args)
        print(f"@@VMLANE BEGIN {name} uptime={uptime()}", flush=True)
        missing = [a for a in args if not a.startswith("-") and "/" in a and not os.path.exists(a)]
        if missing:
            print(f"{', '.join(missing)}: no such folder in {os.getcwd()}", flush=True)
            rc = 3
        else:
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
        print(f"@@VMLANE END {name} rc={rc} uptime={uptime()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
