"""How `workshop check` shows its results: a table grouped by step (the step
being graded first), one block per failing check (the command that was run,
expected and got, one hint, what to read), and a score line."""

from __future__ import annotations

from . import meta, paths
from .grading import PASS_OUTCOMES, Result
from .grading import label as check_label
from .ui import glyphs, steps_range

MAX_DETAILS = 5          # failing checks shown in full; the rest in one line and a hint
MAX_MESSAGE_LINES = 14


LEFT_BEHIND = ("Your runtime left something on the host (a mount, a cgroup, a process): undo it when the "
               "container exits, also when it fails. `workshop clean` removes what is there now.")


def _hint(t: dict) -> str:
    if "left this behind on the host" in (t.get("message") or ""):
        return LEFT_BEHIND
    step = t.get("step")
    return t.get("hint") or (meta.check_hint(step, t.get("name", "")) if step is not None else None) or ""


def _read(t: dict) -> str:
    if t.get("read"):
        return t["read"]
    step = t.get("step")
    if step is None:
        return ""
    return ", ".join(meta.check_read(step, t.get("name", ""))[:2])


def _clean_message(text: str) -> str:
    """The assertion message minus the key: value lines shown on their own, and
    minus pytest's `assert ...` introspection when a message was given."""
    from .pytest_report import _KEY_RE

    from .pytest_report import _EXPECTED_GOT_RE, _OUTPUT_RE

    lines, skipping = [], False
    for line in (text or "").splitlines():
        if _EXPECTED_GOT_RE.match(line) or _OUTPUT_RE.match(line):
            skipping = False
            continue
        if _KEY_RE.match(line):
            skipping = True
            continue
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = False
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    if lines and lines[0].startswith("AssertionError: "):
        lines[0] = lines[0][len("AssertionError: "):]
    # "msg\nassert x == y\n +  where ..." : keep the learner's message only
    for i, line in enumerate(lines):
        if i and line.startswith("assert "):
            lines = lines[:i]
            break
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES] + [f"... ({len(lines) - MAX_MESSAGE_LINES} more lines; run with -v)"]
    return "\n".join(lines).strip()


def _outcome_word(outcome: str) -> str:
    return {"failed": "fails", "error": "error", "skipped": "could not run", "xfailed": "fails",
            "xpassed": "passes"}.get(outcome, outcome)


def render(result: Result, only_step: bool = False, verbose: bool = False) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from .ui import console

    con = console()
    g = glyphs()
    step = result.step
    con.print(Text.assemble(("workshop check ", "bold"), (f"{step}", "bold"),
                            f"  {paths.rel(result.impl)} against "
                            f"{'tests/step%d' % step if only_step else 'the suites of ' + steps_range(0, step)}"))
    con.print(Text(f"$ {result.command}", style="dim"), soft_wrap=True)

    if result.error:
        con.print()
        con.print(f"[bold red]{g['fail']} {escape(result.error)}[/]")
        tail = result.output.strip().splitlines()[-40:]
        if tail:
            con.print("[dim]pytest said:[/]")
            con.print(Text("\n".join(tail)), soft_wrap=True)
        con.print("[yellow]This is a problem with the workshop's tests or set-up, not with your code; "
                  "run `workshop doctor`, or the command above to see everything.[/]")
        return

    groups = result.by_step()
    current = groups.get(step, {"passed": 0, "total": 0, "tests": [], "failing": []})
    earlier = {s: e for s, e in groups.items() if s != step}

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("", overflow="fold", style="dim")

    def check_row(t: dict) -> None:
        ok = t["outcome"] in PASS_OUTCOMES
        mark = Text(g["ok"], style="green") if ok else Text(g["fail"], style="bold red")
        name = Text(check_label(t, result.impl) if t.get("nodeid") and t.get("name") != "(collection)"
                    else t.get("name", ""), style="" if ok else "bold")
        if not ok and t["outcome"] not in ("failed", "xfailed"):
            name.append(f"  ({_outcome_word(t['outcome'])})", style="yellow")
        table.add_row(mark, name, Text(t.get("title", "")))

    table.add_row("", Text(f"Step {step}: {meta.title(step)}", style="bold underline"), "")
    for t in sorted(current["tests"], key=lambda t: t["outcome"] in PASS_OUTCOMES):
        check_row(t)
    for t in current["failing"]:
        if t.get("name") == "(collection)":
            check_row(t)
    for s, e in sorted(earlier.items(), reverse=True):
        ok = e["passed"] == e["total"]
        table.add_row("", "", "")
        label = Text(f"Step {s}: {meta.title(s)}", style="bold")
        if ok:
            table.add_row(Text(g["ok"], style="green"), label, _all_pass(e["total"]))
        else:
            table.add_row(Text(g["fail"], style="bold red"), label,
                          f"{e['total'] - e['passed']} of {e['total']} checks fail")
            for t in e["failing"]:
                check_row(t)
    con.print()
    con.print(table)

    failing = current["failing"] + [t for s, e in sorted(earlier.items(), reverse=True) for t in e["failing"]]
    for i, t in enumerate(failing):
        if i < MAX_DETAILS or verbose:
            _detail(con, t, verbose, result.impl)
        else:
            if i == MAX_DETAILS:
                con.print()
                con.print(Text(f"{len(failing) - MAX_DETAILS} more failing checks, in short "
                               f"(-v shows them in full):", style="bold"))
            _short(con, t, result.impl)

    con.print()
    con.print(score_line(result, only_step), style="bold")
    for k in result.missing_suites:
        con.print(f"[yellow]{g['warn']} tests/step{k} does not exist, so step {k} was not checked.[/]")
    con.print(next_line(result, only_step))


