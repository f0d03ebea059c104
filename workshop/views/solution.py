"""`workshop solution N`: the files step N changes in the reference, their new lines marked."""

from __future__ import annotations

from .. import paths
from ..diffs import changed_lines, tree_files


def render(step: int) -> None:
    from rich.syntax import Syntax
    from rich.text import Text

    from ..ui import console

    con = console()
    ref = paths.solution_dir(step)
    before = tree_files(paths.solution_dir(step - 1)) if step > 0 else {}
    after = tree_files(ref)
    changed = [rel for rel in sorted(after) if before.get(rel) != after[rel]]
    if not changed:
        con.print(f"Step {step} changes no file of the reference: {paths.rel(ref)}/ is the same as step {step - 1}'s.")
        return
    con.print(Text.assemble(("The reference for step %d" % step, "bold"),
                            f": {paths.rel(ref)}/ (the whole runtime as of step {step}). "
                            f"Files step {step} changes, its lines marked:"))
    for rel in changed:
        con.print()
        con.print(Text(f"{paths.rel(ref)}/{rel}", style="bold underline"))
        lexer = "python" if rel.endswith(".py") else "text"
        con.print(Syntax(after[rel], lexer, line_numbers=True, highlight_lines=changed_lines(before.get(rel, ""),
                                                                                            after[rel]),
                         theme="ansi_dark", word_wrap=True))
    con.print()
    con.print(f"[dim]As a diff: `workshop diff {step}`; against your code: "
              f"`workshop solution {step} --diff`.[/]")
