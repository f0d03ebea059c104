"""The command line: parse the arguments, run the command, report errors in one line."""
import argparse
import sys

# >>> step 6: Import the cgroups module: --memory is parsed by cgroups.parse_size.
from udocker import cgroups
# <<<
# >>> step 1: Import the container module, where `udocker run` does its work.
from udocker import container
# <<<
from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError
# >>> step 7: Import the image commands: pull, images and rmi.
from udocker.image import commands as image_commands
# <<<


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error the way udocker reports every error."""

    def error(self, message):
        # >>> step 0: argparse prints the usage and exits 2 on a bad argument. Raise a UdockerError instead, so that the user sees one line and exit status 125, like docker.
        raise UdockerError(f"{message} (see 'udocker --help')")
        # --- before
        super().error(message)
        # <<<


# >>> step 2: Check a --hostname before using it: sethostname(2) refuses more than 64 bytes with a bare EINVAL.
def hostname(name):
    """A valid --hostname: 1 to 64 bytes, as sethostname(2) takes them."""
    if not 1 <= len(name.encode()) <= 64:
        raise argparse.ArgumentTypeError(f"hostname {name!r} must be 1 to 64 bytes long")
    return name
# <<<


def build_parser():
    """Describe udocker's command line: `udocker run [OPTIONS] IMAGE COMMAND [ARG...]`."""
    # >>> step 0: Build the parser: a `run` subcommand with an IMAGE and the COMMAND with its ARGs (argparse.REMAINDER keeps the command's own options away from ours).
    parser = Parser(
        prog="udocker",
        description="A container runtime, built one Linux primitive at a time.",
    )
    commands = parser.add_subparsers(
        dest="subcommand", metavar="COMMAND", parser_class=Parser, required=True
    )
    run = commands.add_parser(
        "run",
        help="run a command in a new container",
        description="Run COMMAND in a new container whose root filesystem is IMAGE.",
    )
    # >>> step 2: Add the --hostname option.
    run.add_argument(
        "--hostname",
        type=hostname,
        metavar="NAME",
        help="the container's hostname (default: its id)",
    )
    # <<<
    # >>> step 6: Add the resource limits: -m/--memory SIZE, --cpus N and --pids-limit N.
    run.add_argument(
        "-m",
        "--memory",
        type=cgroups.parse_size,
        metavar="SIZE",
        help="memory limit: a number of bytes with an optional unit (64m, 1g)",
    )
    run.add_argument(
        "--cpus", type=cgroups.parse_cpus, metavar="N", help="CPUs the container may use (0.5)"
    )
    run.add_argument(
        "--pids-limit",
        type=cgroups.parse_pids,
        metavar="N",
        help="how many processes the container may have at once",
    )
    # <<<
    # >>> step 8: Add docker's terminal options: -t/--tty (a terminal for the container), -i/--interactive (pass our keys to it; without -t, stdin is always passed on) and --rm (accepted: containers are always removed).
    run.add_argument(
        "-i", "--interactive", action="store_true",
        help="with -t, pass stdin on to the container's terminal (without -t, stdin is always passed on)",
    )
    run.add_argument("-t", "--tty", action="store_true", help="give the container a terminal (a pty) of its own")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits (always so)")
    # <<<
    # >>> step 8: Add the options that override the image's config: -e/--env KEY=VALUE (repeatable), -w/--workdir DIR, --entrypoint CMD and -u/--user USER[:GROUP].
    run.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE",
        help="set an environment variable (repeatable)",
    )
    run.add_argument("-w", "--workdir", metavar="DIR", help="the working directory")
    run.add_argument("--entrypoint", metavar="CMD", help="replace the image's Entrypoint")
    run.add_argument("-u", "--user", metavar="USER[:GROUP]", help="replace the image's User")
    run.add_argument(
        "image", metavar="IMAGE",
        help="an image (busybox, 127.0.0.1:5000/workshop/busybox:latest) or a root filesystem directory (a path starting with / or .)",
    )
    # --- before
    run.add_argument(
        "image", metavar="IMAGE", help="the container's root filesystem (a directory)"
    )
    # <<<
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]", help="what to run"
    )
    # >>> step 7: Add the pull, images and rmi subcommands (image_commands.add_arguments).
    image_commands.add_arguments(commands)
    # <<<
    return parser
    # --- before
    raise UdockerError("the command line is not written yet: that is step 0")
    # <<<


def main(argv=None):
    """Run udocker with argv (default: sys.argv[1:]); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.subcommand == "run":
            # >>> step 8: An image brings its own command (Cmd); a directory does not.
            if not args.command and args.image.startswith(("/", ".")) and args.entrypoint is None:
            # --- before
            if not args.command:
            # <<<
                raise UdockerError("run needs a COMMAND after the IMAGE (see 'udocker run --help')")
            # >>> step 1: Run the container and return its exit status (container.run).
            return container.run(args)
            # --- before
            raise UdockerError("run is not implemented yet: that is step 1")
            # <<<
        # >>> step 7: The image commands: each subcommand's parser set its handler.
        return args.handler(args)
        # <<<
    except UdockerError as error:
        print(f"udocker: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # the kernel refused something: say what, without a traceback
        print(f"udocker: {error}", file=sys.stderr)
        return EXIT_RUNTIME_ERROR
    except KeyboardInterrupt:  # Ctrl-C before the container started (during a pull, say)
        print("udocker: interrupted", file=sys.stderr)
        return 130
    return 0
