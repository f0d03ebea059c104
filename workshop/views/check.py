"""How `workshop check` shows its results: a table grouped by step (the step
being graded first), the diagnosis most failing checks share (if one does),
one block per other failing check (the command that was run, expected and
got, its output, one hint, what to read), and a score line.

Everything comes from the checks' fields (workshop.grading.check_of); nothing
is parsed back out of a message.
"""

from __future__ import annotations

import re

from .. import meta, paths
from ..diagnosis import found
from ..grading import Result
from ..ui import glyphs, steps_range

MAX_DETAILS = 5          # failing checks shown in full; the rest in one line and a hint
MAX_MESSAGE_LINES = 14
_PLAIN_FAILURE = re.compile(r"^(?:[\w.]+\.)?(?:AssertionError|Failed|CheckFailure): ")


def message(c: dict) -> str:
    """What a failed check says beyond expected/got: its problem, or (a failure that is not a
    CheckFailure) its message without pytest's ``assert ...`` introspection."""
    if c.get("problem"):
        return c["problem"]
    if c.get("expected") is not None or c.get("got") is not None:
        return ""
    lines = (c.get("message") or "").splitlines()
    if lines:
        lines[0] = _PLAIN_FAILURE.sub("", lines[0])  # "AssertionError: ..." -> "..."
    for i, line in enumerate(lines):
        if i and line.startswith("assert "):
            lines = lines[:i]
            break
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > MAX_MESSAGE_LINES:
        lines = lines[:MAX_MESSAGE_LINES] + [f"... ({len(lines) - MAX_MESSAGE_LINES} more lines; run with -v)"]
    return "\n".join(lines).strip()


def _outcome_word(outcome: str) -> str:
    return {"failed": "fails", "error": "error", "skipped": "could not run", "xfailed": "fails",
            "xpassed": "passes"}.get(outcome, outcome)


def _read(c: dict) -> str:
    return ", ".join((c.get("read") or [])[:2])


def render(result: Result, only_step: bool = False, verbose: bool = False) -> None:
    from rich.markup import escape
    from rich.text import Text

    from ..ui import console

    con = console()
    g = glyphs()
    step = result.step
    con.print(Text.assemble(("workshop check ", "bold"), (f"{step}", "bold"),
                            f"  {paths.rel(result.impl)} against "
                            f"{'tests/step%d' % step if only_step else 'the suites of ' + steps_range(0, step)}"))
    con.print(Text(f"$ {result.command}", style="dim"), soft_wrap=True)
    if result.offline:
        n = len(result.offline["checks"])
        con.print(Text(f"{g['warn']} {n} check{'s that need' if n != 1 else ' that needs'} Docker Hub "
                       f"{'were' if n != 1 else 'was'} not run ({result.offline['reason']}); "
                       f"where Docker Hub answers, `workshop check {step}` runs "
                       f"{'them' if n != 1 else 'it'} too.", style="yellow"), soft_wrap=True)

    if result.error:
        con.print()
        con.print(f"[bold red]{g['fail']} {escape(result.error)}[/]")
        if result.interrupted:
            _swept(con, result)
            return
        tail = result.output.strip().splitlines()[-40:]
        if tail:
            con.print("[dim]pytest said:[/]")
            con.print(Text("\n".join(tail)), soft_wrap=True)
        con.print("[yellow]This is a problem with the workshop's tests or set-up, not with your code; "
                  "run `workshop doctor`, or the command above to see everything.[/]")
        return
    if not result.checks:  # -k selected nothing
        con.print()
        con.print(Text(f"{g['fail']} no check of {steps_range(0, step) if not only_step else f'step {step}'} "
                       f"matches -k {result.keyword!r} ({result.deselected} checks left out). "
                       f"The names to match are those in the table of `workshop check {step}`.",
                       style="bold yellow"), soft_wrap=True)
        return

    _table(con, result)
    _simulations(con, result)
    diagnosed = found(result.checks)
    for diagnosis, explained in diagnosed:
        _diagnosis(con, diagnosis, explained, len(result.failing()))
    groups = result.by_step()
    current = groups.get(step, {"failing": []})
    earlier = [e for s, e in sorted(groups.items(), reverse=True) if s != step]
    failing = [c for c in current["failing"] + [c for e in earlier for c in e["failing"]]
               if not c.get("diagnosis")]
    for i, c in enumerate(failing):
        if i < MAX_DETAILS or verbose:
            _detail(con, c, verbose)
        else:
            if i == MAX_DETAILS:
                con.print()
                con.print(Text(f"{len(failing) - MAX_DETAILS} more failing checks, in short "
                               f"(-v shows them in full):", style="bold"))
            _short(con, c)

    con.print()
    con.print(score_line(result, only_step), style="bold")
    for k in result.missing_suites:
        con.print(f"[yellow]{g['warn']} tests/step{k} does not exist, so step {k} was not checked.[/]")
    _swept(con, result)
    con.print(next_line(result, only_step))


