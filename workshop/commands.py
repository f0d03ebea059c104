"""The `workshop` commands (click). The entry point is workshop.cli:main,
which answers `workshop` / `workshop progress` without importing this module.

Only click is imported up front; rich and every helper module are imported by
the command that needs them.
"""

from __future__ import annotations

import sys

import click

from . import __version__

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class StepType(click.ParamType):
    """3, step3, steps/step3/ -> 3"""

    name = "STEP"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            return value
        from .paths import parse_step

        try:
            return parse_step(value)
        except ValueError as e:
            self.fail(str(e), param, ctx)


STEP = StepType()


def _console():
    from .ui import console

    return console()


def _err(message: str, code: int = 1):
    from rich.markup import escape

    from .ui import glyphs

    _console().print(f"[bold red]{glyphs()['fail']}[/] {escape(message)}")
    sys.exit(code)


def _known_steps() -> list[int]:
    from .progress import known_steps

    return known_steps()


def _check_step_exists(step: int) -> None:
    known = _known_steps()
    if step not in known:
        _err(f"there is no step {step}; the steps are {known[0]} to {known[-1]}" if known
             else f"there is no step {step}", 2)


# ------------------------------------------------------------------ the group


@click.group(context_settings=CONTEXT, invoke_without_command=True)
@click.version_option(__version__, prog_name="workshop", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx):
    """Build your own container runtime, step by step.

    \b
    Start:      workshop show 0        read step 0
                workshop check         check the step you are on
                workshop hint 3        a hint, one more each time
    Instructor: workshop diff 4        what step 4 adds, as a diff
                workshop reset 4       back to step 4's starting code
    Machine:    workshop doctor        is this machine ready?
                workshop clean         remove what crashed containers left

    Without a command: your progress (workshop progress).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(progress)


# ------------------------------------------------------------------ progress


@cli.command()
def progress():
    """Every step with its state, and what to do next."""
    from .progress import render

    render()


# ------------------------------------------------------------------ check


def _default_step() -> int:
    from .progress import first_unfinished

    return first_unfinished()


@cli.command()
@click.argument("step", type=STEP, required=False)
@click.option("--solution", is_flag=True, help="Grade solutions/STEP instead of your steps/STEP.")
@click.option("--impl", "impl", metavar="DIR", type=click.Path(file_okay=False),
              help="Grade another folder (it holds udocker/).")
@click.option("--only", "only_step", is_flag=True, help="Run STEP's own checks only, not the earlier steps'.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
@click.option("--watch", is_flag=True, help="Check again whenever a file of the step folder changes.")
@click.option("-v", "--verbose", is_flag=True, help="Also show pytest's own output and full tracebacks.")
@click.option("--interval", type=float, default=1.0, show_default=True, hidden=True,
              help="Seconds between polls in --watch.")
@click.option("--max-runs", type=int, default=0, hidden=True, help="Stop --watch after N runs (tests).")
@click.option("-k", "keyword", metavar="EXPR", help="Only the checks whose names match EXPR (pytest -k).")
@click.option("--offline", is_flag=True, help="Leave out the checks that need the internet (Docker Hub).")
def check(step, solution, impl, only_step, as_json, watch, verbose, interval, max_runs, keyword, offline):
    """Grade your steps/STEP against the checks of steps 0..STEP.

    STEP defaults to the first step that does not pass yet. Exit status 0 when
    every check passes, 1 when some fail, 2 when the checks could not run.
    """
    from . import paths

    if solution and impl:
        raise click.UsageError("--solution and --impl are alternatives; give one")
    if step is None:
        step = _default_step()
    _check_step_exists(step)
    from .grading import impl_for

    folder = impl_for(step, solution, impl)
    if not folder.is_dir():
        hint = ("regenerate it: python3 -m workshop.generate" if not impl
                else "give a folder that holds udocker/")
        _err(f"{paths.rel(folder)} does not exist; {hint}", 2)
    learner = not solution and not impl
    extra = (["-k", keyword] if keyword else []) + (["-m", "not network"] if offline else [])

    if not watch:
        try:
            code = _check_once(step, folder, learner, only_step, as_json, verbose, extra)
        except KeyboardInterrupt:
            click.echo("\nworkshop check: interrupted", err=True)
            code = 130
        sys.exit(code)
    sys.exit(_watch(step, folder, learner, only_step, as_json, verbose, extra, interval, max_runs))


def _check_once(step, folder, learner, only_step, as_json, verbose, extra) -> int:
    import json

    from . import grading, state

    stream = sys.stderr if (verbose and as_json) else (sys.stdout if verbose else None)
    if not as_json and not verbose and sys.stdout.isatty():
        with _console().status(f"checking step {step} ..."):
            result = grading.run(step, folder, only_step, extra)
    else:
        result = grading.run(step, folder, only_step, extra, stream=stream)

    if learner and not result.error and "-k" not in extra:  # a -k run checks only some: no verdict
        groups = result.by_step()
        cur = groups.get(step, {"passed": 0, "total": 0, "failing": []})
        if only_step and cur["passed"] == cur["total"]:
            pass  # passing needs the earlier steps' checks too: do not record it
        else:
            passed = result.passed if not only_step else cur["passed"]
            total = result.total if not only_step else cur["total"]
            failing = sorted({t.get("name", "") for e in groups.values() for t in e["failing"]})
            state.record_check(step, passed, total, failing)

    if as_json:
        click.echo(json.dumps(grading.to_json(result), indent=2))
    else:
        from .checkview import render

        render(result, only_step=only_step, verbose=verbose)
    if result.error:
        return 2
    return 0 if result.ok else 1


def _snapshot(folder) -> dict:
    import os

    snap = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if d not in ("__pycache__", ".pytest_cache") and not d.startswith(".")]
        for f in filenames:
            if f.endswith((".pyc", ".swp", "~")) or f.startswith(".#"):
                continue
            p = os.path.join(dirpath, f)
            try:
                st = os.stat(p)
            except OSError:
                continue
            snap[p] = (st.st_mtime_ns, st.st_size)
    return snap


def _watch(step, folder, learner, only_step, as_json, verbose, extra, interval, max_runs) -> int:
    """Poll mtimes (VirtualBox shared folders and some network file systems send no inotify events)."""
    import time

    from rich.text import Text

    from . import paths

    con = _console()
    runs, code = 0, 1
    try:
        while True:
            if runs and sys.stdout.isatty() and not as_json:
                con.clear()
            code = _check_once(step, folder, learner, only_step, as_json, verbose, extra)
            runs += 1
            if max_runs and runs >= max_runs:
                return code
            if not as_json:
                con.print(Text(f"watching {paths.rel(folder)}/ for changes (Ctrl-C to stop)", style="dim"))
            before = _snapshot(folder)
            while True:
                time.sleep(interval)
                now = _snapshot(folder)
                if now != before:
                    time.sleep(min(0.2, interval))  # let an editor finish writing
                    break
    except KeyboardInterrupt:
        if not as_json:
            con.print()
        return code


# ------------------------------------------------------------------ show


def guide_section(step: int) -> str | None:
    """The text of `## Step N: ...` in workshop.md, up to the next heading of level 1 or 2."""
    import re

    from . import paths

    try:
        text = paths.guide().read_text(encoding="utf-8")
    except OSError:
        return None
    head = re.compile(rf"^##\s+Step\s+{step}\b", re.IGNORECASE)
    out, inside, fence = [], False, False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fence = not fence
        elif not fence and re.match(r"^#{1,2}\s", line):
            if inside:
                break
            inside = bool(head.match(line))
        if inside:
            out.append(line)
    return "\n".join(out).strip() or None


@cli.command()
@click.argument("step", type=STEP)
@click.option("--raw", is_flag=True, help="Print the Markdown source.")
@click.option("--pager", is_flag=True, help="Page the lesson (less).")
def show(step, raw, pager):
    """Print STEP's lesson from the guide (workshop.md)."""
    from rich.markdown import Markdown

    from . import meta, paths

    _check_step_exists(step)
    con = _console()
    section = guide_section(step)
    info = meta.step(step)
    if section is None:
        where = "there is no workshop.md yet" if not paths.guide().exists() else "workshop.md has no `## Step %d` section" % step
        lines = [f"## Step {step}: {info['title']}", ""]
        if info["goal"]:
            lines += [f"**Goal:** {info['goal']}", ""]
        if info["learn"]:
            lines += ["You will learn to:", ""] + [f"- {x}" for x in info["learn"]] + [""]
        if info["read"]:
            lines += ["Read:", ""] + [f"- `{x}`" if x.startswith("man ") else f"- {x}" for x in info["read"]] + [""]
        lines += [f"_The guide has no section for step {step} ({where}); this is the summary from steps.toml._"]
        section = "\n".join(lines)
    else:
        section += (f"\n\n---\n\nWhen you are ready: `workshop check {step}` (`--watch` re-runs on save); "
                    f"stuck: `workshop hint {step}`.")
    if raw:
        click.echo(section)
        return
    md = Markdown(section, code_theme="ansi_dark", hyperlinks=False)
    if pager:
        with con.pager(styles=True):
            con.print(md)
    else:
        con.print(md)


