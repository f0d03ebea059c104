"""Step 1: `udocker run` runs the command: its output, its input, its exit status, its signals.

IMAGE is not used yet in this step (the command runs on the host's files), so
these tests only run commands that the host and the busybox rootfs both have.
"""

import random
import signal

from workshop import testing
from workshop.testing import hold, token


def test_stdout_and_stderr_are_the_commands(udocker, rootfs):
    out, err = token("out"), token("err")
    udocker.run("run", rootfs, "sh", "-c", f"echo {out}; echo {err} >&2") \
        .expect_exit(0).expect_stdout(out + "\n").expect_stderr(err + "\n")


def test_arguments_are_passed_as_they_are(udocker, rootfs):
    word = token()
    udocker.run("run", rootfs, "printf", "%s|", f"{word}  two", "$HOME", "*", "", "-n") \
        .expect_exit(0).expect_stdout(f"{word}  two|$HOME|*||-n|")


def test_stdin_is_passed_to_the_command(udocker, rootfs):
    text = f"{token()}\n{token()}\n"
    udocker.run("run", rootfs, "cat", input=text).expect_exit(0).expect_stdout(text)


def test_exit_status_0(udocker, rootfs):
    udocker.run("run", rootfs, "true").expect_exit(0).expect_stdout("")


def test_exit_status_1(udocker, rootfs):
    udocker.run("run", rootfs, "false").expect_exit(1).expect_stdout("")


def test_exit_status_is_the_commands(udocker, rootfs):
    code = random.randint(2, 100)
    udocker.run("run", rootfs, "sh", "-c", f"exit {code}").expect_exit(code)


def test_killed_by_a_signal_exits_128_plus_n(udocker, rootfs):
    tag, ready = token("tag"), token("ready")
    script = f"echo {ready}; while :; do sleep 0.1; done; : {tag}"
    with udocker.popen("run", rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        pid = c.find_process("sh", tag)  # the container's process, seen from the host
        c.kill_process(pid, signal.SIGKILL)
        c.finish().expect_exit(128 + signal.SIGKILL)


def test_command_not_found_exits_127(udocker, rootfs):
    command = token("no-such-command-")
    udocker.run("run", rootfs, command).expect_error(127, command)


def test_command_not_executable_exits_126(udocker, rootfs):
    udocker.run("run", rootfs, "/etc/passwd").expect_error(126, "/etc/passwd")


def _forwarded(udocker, rootfs, signum, code):
    name = signal.Signals(signum).name.removeprefix("SIG")
    ready, got = token("ready"), f"got-{name}"
    script = f'trap "echo {got}; exit {code}" {name}; echo {ready}; while :; do sleep 0.1; done'
    with udocker.popen("run", rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        c.signal(signum)
        c.finish().expect_exit(code).expect_stdout(f"{ready}\n{got}\n")


def test_sigterm_is_forwarded_to_the_command(udocker, rootfs):
    _forwarded(udocker, rootfs, signal.SIGTERM, 7)


def test_sigint_is_forwarded_to_the_command(udocker, rootfs):
    _forwarded(udocker, rootfs, signal.SIGINT, 8)


def test_runtime_waits_for_the_command(udocker, rootfs):
    ready = token("ready")
    with udocker.popen("run", rootfs, "sh", "-c", hold(ready)) as c:
        c.wait_for(ready)
        c.result().check(c.proc.poll() is None, "udocker to keep running while its command runs",
                         "it exited")
        c.finish(input="\n").expect_exit(0).expect_stdout(ready + "\n")


def test_other_signals_are_forwarded_to_the_command(udocker, rootfs):
    names = ("HUP", "QUIT", "USR1", "USR2")
    ready = token("ready")
    traps = "; ".join(f'trap "echo got-{name}" {name}' for name in names)
    script = f'{traps}; trap "exit 9" TERM; echo {ready}; while :; do sleep 0.1; done'
    with udocker.popen("run", rootfs, "sh", "-c", script) as c:
        c.wait_for(ready)
        for name in names:
            c.signal(getattr(signal, f"SIG{name}"))
            c.wait_for(f"got-{name}")
        c.signal(signal.SIGTERM)
        c.finish().expect_exit(9).expect_stdout(f"{ready}\n" + "".join(f"got-{name}\n" for name in names))


def test_empty_command_is_not_found(udocker, rootfs):
    udocker.run("run", rootfs, "").expect_error(127)  # like docker: no file has the name ""


def test_command_starts_with_no_signal_blocked_or_ignored(udocker, rootfs):
    """From the host: the command's SigBlk and SigIgn (/proc/PID/status) are empty, as runc leaves them."""
    seconds = str(random.randint(300, 999))  # names the process
    with udocker.popen("run", rootfs, "sleep", seconds) as c:
        pid = c.find_process("sleep", seconds)
        blocked, ignored = testing.signal_set(pid, "SigBlk"), testing.signal_set(pid, "SigIgn")
        c.kill_process(pid, signal.SIGKILL)
        result = c.finish()
    result.expect_exit(128 + signal.SIGKILL)
    result.check(not blocked, f"no blocked signal (SigBlk in /proc/{pid}/status)", ", ".join(sorted(blocked)))
    result.check(not ignored, f"no ignored signal (SigIgn in /proc/{pid}/status)", ", ".join(sorted(ignored)))


def test_a_script_whose_interpreter_is_missing_says_so(udocker, private_rootfs):
    """execve fails with ENOENT for a script whose #! names no file: the message names the interpreter."""
    interpreter = f"/no-such-{token('interpreter-')}/sh"
    host_path = private_rootfs / "script.sh"  # steps 1-2 see the host's files, later steps the rootfs
    for path in (host_path, private_rootfs / str(host_path).lstrip("/")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!{interpreter}\necho hi\n")
        path.chmod(0o755)
    udocker.run("run", private_rootfs, str(host_path)).expect_error(127, interpreter)


def test_command_has_a_session_of_its_own(udocker, rootfs):
    """From the host: the command leads a new session (setsid), so the caller's terminal is not its
    controlling terminal, and it cannot type into the host's shell (TIOCSTI)."""
    seconds = str(random.randint(300, 999))
    with udocker.popen("run", rootfs, "sleep", seconds) as c:
        pid = c.find_process("sleep", seconds)
        session, runtime_session = (testing.read(f"/proc/{p}/stat").rsplit(")", 1)[1].split()[3] for p in (pid, c.pid))
        c.kill_process(pid, signal.SIGKILL)
        result = c.finish()
    result.expect_exit(128 + signal.SIGKILL)
    result.check(session == str(pid) and session != runtime_session,
                 f"the command to lead a session of its own (session {pid} in /proc/{pid}/stat)",
                 f"session {session} (udocker's: {runtime_session})")
