"""`python3 -m workshop ...` is the `workshop` command (no install needed)."""

from workshop.cli import main

main()
