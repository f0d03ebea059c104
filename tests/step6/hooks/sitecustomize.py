"""A test hook, loaded by Python at start-up when this folder is first on PYTHONPATH.

With WORKSHOP_SIGNAL_AFTER_CGROUP_MKDIR=N in the environment, the process sends
itself signal N at the instant the mkdir(2) of a `udocker-*` cgroup has
returned, before the next line of Python runs: the worst moment for a runtime
that has not yet recorded what it made. Deterministic, unlike a kill from
outside at a lucky time.
"""
import os
import signal
import sys

_SIGNUM = int(os.environ.get("WORKSHOP_SIGNAL_AFTER_CGROUP_MKDIR") or 0)
_PID = os.getpid()
_armed = False


def _audit(event, args):
    """os.mkdir's audit event comes before the call: remember that the next mkdir to return is the one."""
    global _armed
    if event == "os.mkdir" and os.getpid() == _PID:
        path = os.fsdecode(args[0]) if isinstance(args[0], (str, bytes)) else ""
        if os.path.basename(path).startswith("udocker-"):
            _armed = True


def _profile(frame, event, arg):
    global _armed
    if _armed and event == "c_return" and getattr(arg, "__name__", "") == "mkdir":
        _armed = False
        sys.setprofile(None)
        os.kill(_PID, _SIGNUM)


if _SIGNUM:
    signal.Signals(_SIGNUM)  # a typo in the test fails here, loudly
    sys.addaudithook(_audit)
    sys.setprofile(_profile)