# ------------------------------------------------------------------ hint


@cli.command()
@click.argument("step", type=STEP, required=False)
@click.option("--all", "show_all", is_flag=True, help="Show every tier at once.")
@click.option("--reset", is_flag=True, help="Start again from the first tier.")
def hint(step, show_all, reset):
    """A hint for STEP, one tier more each time you ask."""
    from rich.text import Text

    from . import meta, state

    if step is None:
        step = _default_step()
    _check_step_exists(step)
    con = _console()
    info = meta.step(step)
    hints = info["hints"]
    data = state.load()
    shown = 0 if reset else state.hint_tier(data, step)
    tier = len(hints) if show_all else min(shown + 1, len(hints))
    from rich.table import Table

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

    entry = data["steps"].get(str(step), {})
    failing = entry.get("failing") or []
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


# ------------------------------------------------------------------ diff


def _tree_files(folder) -> dict[str, str]:
    import os
    from pathlib import Path

    out = {}
    if folder is None or not Path(folder).is_dir():
        return out
    folder = Path(folder)
    if not folder.is_dir():
        return out
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__" and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith((".pyc", ".pyo")) or f.startswith("."):
                continue
            p = Path(dirpath, f)
            try:
                out[str(p.relative_to(folder))] = p.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
    return out


def unified_diff(old_dir, new_dir, old_label: str, new_label: str) -> list[tuple[str, list[str]]]:
    """[(relative path, diff lines)] for every file that differs."""
    import difflib

    a, b = _tree_files(old_dir), _tree_files(new_dir)
    out = []
    for rel in sorted(set(a) | set(b)):
        if a.get(rel) == b.get(rel):
            continue
        lines = list(difflib.unified_diff(
            a.get(rel, "").splitlines(keepends=True), b.get(rel, "").splitlines(keepends=True),
            fromfile=f"{old_label}/{rel}" if rel in a else "/dev/null",
            tofile=f"{new_label}/{rel}" if rel in b else "/dev/null"))
        out.append((rel, [line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                          for line in lines]))
    return out


