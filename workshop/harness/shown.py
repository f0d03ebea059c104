"""What a failed check shows of an output: a few lines, and nothing of the host's other processes.

A runtime that runs `ps` against the host's /proc prints every process of the
machine, with its command line (and `cat /proc/*/environ` their environments):
a failure message must not copy that into a learner's terminal or a CI log.
:func:`shown` keeps the first lines of a text and hides each line that holds
the command line or an environment entry of a process that is not the tests'
own (the test sessions' processes carry WORKSHOP_TEST_SESSION or
WORKSHOP_CHECK_SESSION; what the test process started counts as its own too).
"""

from __future__ import annotations

import os

from workshop.procfs import all_pids, cmdline, environ, ppid_of

MAX_LINES = 6
MAX_CHARS = 800
HIDDEN = "(a line about another process of this machine: not shown)"
#: in the environment of the test sessions' processes (testing.SESSION_ENV, leaks.CHECK_SESSION_ENV)
_SESSIONS = (b"WORKSHOP_TEST_SESSION=", b"WORKSHOP_CHECK_SESSION=")
_SHORTEST_SECRET = 10  # shorter command lines ("bash", "sleep 9") say nothing about anyone


def bounded(text: str, max_lines: int = MAX_LINES, tail: bool = False) -> tuple[str, int]:
    """(MAX_LINES lines of TEXT, how many more lines there were): its first lines, or with TAIL
    its last ones (a traceback ends with what went wrong).

    A text without newlines that holds escaped ones (a repr()) is cut at those.
    """
    sep = "\n" if "\n" in text else "\\n"
    parts = text.split(sep)
    ends_with_sep = parts[-1] in ("", "'", '"')
    lines = len(parts) - (1 if ends_with_sep else 0)
    more = 0
    if lines > max_lines:
        more = lines - max_lines
        if tail:
            text = sep.join(parts[more:])
        else:
            text = sep.join(parts[:max_lines]) + sep
    if len(text) > MAX_CHARS:
        more = max(more, 1)
        text = text[-MAX_CHARS:] if tail else text[:MAX_CHARS]
    return text, more


def shown(text: str | None, max_lines: int = MAX_LINES, secrets: set[str] | None = None) -> str | None:
    """TEXT as a failure shows it: bounded, with "... N more lines", other processes hidden
    (SECRETS: what foreign_secrets() found, when the caller shows several texts)."""
    if text is None:
        return None
    text, more = bounded(str(text), max_lines)
    text = redact(text, secrets)
    return f"{text} ... {more} more lines" if more else text


def redact(text: str, secrets: set[str] | None = None) -> str:
    """TEXT with each line that names another process of the host (its command line or
    an entry of its environment) replaced by a note."""
    if not text:
        return text
    secrets = foreign_secrets() if secrets is None else secrets
    if not secrets:
        return text
    sep = "\n" if "\n" in text else "\\n"
    return sep.join(HIDDEN if any(s in line for s in secrets) else line for line in text.split(sep))


def foreign_secrets() -> set[str]:
    """Command lines (their first 40 characters, as ps shows them, NUL-separated as
    /proc/PID/cmdline holds them, or escaped as repr() shows that) and environment entries
    of the host's processes: all but this process, what it started, and the test sessions'."""
    pids = all_pids()
    parents = {pid: ppid_of(pid) for pid in pids}
    ours = {os.getpid()}
    changed = True
    while changed:  # this process's descendants: the runtimes it started, their containers
        changed = False
        for child, parent in parents.items():
            if parent in ours and child not in ours:
                ours.add(child)
                changed = True
    own_env = {f"{k}={v}" for k, v in os.environ.items()}
    secrets: set[str] = set()
    for pid in pids:
        if pid in ours:
            continue
        env = environ(pid)
        if any(marker in env for marker in _SESSIONS):
            continue
        argv = cmdline(pid)
        for sep in (" ", "\0", "\\x00"):
            line = sep.join(argv)[:40]
            if len(line) >= _SHORTEST_SECRET:
                secrets.add(line)
        for entry in env.split(b"\0"):
            text = entry.decode(errors="replace")
            if "=" in text and len(text) >= _SHORTEST_SECRET and text not in own_env:
                secrets.add(text)
    return secrets
