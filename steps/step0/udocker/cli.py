"""The command line: parse the arguments, run the command, report errors in one line."""
import argparse
import os
import sys

from udocker.errors import EXIT_RUNTIME_ERROR, UdockerError


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that reports a usage error the way udocker reports every error."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        # TODO(step 0): argparse prints the usage and exits 2 on a bad argument. Raise a
        #   UdockerError instead, so that the user sees one line and exit status 125,
        #   like docker.
        super().error(message)


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


def shorten(text, width=60):
    """TEXT, cut to WIDTH characters for a one-line message."""
    return text if len(text) <= width else text[: width - 3] + "..."


def build_parser():
    """Describe udocker's command line: `udocker run [OPTIONS] IMAGE COMMAND [ARG...]`."""
    # TODO(step 0): Build the parser: a `run` subcommand with an IMAGE and the COMMAND
    #   with its ARGs (argparse.REMAINDER keeps the command's own options away from
    #   ours).
    raise UdockerError("the command line is not written yet: that is step 0")


def main(argv=None):
    """Run udocker with argv (default: sys.argv[1:]); return the exit status."""
    try:
        args = build_parser().parse_args(argv)
        if args.subcommand == "run":
            needs_command = True
            if needs_command and not args.command:
                raise UdockerError("run needs a COMMAND after the IMAGE (see 'udocker run --help')")
            raise UdockerError("run is not implemented yet: that is step 1")
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