def _print_diff(diffs, stat: bool) -> None:
    from rich.text import Text

    con = _console()
    if stat:
        total_add = total_del = 0
        width = max((len(rel) for rel, _ in diffs), default=0)
        counts = [(sum(1 for x in lines if x.startswith("+") and not x.startswith("+++")),
                   sum(1 for x in lines if x.startswith("-") and not x.startswith("---"))) for _, lines in diffs]
        scale = max(1.0, max((a + d for a, d in counts), default=0) / 40)
        for (rel, _), (add, dele) in zip(diffs, counts):
            total_add, total_del = total_add + add, total_del + dele
            t = Text(f" {rel:<{width}} | ")
            t.append("+" * (round(add / scale) or (1 if add else 0)), style="green")
            t.append("-" * (round(dele / scale) or (1 if dele else 0)), style="red")
            t.append(f"  +{add} -{dele}", style="dim")
            con.print(t)
        files = "1 file" if len(diffs) == 1 else f"{len(diffs)} files"
        con.print(f" {files} changed, {total_add} insertions(+), {total_del} deletions(-)")
        return
    for _, lines in diffs:
        for line in "".join(lines).splitlines():
            if line.startswith(("+++", "---")):
                style = "bold"
            elif line.startswith("@@"):
                style = "cyan"
            elif line.startswith("+"):
                style = "green"
            elif line.startswith("-"):
                style = "red"
            else:
                style = ""
            con.print(Text(line, style=style), soft_wrap=True)


