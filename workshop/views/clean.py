"""`workshop clean`: what was (or would be) removed, and what was left alone."""

from __future__ import annotations

import os

from .. import paths
from ..clean import Cleaner, default_rootfs_dirs

VERBS = {"process": ("killed", "would kill"), "cgroup": ("removed", "would remove"),
         "mount": ("unmounted", "would unmount"), "lease": ("released", "would release"),
         "nat": ("removed", "would remove"), "bridge": ("removed", "would remove"),
         "folder": ("removed", "would remove")}


def render(dry_run: bool, extra_rootfs: tuple[str, ...], stop_all: bool, network: bool = False) -> int:
    """Clean (or, DRY_RUN, list what would be cleaned); NETWORK: also step 9's NAT rule and bridge."""
    from rich.table import Table
    from rich.text import Text

    from ..ui import console, glyphs

    con = console()
    g = glyphs()
    root = paths.udocker_root()
    cleaner = Cleaner(root, [*default_rootfs_dirs(), *extra_rootfs], all=stop_all)
    actions = cleaner.plan() if dry_run else cleaner.run()
    actions += cleaner.network(bridge=network, dry_run=dry_run)
    con.print(Text(f"UDOCKER_ROOT={root}; root filesystems: {', '.join(cleaner.rootfs_dirs)}", style="dim"))
    if cleaner.skipped:
        n = sum(1 for a in cleaner.skipped if a.kind == "process")
        con.print(Text(f"left alone: {n} running container{'s' if n != 1 else ''} "
                       f"(`workshop clean --all` stops them too)", style="yellow"))
        for a in cleaner.skipped:
            con.print(Text(f"  {a.kind} {a.target}: {a.detail}", style="dim"), soft_wrap=True)
    if not actions:
        con.print(f"[green]{g['ok']}[/] nothing to clean")
        return 0
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column("")
    table.add_column("what", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("", overflow="fold", style="dim")
    for a in actions:
        done, would = VERBS.get(a.kind, ("removed", "would remove"))
        if dry_run:
            table.add_row(Text(g["dot"]), f"{would} {a.kind}", Text(a.target), Text(a.detail))
        elif a.done:
            table.add_row(Text(g["ok"], style="green"), f"{done} {a.kind}", Text(a.target), Text(a.detail))
        else:
            table.add_row(Text(g["fail"], style="bold red"), f"{a.kind}", Text(a.target),
                          Text(f"{a.detail} {a.error}".strip()))
    con.print(table)
    bad = [a for a in actions if not dry_run and not a.done]
    if dry_run:
        con.print(f"{len(actions)} leftovers; `workshop clean{' --all' if stop_all else ''}` removes them.")
    elif bad:
        con.print(f"[bold red]{len(bad)} of {len(actions)} could not be removed[/]"
                  + ("" if os.geteuid() == 0 else " (try as root: sudo workshop clean)"))
        return 1
    else:
        con.print(f"[green]{g['ok']} cleaned {len(actions)} leftovers[/]")
    return 0