def _table(con, result: Result) -> None:
    from rich.table import Table
    from rich.text import Text

    g = glyphs()
    step = result.step
    groups = result.by_step()
    current = groups.get(step, {"passed": 0, "total": 0, "tests": [], "failing": []})
    earlier = {s: e for s, e in groups.items() if s != step}
    name_width = max(map(len, map(_name_text, result.checks)), default=0)
    titles = con.width - name_width - 6 >= 20  # else no titles: the names come first, they are copied into -k
    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True, min_width=min(name_width, con.width - 4))
    if titles:
        table.add_column("", overflow="fold", style="dim", ratio=1)

    def check_row(c: dict) -> None:
        mark = Text(g["ok"], style="green") if c["ok"] else Text(g["fail"], style="bold red")
        name = Text(c["label"], style="" if c["ok"] else "bold")
        outcome, simulated = _name_notes(c)
        if outcome:
            name.append(outcome, style="yellow")
        if simulated:
            name.append(simulated, style="cyan")
        table.add_row(mark, name, *([Text(c.get("title", ""))] if titles else []))

    table.add_row("", Text(f"Step {step}: {meta.title(step)}", style="bold underline"), *([""] if titles else []))
    for c in sorted(current["tests"], key=lambda c: c["ok"]):
        check_row(c)
    for s, e in sorted(earlier.items(), reverse=True):
        table.add_row("", "", *([""] if titles else []))
        label = Text(f"Step {s}: {meta.title(s)}", style="bold")
        summary = _all_pass(e["total"]) if e["passed"] == e["total"] else \
            f"{e['total'] - e['passed']} of {e['total']} checks fail"
        if not titles:
            label.append(f": {summary}", style="dim")
        mark = Text(g["ok"], style="green") if e["passed"] == e["total"] else Text(g["fail"], style="bold red")
        table.add_row(mark, label, *([summary] if titles else []))
        if e["passed"] != e["total"]:
            for c in e["failing"]:
                check_row(c)
    con.print()
    con.print(table)


def _name_notes(c: dict) -> tuple[str, str]:
    """What the table adds to a check's name: how it ended (when not passed or failed), simulated."""
    outcome = "" if c["ok"] or c["outcome"] in ("failed", "xfailed") else f"  ({_outcome_word(c['outcome'])})"
    return outcome, "  (simulated)" if c.get("simulated") else ""


def _name_text(c: dict) -> str:
    return c["label"] + "".join(_name_notes(c))


def _simulations(con, result: Result) -> None:
    """Which checks ran against a simulation, and which against the real kernel."""
    from rich.text import Text

    by_reason: dict[str, int] = {}
    for c in result.checks:
        if c.get("simulated"):
            by_reason[c["simulated"]] = by_reason.get(c["simulated"], 0) + 1
    if not by_reason:
        return
    real = result.total - sum(by_reason.values())
    con.print()
    for reason, n in by_reason.items():
        con.print(Text(f"{n} check{'s' if n != 1 else ''} (marked simulated) ran against a simulation, "
                       f"not the real kernel: {reason}", style="cyan"), soft_wrap=True)
    con.print(Text(f"The other {real} ran against the real kernel of this machine.", style="dim"))


