"""Step 8: `udocker run -it IMAGE sh` gives the container a terminal of its own, as `docker run -it` does.

The test plays the user: udocker runs on a pty the test holds (tests/terminalsupport.py),
as from an interactive shell; the test types on its master, reads what the terminal
shows, resizes it, and reads its settings. The container's side is checked from the
host's /proc: its shell's session, controlling terminal and process groups.

    -t   a pty for the container: its slave is the container's stdin, stdout, stderr and
         controlling terminal, on a devpts of its own (`tty` says /dev/pts/0)
    -i   with -t: what is typed goes to the container, our terminal raw meanwhile
         (without -t, stdin is passed on as always)
    --rm accepted: containers are always removed
"""
import os
import signal
import sys
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from terminalsupport import OnTerminal, device, stat_fields  # noqa: E402


def shell(udocker, rootfs, *options, **kwargs):
    """udocker run -it ROOTFS sh, on a terminal of the test's, with the shell ready for input."""
    term = OnTerminal(udocker, "run", *(options or ("-it",)), rootfs, "sh", **kwargs)
    try:
        shown = term.run_line("tty")  # a terminal of its own, not ours lent to it
        term.result().check("/dev/pts/0" in shown, "`tty` to print /dev/pts/0 (a devpts of the container's own)",
                            repr(shown))
    except BaseException:
        term.close()
        raise
    return term


def test_tty_in_the_container_is_its_own_pts_0(udocker, rootfs):
    with shell(udocker, rootfs) as term:
        shown = term.run_line("tty")
        term.result().check("/dev/pts/0" in shown, "`tty` to print /dev/pts/0 (a devpts of the container's own)",
                            repr(shown))
        term.type("exit\r")
        term.finish().expect_exit(0)
    udocker.run("run", "-it", rootfs, "true", input="").expect_error(125, "TTY")  # as docker, with no terminal


def test_window_size_is_passed_on_at_start_and_on_sigwinch(udocker, rootfs):
    with shell(udocker, rootfs, rows=33, cols=101) as term:
        shown = term.run_line("stty size")
        term.result().check("33 101" in shown, "`stty size` to print the test terminal's size '33 101'", repr(shown))
        term.resize(50, 132)  # the kernel sends SIGWINCH to udocker, the terminal's foreground process
        deadline = time.monotonic() + 5
        while "50 132" not in (shown := term.run_line("stty size")) and time.monotonic() < deadline:
            time.sleep(0.1)
        term.result().check("50 132" in shown, "`stty size` to print '50 132' after the window was resized "
                            "(udocker copies the size on SIGWINCH)", repr(shown))
        term.type("exit\r")
        term.finish().expect_exit(0)


def test_exit_status_of_the_shell_is_udockers(udocker, rootfs):
    with shell(udocker, rootfs, "--rm", "-it") as term:  # --rm: accepted (containers are always removed)
        term.type("exit 3\r")
        term.finish().expect_exit(3)


def test_ctrl_c_interrupts_the_foreground_job_and_the_shell_goes_on(udocker, rootfs):
    with shell(udocker, rootfs) as term:
        term.type("sleep 100\r")
        sleeper = term.find_process("sleep")
        fields = stat_fields(sleeper)
        pgrp, tpgid = int(fields[2]), int(fields[5])
        term.result().check(pgrp == sleeper and tpgid == sleeper,
                            f"job control: sleep (pid {sleeper}) in a process group of its own, the terminal's "
                            "foreground group", f"process group {pgrp}, foreground group {tpgid}")
        term.type("\x03")  # Ctrl-C: the container's terminal sends SIGINT to its foreground group
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{sleeper}") and time.monotonic() < deadline:
            time.sleep(0.02)
        term.result().check(not os.path.exists(f"/proc/{sleeper}"), "Ctrl-C to end the foreground `sleep 100`",
                            "it is still running after 5 s")
        shown = term.run_line("echo still $((20+22))")
        term.result().check("still 42" in shown, "the shell to go on after Ctrl-C", repr(shown))
        term.type("exit 4\r")
        term.finish().expect_exit(4)


