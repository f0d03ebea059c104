"""`workshop` / `workshop progress`: every step with its state, and what to do next.

Printed without click or rich (plain text, ANSI colour on a terminal), so that
the command answers as fast as Python starts.
"""

from __future__ import annotations

import os
import sys

from .. import meta, paths, state
from ..ui import is_utf8


def _colour(stream) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return stream.isatty() and os.environ.get("TERM") != "dumb"


def render(out=None) -> None:
    out = out or sys.stdout
    colour, utf8 = _colour(out), is_utf8(out)

    def style(text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if colour and code else text

    ok, fail, todo = ("✓", "✗", "·") if utf8 else ("ok", "x", "-")
    full, empty = ("█", "░") if utf8 else ("#", ".")

    data = state.load()
    steps = meta.numbers()
    if not steps:
        print(f"no steps found: {paths.rel(meta.file())} lists none", file=out)
        return
    statuses = {s: state.step_status(data, s) for s in steps}
    done = sum(1 for s in steps if statuses[s] == state.PASSING)

    w = print
    w(style("container-workshop", "1") + f": {done} of {len(steps)} steps pass", file=out)
    width = 40
    filled = round(width * done / len(steps))
    w(style(full * filled, "32") + style(empty * (width - filled), "2") + f" {100 * done // len(steps)}%", file=out)
    w(file=out)

    rows = []
    for s in steps:
        st = statuses[s]
        entry = data["steps"].get(str(s), {})
        title = meta.title(s) + ("" if paths.steps_dir(s).is_dir() else f" (no steps/step{s} folder)")
        if st == state.PASSING:
            mark, code = f"{ok} passing", "32"
        elif st == state.FAILING:
            mark, code = f"{fail} failing", "31"
        else:
            mark, code = f"{todo} not started", "2"
        checks = f"{entry['passed']}/{entry['total']}" if entry else ""
        if entry.get("through"):
            mark += f" (with step {entry['through']})"
        when = entry.get("checked_at", "").replace("T", " ").rstrip("Z")[:16] if entry else ""
        rows.append((str(s), title, mark, code, checks, when))
    tw = max(len(r[1]) for r in rows + [("", "title", "", "", "", "")])
    mw = max(len(r[2]) for r in rows)
    w(style(f"{'step':>4}  {'title':<{tw}}  {'state':<{mw}}  {'checks':>6}  last check", "1"), file=out)
    for num, title, mark, code, checks, when in rows:
        w(f"{num:>4}  {title:<{tw}}  {style(f'{mark:<{mw}}', code)}  {checks:>6}  {style(when, '2')}".rstrip(),
          file=out)
    w(file=out)

    nxt = next((s for s in steps if statuses[s] != state.PASSING), None)
    if nxt is None:
        w(style(f"{ok} Every step passes: you have built a container runtime.", "32")
          + f" Compare with the reference: workshop solution {steps[-1]}", file=out)
        return
    info = meta.step(nxt)
    w(style(f"Next: step {nxt}, {info['title']}", "1"), file=out)
    if info["goal"]:
        w(f"  {info['goal']}", file=out)
    if statuses[nxt] == state.FAILING:
        entry = data["steps"].get(str(nxt), {})
        w(f"  Last check: {entry.get('passed', 0)} of {entry.get('total', 0)} checks pass.", file=out)
        w(f"  Fix steps/step{nxt}/udocker/, then: workshop check {nxt}   (--watch re-runs on every save)",
          file=out)
        w(f"  Stuck? workshop hint {nxt}", file=out)
    else:
        w(f"  Read the lesson:  workshop show {nxt}", file=out)
        w(f"  Edit steps/step{nxt}/udocker/ (look for TODO(step {nxt})), then: workshop check {nxt}", file=out)