def _diagnosis(con, diagnosis: meta.Diagnosis, explained: list[dict], failing: int) -> None:
    from rich.table import Table
    from rich.text import Text

    g = glyphs()
    con.print()
    head = Text(f"{g['fail']} ", style="bold red")
    head.append(f"{len(explained)} of {failing} failing checks fail the same way: {diagnosis.symptom}",
                style="bold")
    con.print(head)
    grid = Table.grid(padding=(0, 0), pad_edge=False)
    grid.add_column(no_wrap=True, style="dim", width=12)
    grid.add_column(overflow="fold")
    example = explained[0]
    if example.get("command"):
        con.print(Text.assemble((f"  {'ran:':<10}", "dim"), (example["command"], "cyan")), soft_wrap=True)
    if example.get("run") and example["run"].get("stderr"):
        grid.add_row("  stderr:", Text(example["run"]["stderr"].strip(), style="red"))
    grid.add_row("  fix:", Text(diagnosis.fix, style="yellow"))
    grid.add_row("  read:", Text(diagnosis.where(), style="magenta"))
    con.print(grid)
    for c in explained[:MAX_DETAILS]:
        _short(con, c, hint=False)
    if len(explained) > MAX_DETAILS:
        con.print(Text(f"  ... and {len(explained) - MAX_DETAILS} more checks that fail this way", style="dim"))


def _detail(con, c: dict, verbose: bool) -> None:
    from rich.table import Table
    from rich.text import Text

    g = glyphs()
    con.print()
    head = Text(f"{g['fail']} ", style="bold red")
    head.append(f"step {c.get('step')} {g['dot']} {c['label']}", style="bold")
    if c.get("title"):
        head.append(f": {c['title']}")
    con.print(head)
    # The command stays on one (soft-wrapped) line, so it can be copied and run.
    if c.get("command"):
        con.print(Text.assemble((f"  {'ran:':<10}", "dim"), (c["command"], "cyan")), soft_wrap=True)
    rows = []
    if c.get("expected") is not None:
        rows.append(("expected", c["expected"], "green"))
    if c.get("got") is not None:
        rows.append(("got", c["got"], "red"))
    if c.get("output"):
        rows.append(("output", c["output"], "dim"))
    problem = message(c)
    if c.get("outcome") == "skipped":
        problem = f"the check could not run: {problem}"
    if problem:
        rows.append(("problem", problem, ""))
    if c.get("simulated"):
        rows.append(("simulated", c["simulated"], "cyan"))
    if c.get("hint"):
        rows.append(("hint", c["hint"], "yellow"))
    if _read(c):
        rows.append(("read", _read(c), "magenta"))
    grid = Table.grid(padding=(0, 0), pad_edge=False)
    grid.add_column(no_wrap=True, style="dim", width=12)
    grid.add_column(overflow="fold")
    for key, value, style in rows:
        grid.add_row(f"  {key}:", Text(str(value), style=style))
    if grid.row_count:
        con.print(grid)
    if verbose and c.get("longrepr"):
        con.print(Text(c["longrepr"], style="dim"))


def _all_pass(n: int) -> str:
    return "its one check passes" if n == 1 else f"all {n} checks pass"


def _short(con, c: dict, hint: bool = True) -> None:
    from rich.text import Text

    g = glyphs()
    line = Text(f"{g['fail']} ", style="bold red")
    line.append(f"step {c.get('step')} {g['dot']} {c['label']}", style="bold")
    if c.get("expected") is not None and c.get("got") is not None:
        line.append(f": expected {c['expected']}, got {c['got']}")
    else:
        lines = [x.strip() for x in message(c).splitlines() if x.strip()]
        if lines:  # a first line that ends in ':' announces the next ("left this behind:")
            line.append(": " + (" ".join(lines[:2]) if lines[0].endswith(":") else lines[0]))
    con.print(line)
    if hint and c.get("hint"):
        con.print(Text(f"  hint: {c['hint']}", style="yellow"))


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


def _swept(con, result: Result) -> None:
    from rich.text import Text

    if result.swept:
        con.print(Text(f"cleaned up what the checks left: {', '.join(result.swept)}", style="dim"), soft_wrap=True)


def next_line(result: Result, only_step: bool = False) -> str:
    from rich.markup import escape

    step = result.step
    later = [k for k in meta.numbers() if k > step]
    if result.ok:
        if only_step:
            return (f"[green]Step {step}'s own checks pass.[/] Run `workshop check {step}` to check "
                    f"the earlier steps too.")
        if later:
            return (f"[green]Step {step} done.[/] Compare with the reference: `workshop solution {step}`. "
                    f"Next: `workshop show {later[0]}`, then `workshop check {later[0]}`.")
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