@cli.command()
@click.argument("step", type=STEP)
@click.option("--stat", is_flag=True, help="Only which files change, and how much.")
@click.option("--mine", is_flag=True, help="What you changed in steps/STEP since its starting code.")
def diff(step, stat, mine):
    """What STEP adds: solutions/step(STEP-1) -> solutions/STEP."""
    import tempfile
    from pathlib import Path

    from . import paths

    _check_step_exists(step)
    if mine:
        from . import pristine

        with tempfile.TemporaryDirectory(prefix="workshop-pristine-") as tmp:
            try:
                pristine.copy(step, Path(tmp) / "pristine")
            except pristine.PristineError as e:
                _err(str(e))
            diffs = unified_diff(Path(tmp) / "pristine", paths.steps_dir(step),
                                 f"a/steps/step{step}", f"b/steps/step{step}")
    else:
        new = paths.solution_dir(step)
        if not new.is_dir():
            _err(f"{paths.rel(new)} does not exist; generate it: python3 -m workshop.generate")
        old = paths.solution_dir(step - 1) if step > 0 else None
        diffs = unified_diff(old, new, f"a/solutions/step{step - 1}", f"b/solutions/step{step}")
    if not diffs:
        _console().print("no changes" + (" (your folder is as generated)" if mine else ""))
        return
    _print_diff(diffs, stat)


# ------------------------------------------------------------------ solution


@cli.command()
@click.argument("step", type=STEP)
@click.option("--force", is_flag=True, help="Show it even though the step does not pass yet.")
@click.option("--diff", "as_diff", is_flag=True, help="Show it as a diff from your steps/STEP.")
def solution(step, force, as_diff):
    """Show the reference solution of STEP (once your step passes)."""
    import difflib

    from rich.syntax import Syntax
    from rich.text import Text

    from . import paths, state

    _check_step_exists(step)
    con = _console()
    data = state.load()
    if state.step_status(data, step) != state.PASSING and not force:
        _err(f"step {step} does not pass yet (`workshop check {step}`). Try `workshop hint {step}` first; "
             f"`workshop solution {step} --force` shows the reference anyway.")
    ref = paths.solution_dir(step)
    if not ref.is_dir():
        _err(f"{paths.rel(ref)} does not exist; generate it: python3 -m workshop.generate")
    if as_diff:
        diffs = unified_diff(paths.steps_dir(step), ref, f"a/steps/step{step}", f"b/solutions/step{step}")
        if not diffs:
            con.print(f"Your steps/step{step} is the same as the reference.")
        _print_diff(diffs, False)
        return
    before = _tree_files(paths.solution_dir(step - 1)) if step > 0 else {}
    after = _tree_files(ref)
    changed = [rel for rel in sorted(after) if before.get(rel) != after[rel]]
    if not changed:
        con.print(f"Step {step} changes no file of the reference: {paths.rel(ref)}/ is the same as step {step - 1}'s.")
        return
    con.print(Text.assemble(("The reference for step %d" % step, "bold"),
                            f": {paths.rel(ref)}/ (the whole runtime as of step {step}). "
                            f"Files step {step} changes, its lines marked:"))
    for rel in changed:
        old = before.get(rel, "").splitlines()
        new = after[rel].splitlines()
        marked = set()
        for tag, _, _, j1, j2 in difflib.SequenceMatcher(None, old, new, autojunk=False).get_opcodes():
            if tag in ("replace", "insert"):
                marked.update(range(j1 + 1, j2 + 1))
        con.print()
        con.print(Text(f"{paths.rel(ref)}/{rel}", style="bold underline"))
        lexer = "python" if rel.endswith(".py") else "text"
        con.print(Syntax(after[rel], lexer, line_numbers=True, highlight_lines=marked,
                         theme="ansi_dark", word_wrap=True))
    con.print()
    con.print(f"[dim]As a diff: `workshop diff {step}`; against your code: "
              f"`workshop solution {step} --diff`.[/]")


