"""`python3 -m udocker ...` runs the command line."""
import argparse
import os
import sys

# argparse looks each of its texts up in the gettext catalogues of the user's
# language, a dozen file lookups each: udocker speaks English only.
argparse._ = str

from udocker.cli import main  # noqa: E402 (after the line above)

status = main()
# Leave at once, as a C program does: tearing the interpreter down (every module,
# every object) would cost milliseconds on every run, and nothing is left to do.
for stream in (sys.stdout, sys.stderr):
    try:
        stream.flush()
    except (OSError, ValueError):  # a closed pipe (`udocker images | head -1`)
        pass
os._exit(status or 0)
