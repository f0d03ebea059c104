"""`workshop hint N`: one hint tier more each time, and the hints of the checks that failed last."""

from __future__ import annotations

from .. import meta, state


def render(step: int, show_all: bool = False, reset: bool = False) -> None:
    from rich.table import Table
    from rich.text import Text

    from ..ui import console

    con = console()
    info = meta.step(step)
    hints = info["hints"]
    data = state.load()
    shown = 0 if reset else state.hint_tier(data, step)
    tier = len(hints) if show_all else min(shown + 1, len(hints))

    con.print(Text.assemble(("Step %d: " % step, "bold"), (info["title"], "bold")))
    if not hints:
        con.print("This step has no hints in steps.toml.")
    else:
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for i, h in enumerate(hints[:tier], 1):
            last = i == tier
            grid.add_row(Text(f"Hint {i} of {len(hints)}:", style="bold yellow" if last else "dim"),
                         Text(h, style="" if last else "dim"))
        con.print(grid)
        if tier != shown or reset:
            state.set_hint_tier(step, tier)

    failing = data["steps"].get(str(step), {}).get("failing") or []
    specific = [(name, meta.check_hint(step, name)) for name in failing]
    specific = [(n, h) for n, h in specific if h]
    if specific:
        con.print()
        con.print(Text("For the checks that failed last time:", style="bold"))
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True, style="bold")
        grid.add_column(overflow="fold")
        for name, h in specific:
            grid.add_row(Text(f"  {name}:"), Text(h))
        con.print(grid)
    if info["read"]:
        con.print()
        con.print(Text("Read: " + ", ".join(info["read"][:3]), style="magenta"))
    con.print()
    if hints and tier < len(hints):
        con.print(f"[dim]Still stuck? `workshop hint {step}` again shows hint {tier + 1} of {len(hints)}.[/]")
    else:
        con.print(f"[dim]That was the last hint. The reference: `workshop solution {step} --force` "
                  f"(it is yours without --force once step {step} passes).[/]")