def test_tty_without_interactive_passes_no_input(udocker, rootfs):
    script = "[ -t 0 ] && echo stdin is a tty; read -t 1 line && echo got:$line || echo nothing $((6*7))"
    with OnTerminal(udocker, "run", "-t", rootfs, "sh", "-c", script) as term:
        term.type("secret\r")
        term.expect("stdin is a tty")
        result = term.finish().expect_exit(0)
        result.check("got:secret" not in result.stdout and "nothing 42" in result.stdout,
                     "with -t alone, nothing typed reaches the container ('nothing 42')", repr(result.stdout))
    # and -i alone: stdin passed on, as without any option (udocker is its own shim: it always is)
    udocker.run("run", "-i", rootfs, "cat", input="piped\n").expect_exit(0).expect_stdout("piped\n")


def test_terminal_is_raw_while_it_runs_and_restored_after(udocker, rootfs):
    with shell(udocker, rootfs) as term:
        lflag = term.mode()[3]
        term.result().check(not lflag & (termios.ICANON | termios.ECHO | termios.ISIG),
                            "the test's terminal in raw mode while the container runs (no ICANON, ECHO, ISIG)",
                            f"lflag {lflag:#o}")
        term.type("exit\r")
        result = term.finish().expect_exit(0)
        result.check(term.mode() == term.initial_mode, f"the terminal's settings restored: {term.initial_mode}",
                     f"{term.mode()}")


def test_terminal_is_restored_after_sigterm(udocker, rootfs):
    script = 'trap "exit 5" TERM; echo ready $((3+4)); while :; do sleep 0.1; done'
    with OnTerminal(udocker, "run", "-it", rootfs, "sh", "-c", script) as term:
        term.expect("ready 7")
        term.result().check(not term.mode()[3] & termios.ICANON, "the test's terminal in raw mode",
                            "it is in canonical mode")
        print(f"$ kill -TERM {term.pid}   # udocker", flush=True)
        os.kill(term.pid, signal.SIGTERM)
        result = term.finish().expect_exit(5)
        result.check(term.mode() == term.initial_mode, f"the terminal's settings restored: {term.initial_mode}",
                     f"{term.mode()}")


def test_the_shell_is_a_session_leader_on_a_terminal_of_its_own(udocker, rootfs):
    with shell(udocker, rootfs) as term:
        sh = term.find_process("sh")
        fields = stat_fields(sh)
        session, tty_nr = int(fields[3]), int(fields[4])
        term.result().check(session == sh, f"the shell (pid {sh}) to lead a session of its own", f"session {session}")
        stdin = os.stat(f"/proc/{sh}/fd/0")
        ours = os.fstat(term.slave)
        term.result().check(
            tty_nr != 0 and tty_nr == stdin.st_rdev and stdin.st_dev != ours.st_dev,
            f"its controlling terminal to be its stdin, a pty of another devpts than the test's "
            f"(the test's: {device(ours.st_rdev)} on devpts {device(ours.st_dev)})",
            f"controlling terminal {device(tty_nr) if tty_nr else 'none'}, stdin {device(stdin.st_rdev)} "
            f"on {device(stdin.st_dev)}")
        term.type("exit\r")
        term.finish().expect_exit(0)


def test_rootless_terminal(udocker, rootfs):
    with shell(udocker, rootfs, as_user=True, rows=20, cols=90) as term:
        shown = term.run_line("tty; stty size; id -u")
        term.result().check("/dev/pts/0" in shown and "20 90" in shown,
                            "rootless too: `tty` prints /dev/pts/0, `stty size` '20 90'", repr(shown))
        term.type("exit 6\r")
        term.finish().expect_exit(6)


def test_an_image_gets_a_terminal_too(udocker, image_registry, shared_pull):
    image = "workshop/busybox:latest"
    store = shared_pull(image).store
    # no COMMAND: the image's Cmd, /bin/sh
    with OnTerminal(udocker, "run", "-it", image_registry.reference(image), env={"UDOCKER_ROOT": str(store.root)},
                    rows=30, cols=70) as term:
        shown = term.run_line("tty; stty size")
        term.result().check("/dev/pts/0" in shown and "30 70" in shown,
                            "for an image too: `tty` prints /dev/pts/0, `stty size` '30 70'", repr(shown))
        term.type("exit 7\r")
        term.finish().expect_exit(7)
