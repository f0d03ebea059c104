"""`python3 -m udocker ...` runs the command line."""
import sys

from udocker.cli import main

sys.exit(main())
