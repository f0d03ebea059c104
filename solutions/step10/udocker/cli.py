"""The command line: parse the arguments, run the command, report errors in one line."""
import argparse
import os
import sys

from udocker import capabilities
from udocker import cgroups
from udocker import container
from udocker import network
from udocker import seccomp
from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError

from udocker.image import commands as image_commands


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error the way udocker reports every error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        raise UdockerError(f"{message} (see 'udocker --help')")


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, told the terminal's width: without it, argparse imports shutil to ask, on every run."""

    def __init__(self, prog, **kwargs):
        if kwargs.get("width") is None:
            try:
                columns = int(os.environ.get("COLUMNS") or os.get_terminal_size(sys.stdout.fileno()).columns)
            except (OSError, ValueError):
                columns = 80
            kwargs["width"] = max(columns - 2, 40)
        super().__init__(prog, **kwargs)


def hostname(name):
    """A valid --hostname: docker's rule (RFC 1123 labels joined by dots), and the kernel's (64 bytes at most)."""
    labels = name.split(".")
    valid = all(
        label and label[0] != "-" and label[-1] != "-"
        and all(c.isascii() and (c.isalnum() or c == "-") for c in label)
        for label in labels
    )
    if not valid:
        raise argparse.ArgumentTypeError(
            f"invalid hostname format {shorten(name)!r}: use letters, digits and '-', in labels separated by dots")
    if len(name) > 64:  # sethostname(2) refuses more with a bare EINVAL
        raise argparse.ArgumentTypeError(f"hostname {shorten(name)!r} is {len(name)} bytes long: 64 at most")
    return name


def workdir(path):
    """A valid -w/--workdir: an absolute path, as docker requires."""
    if not path.startswith("/"):
        raise argparse.ArgumentTypeError(
            f"the working directory {shorten(path)!r} is invalid, it needs to be an absolute path")
    return path


def shorten(text, width=60):
    """TEXT, cut to WIDTH characters for a one-line message."""
    return text if len(text) <= width else text[: width - 3] + "..."


def build_parser():
    """Describe udocker's command line: `udocker run [OPTIONS] IMAGE COMMAND [ARG...]`."""
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
    run.add_argument(
        "--hostname",
        type=hostname,
        metavar="NAME",
        help="the container's hostname (default: its id)",
    )
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
    run.add_argument(
        "-i", "--interactive", action="store_true",
        help="with -t, pass stdin on to the container's terminal (without -t, stdin is always passed on)",
    )
    run.add_argument("-t", "--tty", action="store_true", help="give the container a terminal (a pty) of its own")
    run.add_argument("--rm", action="store_true", help="remove the container when it exits (always so)")
    run.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE",
        help="set an environment variable (repeatable)",
    )
    run.add_argument("-w", "--workdir", type=workdir, metavar="DIR", help="the working directory (absolute)")
    run.add_argument("--entrypoint", metavar="CMD", help="replace the image's Entrypoint")
    run.add_argument("-u", "--user", metavar="USER[:GROUP]", help="replace the image's User")
    run.add_argument(
        "--network", type=network.network_mode, default="none", metavar="MODE",
        help="none (the default: a network of its own with lo only), bridge (udocker0, with an address"
        " and NAT; root only) or host (the host's own network)",
    )
    run.add_argument(
        "-p", "--publish", type=network.publish, action="extend", default=[],
        metavar="[IP:]HOSTPORT:CONTAINERPORT", help="publish a container's TCP port on the host (repeatable)",
    )
    run.add_argument(
        "--cap-add", type=capabilities.argument, action="append", default=[], metavar="CAP",
        help="add a capability to docker's default set (NET_ADMIN or CAP_NET_ADMIN; ALL; repeatable)",
    )
    run.add_argument(
        "--cap-drop", type=capabilities.argument, action="append", default=[], metavar="CAP",
        help="drop a capability from docker's default set (CHOWN; ALL; repeatable)",
    )
    run.add_argument(
        "--security-opt", type=seccomp.security_opt_argument, action="append", default=[], metavar="OPT",
        help="seccomp=unconfined, no-new-privileges[:true|false] or systempaths=unconfined (repeatable)",
    )
    run.add_argument(
        "--privileged", action="store_true",
        help="every capability, no seccomp filter, no masked paths, /sys writable: no lockdown at all",
    )
    run.add_argument(
        "image", metavar="IMAGE",
        help="an image (busybox, 127.0.0.1:5000/workshop/busybox:latest) or a root filesystem directory (a path starting with / or .)",
    )
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="COMMAND [ARG...]", help="what to run"
    )
    image_commands.add_arguments(commands)
    return parser


def main(argv=None):
    """Run udocker with argv (default: sys.argv[1:]); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.subcommand == "run":
            needs_command = args.image.startswith(("/", ".")) and args.entrypoint is None  # an image has a Cmd
            if needs_command and not args.command:
                raise UdockerError("run needs a COMMAND after the IMAGE (see 'udocker run --help')")
            return container.run(args)
        return args.handler(args)  # pull, images, rmi: each subcommand's parser set its handler
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
