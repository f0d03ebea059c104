"""`workshop doctor`: workshop.environment's machine checks, each problem with its fix."""

from __future__ import annotations

import json


def environment_checks() -> list:
    """Run workshop.environment's checks; each is Check(name, ok, detail, fix)."""
    import importlib
    from types import SimpleNamespace

    try:
        env = importlib.import_module("workshop.environment")
    except Exception as e:  # never let a broken module crash the doctor
        return [SimpleNamespace(name="workshop.environment", ok=False,
                                detail=f"cannot load the machine checks: {type(e).__name__}: {e}",
                                fix="git status workshop/environment.py")]
    results = []
    for fn in getattr(env, "CHECKS", None) or []:
        try:
            r = fn()
        except Exception as e:
            r = SimpleNamespace(name=getattr(fn, "__name__", "check").removeprefix("check_"), ok=False,
                                detail=f"the check crashed: {type(e).__name__}: {e}", fix="")
        results.extend([r] if hasattr(r, "ok") else list(r))
    return results


def render(as_json: bool = False) -> int:
    """Print the checks; the exit status: 0 when all pass, else 1."""
    from rich.table import Table
    from rich.text import Text

    from ..ui import console, glyphs

    results = environment_checks()
    failed = [c for c in results if c.ok is False]
    if as_json:
        print(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": getattr(c, "fix", "") or ""}
                          for c in results], indent=2))
        return 1 if failed else 0
    con = console()
    g = glyphs()
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True, style="bold")
    table.add_column("detail", overflow="fold")
    for c in results:
        mark = (Text(g["ok"], style="green") if c.ok else Text(g["fail"], style="bold red") if c.ok is False
                else Text(g["warn"], style="yellow"))
        table.add_row(mark, Text(str(c.name)), Text(str(c.detail)))
    con.print(table)
    from ..registry import print_doctor_info  # steps 7-8's registries: information, not a check

    print_doctor_info(con)
    if failed:
        con.print()
        for c in failed:
            con.print(Text.assemble((f"{g['fail']} {c.name}", "bold red"), f": {c.detail}"))
            fix = getattr(c, "fix", "") or ""
            if fix:
                con.print(Text("  fix: ", style="dim"), end="")
                con.print(Text(fix, style="cyan"), soft_wrap=True)
        con.print()
        con.print(f"[bold red]{len(failed)} of {len(results)} checks fail.[/] "
                  "Run the fixes above (as root), then `workshop doctor` again.")
        return 1
    con.print()
    con.print(f"[green]{g['ok']} all {len(results)} checks pass: this machine is ready.[/]")
    return 0