def _shown_name(t: dict, impl) -> str:
    if t.get("name") == "(collection)" or not t.get("nodeid"):
        return t.get("name", "")
    return check_label(t, impl)


def _detail(con, t: dict, verbose: bool, impl=None) -> None:
    from rich.text import Text

    g = glyphs()
    step = t.get("step")
    con.print()
    head = Text(f"{g['fail']} ", style="bold red")
    head.append(f"step {step} {g['dot']} {_shown_name(t, impl)}", style="bold")
    if t.get("title"):
        head.append(f": {t['title']}")
    con.print(head)
    rows = []
    if t.get("command"):
        rows.append(("ran", t["command"], "cyan"))
    if t.get("expected"):
        rows.append(("expected", t["expected"], "green"))
    if t.get("got"):
        rows.append(("got", t["got"], "red"))
    if t.get("output"):
        rows.append(("output", t["output"], "dim"))
    message = _clean_message(t.get("message", ""))
    if t.get("outcome") == "skipped":
        message = f"the check could not run: {message}"
    if message and (verbose or not (t.get("expected") and t.get("got"))):
        rows.append(("problem", message, ""))
    hint = _hint(t)
    if hint:
        rows.append(("hint", hint, "yellow"))
    read = _read(t)
    if read:
        rows.append(("read", read, "magenta"))
    from rich.table import Table

    # The command stays on one (soft-wrapped) line, so it can be copied and run.
    for key, value, style in rows:
        if key == "ran":
            con.print(Text.assemble((f"  {'ran:':<10}", "dim"), (str(value), style)), soft_wrap=True)
    grid = Table.grid(padding=(0, 0), pad_edge=False)
    grid.add_column(no_wrap=True, style="dim", width=12)
    grid.add_column(overflow="fold")
    for key, value, style in rows:
        if key != "ran":
            grid.add_row(f"  {key}:", Text(str(value), style=style))
    if grid.row_count:
        con.print(grid)
    if verbose and t.get("longrepr"):
        con.print(Text(t["longrepr"], style="dim"))


def _all_pass(n: int) -> str:
    return "its one check passes" if n == 1 else f"all {n} checks pass"


def _short(con, t: dict, impl=None) -> None:
    from rich.text import Text

    g = glyphs()
    line = Text(f"{g['fail']} ", style="bold red")
    line.append(f"step {t.get('step')} {g['dot']} {_shown_name(t, impl)}", style="bold")
    if t.get("expected") and t.get("got"):
        line.append(f": expected {t['expected']}, got {t['got']}")
    elif t.get("message"):
        lines = [l.strip() for l in _clean_message(t["message"]).splitlines() if l.strip()]
        if lines:  # a first line that ends in ':' announces the next ("left this behind:")
            line.append(": " + (" ".join(lines[:2]) if lines[0].endswith(":") else lines[0]))
    con.print(line)
    hint = _hint(t)
    if hint:
        con.print(Text(f"  hint: {hint}", style="yellow"))


def score_line(result: Result, only_step: bool = False) -> str:
    step = result.step
    groups = result.by_step()
    cur = groups.get(step, {"passed": 0, "total": 0})
    if cur["total"] and cur["passed"] == cur["total"]:
        line = f"step {step}: {_all_pass(cur['total'])}"
    else:
        line = f"step {step}: {cur['passed']} of {cur['total']} checks pass"
    if only_step or step == 0:
        return line
    earlier = [e for s, e in groups.items() if s != step]
    passed = sum(e["passed"] for e in earlier)
    total = sum(e["total"] for e in earlier)
    span = steps_range(0, step - 1)
    if total == 0:
        return line
    if passed == total:
        return f"{line}; {span} still pass" + ("es" if step == 1 else "")
    return f"{line}; {span}: {total - passed} of {total} checks now fail"


def next_line(result: Result, only_step: bool = False) -> str:
    from rich.markup import escape

    step = result.step
    last = max(meta.numbers() or [step])
    if result.ok:
        if only_step:
            return (f"[green]Step {step}'s own checks pass.[/] Run `workshop check {step}` to check "
                    f"the earlier steps too.")
        if step < last:
            return (f"[green]Step {step} done.[/] Compare with the reference: `workshop solution {step}`. "
                    f"Next: `workshop show {step + 1}`, then `workshop check {step + 1}`.")
        return (f"[green]Step {step} done: that was the last step. Your runtime is complete.[/] "
                f"Compare with the reference: `workshop solution {step}`.")
    groups = result.by_step()
    cur = groups.get(step, {"passed": 0, "total": 0})
    earlier_bad = any(e["passed"] != e["total"] for s, e in groups.items() if s != step)
    if earlier_bad and cur["passed"] == cur["total"]:
        return (f"Your step {step} work broke something an earlier step built: fix those checks first, "
                f"then run `workshop check {step}` again.")
    impl = escape(paths.rel(result.impl))
    return (f"Edit {impl}/udocker/ (look for `TODO(step {step})`) and run `workshop check {step}` again; "
            f"stuck? `workshop hint {step}`.")