# ------------------------------------------------------------------ reset


@cli.command()
@click.argument("step")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(step, yes):
    """Put steps/STEP back to its starting code (STEP may be `all`).

    Your version is kept first, in .workshop/backups/.
    """
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from rich.text import Text

    from . import paths, pristine, state
    from .ui import glyphs

    con = _console()
    g = glyphs()
    if step.strip().lower() == "all":
        targets = [s for s in _known_steps() if paths.steps_dir(s).is_dir()]
    else:
        try:
            targets = [paths.parse_step(step)]
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="STEP")
        _check_step_exists(targets[0])
    if not targets:
        _err("there is no steps/ folder to reset")
    what = ", ".join(f"steps/step{s}" for s in targets)
    if not yes:
        click.confirm(f"Reset {what} to the starting code? Your version is kept in "
                      f"{paths.rel(paths.state_dir() / 'backups')}/", abort=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    code = 0
    for s in targets:
        folder = paths.steps_dir(s)
        with tempfile.TemporaryDirectory(prefix="workshop-reset-") as tmp:
            fresh = Path(tmp) / "fresh"
            try:
                source = pristine.copy(s, fresh)
            except pristine.PristineError as e:
                con.print(Text.assemble((g["fail"], "red"), f" step {s}: {e}; nothing was changed"))
                code = 1
                continue
            backup = None
            if folder.exists():
                backup = paths.state_dir() / "backups" / f"step{s}-{stamp}"
                n = 1
                while backup.exists():
                    n += 1
                    backup = backup.with_name(f"step{s}-{stamp}-{n}")
                backup.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(folder, backup, symlinks=True,
                                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                paths.give_to_owner(paths.state_dir())
                paths.give_to_owner(backup.parent)
                paths.give_to_owner(backup, recursive=True)
                shutil.rmtree(folder)
            shutil.copytree(fresh, folder, symlinks=True)
            paths.give_to_owner(folder, recursive=True)
        state.forget_step(s)
        kept = f"; your version is in {paths.rel(backup)}/" if backup else ""
        con.print(Text.assemble((g["ok"], "green"), f" steps/step{s} is back to its starting code (from {source}){kept}"))
    sys.exit(code)


# ------------------------------------------------------------------ doctor


def _environment_checks() -> list:
    """Run workshop.environment's checks; each is Check(name, ok, detail, fix)."""
    import importlib
    from types import SimpleNamespace

    try:
        env = importlib.import_module("workshop.environment")
    except Exception as e:  # the module is someone else's: never let it crash the doctor
        return [SimpleNamespace(name="workshop.environment", ok=False,
                                detail=f"cannot load the machine checks: {type(e).__name__}: {e}",
                                fix="git status workshop/environment.py")]
    checks = getattr(env, "CHECKS", None)
    results = []
    if checks is None and callable(getattr(env, "run_checks", None)):
        return list(env.run_checks())
    for fn in checks or []:
        try:
            r = fn()
        except Exception as e:
            r = SimpleNamespace(name=getattr(fn, "__name__", "check").removeprefix("check_"), ok=False,
                                detail=f"the check crashed: {type(e).__name__}: {e}", fix="")
        results.extend([r] if hasattr(r, "ok") else list(r))
    return results


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
def doctor(as_json):
    """Is this machine ready for the workshop? Each problem comes with its fix."""
    import json

    from rich.table import Table
    from rich.text import Text

    from .ui import glyphs

    results = _environment_checks()
    failed = [c for c in results if c.ok is False]
    if as_json:
        click.echo(json.dumps([{"name": c.name, "ok": c.ok, "detail": c.detail, "fix": getattr(c, "fix", "") or ""}
                               for c in results], indent=2))
        sys.exit(1 if failed else 0)
    con = _console()
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
        sys.exit(1)
    con.print()
    con.print(f"[green]{g['ok']} all {len(results)} checks pass: this machine is ready.[/]")


# ------------------------------------------------------------------ clean


@cli.command()
@click.option("-n", "--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--path", "extra", multiple=True, type=click.Path(file_okay=False),
              help="Also clean mounts and containers on this root filesystem (repeatable).")
@click.option("--all", "stop_all", is_flag=True, help="Also stop containers that are still running.")
@click.option("--network", "network", is_flag=True,
              help="Also remove udocker's NAT rule and the udocker0 bridge (step 9), when no container uses them.")
def clean(dry_run, extra, stop_all, network):
    """Remove what crashed containers left behind.

    Stray runtimes and container processes, cgroups named udocker-*, mounts
    below UDOCKER_ROOT or on the workshop's root filesystem (deepest first),
    UDOCKER_ROOT/containers/*, and the address leases of containers whose
    runtime is gone (step 9; with --network, the NAT rule and the bridge too).
    """
    from rich.table import Table
    from rich.text import Text

    from . import paths
    from .clean import Cleaner, default_rootfs_dirs
    from .ui import glyphs

    con = _console()
    g = glyphs()
    root = paths.udocker_root()
    cleaner = Cleaner(root, [*default_rootfs_dirs(), *extra], all=stop_all)
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
        return
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column("")
    table.add_column("what", no_wrap=True)
    table.add_column("target", overflow="fold")
    table.add_column("", overflow="fold", style="dim")
    verbs = {"process": ("killed", "would kill"), "cgroup": ("removed", "would remove"),
             "mount": ("unmounted", "would unmount"), "directory": ("removed", "would remove"),
             "lease": ("released", "would release"), "nat": ("removed", "would remove"),
             "bridge": ("deleted", "would delete")}
    for a in actions:
        done, would = verbs.get(a.kind, ("removed", "would remove"))
        if dry_run:
            table.add_row(Text(g["dot"]), f"{would} {a.kind}", Text(a.target), Text(a.detail))
        elif a.done:
            table.add_row(Text(g["ok"], style="green"), f"{done} {a.kind}", Text(a.target), Text(a.detail))
        else:
            table.add_row(Text(g["fail"], style="bold red"), f"{a.kind}", Text(a.target), Text(f"{a.detail} {a.error}".strip()))
    con.print(table)
    bad = [a for a in actions if not dry_run and not a.done]
    if dry_run:
        con.print(f"{len(actions)} leftovers; `workshop clean{' --all' if stop_all else ''}` removes them.")
    elif bad:
        con.print(f"[bold red]{len(bad)} of {len(actions)} could not be removed[/]"
                  + ("" if __import__("os").geteuid() == 0 else " (try as root: sudo workshop clean)"))
        sys.exit(1)
    else:
        con.print(f"[green]{g['ok']} cleaned {len(actions)} leftovers[/]")


# ------------------------------------------------------------------ demo


@cli.command()
@click.option("--step", "step", type=STEP, help="Use solutions/STEP (default: the newest).")
@click.option("--impl", metavar="DIR", type=click.Path(file_okay=False), help="Use another runtime folder.")
@click.option("--rootfs", metavar="DIR", type=click.Path(file_okay=False),
              help="The root filesystem (default: $WORKSHOP_ROOTFS or /var/lib/container-workshop/busybox).")
def demo(step, impl, rootfs):
    """Show the finished runtime: hostname, PID 1, root inside, a memory limit."""
    from . import demo as demo_mod

    sys.exit(demo_mod.run(step=step, impl=impl, rootfs_dir=rootfs))


# ------------------------------------------------------------------ selftest


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--network", is_flag=True, help="Also run the tests that need the real Docker Hub.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def selftest(network, pytest_args):
    """Maintainers: run the whole matrix (python -m pytest PYTEST_ARGS from the repo root).

    Tests marked `network` need the real Docker Hub; they are deselected (pytest
    reports how many) unless --network is given.
    """
    import subprocess

    from . import paths
    from .grading import pytest_env

    if not network:
        pytest_args = ("-m", "not network", *pytest_args)
    argv = [sys.executable, "-m", "pytest", *pytest_args]
    shown = " ".join(repr(a) if " " in a else a for a in pytest_args)
    click.echo(f"$ (cd {paths.root()} && python3 -m pytest {shown})".rstrip(), err=True)
    try:
        sys.exit(subprocess.call(argv, cwd=paths.root(), env=pytest_env()))
    except KeyboardInterrupt:
        sys.exit(130)


main = cli
