"""The `workshop` command's entry point (pyproject: workshop = "workshop.cli:main").

`workshop` and `workshop progress` are answered here without importing click
or rich; everything else goes to the click commands in workshop.commands.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args in ([], ["progress"]):
        from .views.progress import render

        try:
            render()
        except BrokenPipeError:  # workshop | head
            pass
        sys.exit(0)
    from .commands import cli

    cli.main(args=args, prog_name="workshop")


if __name__ == "__main__":
    main()
