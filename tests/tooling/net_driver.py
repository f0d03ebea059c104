"""A minimal runtime around udocker.network and udocker.proxy, for test_net_runtime.py.

It does what container.py will do with them, and nothing else (no PID, mount
or UTS namespace, no root filesystem), so that the building blocks of step 9
can be tested end to end before they are wired into the runtime:

    PYTHONPATH=solutions/step9 python3 net_driver.py [--network MODE] [-p SPEC]... \\
        [--userns none|parent|child] [--pidns] [--id ID] -- COMMAND [ARG...]

--userns parent: the parent enters a user namespace before forking, as
container.start does today for a rootless run; child: the child does, and the
parent stays outside (as runc's parent does).
"""
import argparse
import os
import selectors
import signal
import sys

from udocker import network, syscalls
from udocker.container import enter_user_namespace
from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError

FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
STOP_TIMEOUT = float(os.environ.get("UDOCKER_STOP_TIMEOUT", "10"))


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UdockerError(f"{message} (see 'udocker --help')")


def main():
    parser = Parser(prog="udocker")
    parser.add_argument("--network", type=network.network_mode, default="none")
    parser.add_argument("-p", "--publish", type=network.publish, action="extend", default=[])
    parser.add_argument("--userns", choices=("none", "parent", "child"), default="none")
    parser.add_argument("--pidns", action="store_true", help="the container is PID 1 of a new PID namespace")
    parser.add_argument("--id", default=None)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    try:
        args = parser.parse_args()
        if args.command[:1] == ["--"]:
            args.command = args.command[1:]
        return run(args)
    except UdockerError as error:
        print(f"udocker: {error}", file=sys.stderr)
        return error.exit_code


def run(args):
    net = network.prepare(args.network, args.publish, args.id or os.urandom(6).hex())
    try:
        if args.userns == "parent":
            enter_user_namespace()
        if args.pidns:  # as container.start: our next child is PID 1 of a new PID namespace
            syscalls.unshare(syscalls.CLONE_NEWPID)
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        pid = os.fork()
        if pid == 0:
            child_main(args, net)
        try:
            net.attach(pid)
        except UdockerError:
            os.waitpid(pid, 0)  # it exits by itself, quietly: we report
            raise
        status = wait_for(pid, net)
    finally:
        net.close()
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def child_main(args, net):
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
    try:
        if args.userns == "child":
            enter_user_namespace()
        net.enter()
        os.execvp(args.command[0], args.command)
    except UdockerError as error:
        print(f"udocker: {error}", file=sys.stderr, flush=True)
        os._exit(error.exit_code)
    except OSError as error:
        print(f"udocker: cannot set up the container: {error}", file=sys.stderr, flush=True)
    finally:
        os._exit(EXIT_RUNTIME_ERROR)


def wait_for(pid, net):
    """container.wait_for, with the event loop: signals forwarded, the stop timeout, the proxies."""
    stop_requested = False

    def forward(signum, frame):
        nonlocal stop_requested
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        if signum in (signal.SIGINT, signal.SIGTERM) and not stop_requested:
            stop_requested = True
            signal.setitimer(signal.ITIMER_REAL, STOP_TIMEOUT)

    def kill(signum, frame):
        print(f"udocker: the container did not stop within {STOP_TIMEOUT:g} s of the stop signal; killing it",
              file=sys.stderr, flush=True)
        os.kill(pid, signal.SIGKILL)

    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    signal.signal(signal.SIGALRM, kill)
    with selectors.DefaultSelector() as selector:
        net.register(selector)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
        try:
            status = network.wait_with(pid, selector)
        finally:
            net.close()  # the proxies first, while their selector is open
    signal.setitimer(signal.ITIMER_REAL, 0)
    return status



if __name__ == "__main__":
    sys.exit(main())
