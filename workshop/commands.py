"""The `workshop` commands (click): their options, and which module does the work.

The entry point is workshop.cli:main, which answers `workshop` / `workshop
progress` without importing this module. Only click is imported up front;
each command imports what it needs (grading, the views in workshop/views/,
diffs, reset, guide ...).
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


def _check_step_exists(step: int) -> None:
    from .meta import numbers

    known = numbers()
    if step not in known:
        _err(f"there is no step {step}; the steps are {known[0]} to {known[-1]}" if known
             else f"there is no step {step}", 2)


def _default_step() -> int:
    from .state import first_unfinished

    return first_unfinished()


def _need_solution(step: int):
    from . import paths

    folder = paths.solution_dir(step)
    if not folder.is_dir():
        _err(f"{paths.rel(folder)} does not exist; generate it: python3 -m workshop.generate")
    return folder


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


@cli.command()
def progress():
    """Every step with its state, and what to do next."""
    from .views.progress import render

    render()


# ------------------------------------------------------------------ check


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
@click.option("--offline", is_flag=True,
              help="Leave out the checks that need Docker Hub (without it they are left out only "
                   "when Docker Hub does not answer).")
def check(step, solution, impl, only_step, as_json, watch, verbose, interval, max_runs, keyword, offline):
    """Grade your steps/STEP against the checks of steps 0..STEP.

    STEP defaults to the first step that does not pass yet. Exit status 0 when
    every check passes, 1 when some fail, 2 when the checks could not run.
    """
    from . import paths
    from .grading import impl_for

    if solution and impl:
        raise click.UsageError("--solution and --impl are alternatives; give one")
    if step is None:
        step = _default_step()
    _check_step_exists(step)
    folder = impl_for(step, solution, impl)
    if not folder.is_dir():
        hint = ("regenerate it: python3 -m workshop.generate" if not impl
                else "give a folder that holds udocker/")
        _err(f"{paths.rel(folder)} does not exist; {hint}", 2)
    learner = not solution and not impl

    def once(run: int = 0) -> int:
        if run and sys.stdout.isatty() and not as_json:
            _console().clear()
        return _check_once(step, folder, learner, only_step, as_json, verbose, keyword, offline)

    if not watch:
        try:
            sys.exit(once())
        except KeyboardInterrupt:
            click.echo("\nworkshop check: interrupted", err=True)
            sys.exit(130)
    from rich.text import Text

    from .watch import loop

    def between() -> None:
        if not as_json:
            _console().print(Text(f"watching {paths.rel(folder)}/ for changes (Ctrl-C to stop)", style="dim"))

    sys.exit(loop(once, folder, interval, max_runs, between))


def _check_once(step, folder, learner, only_step, as_json, verbose, keyword, offline) -> int:
    import json

    from . import grading, state

    stream = sys.stderr if (verbose and as_json) else (sys.stdout if verbose else None)
    if not as_json and not verbose and sys.stdout.isatty():
        with _console().status(f"checking step {step} ...") as status:
            def progress(number: int, total: int, name: str) -> None:
                status.update(f"checking step {step}: {number} of {total}, {name}")
            result = grading.run(step, folder, only_step, keyword, offline, progress=progress)
    else:
        result = grading.run(step, folder, only_step, keyword, offline, stream=stream)
    if learner:
        state.record_result(result)
    if as_json:
        click.echo(json.dumps(grading.to_json(result), indent=2))
    else:
        from .views.check import render

        render(result, only_step=only_step, verbose=verbose)
    if result.interrupted:
        raise KeyboardInterrupt
    if result.error or not result.checks:
        return 2
    return 0 if result.ok else 1


# ------------------------------------------------------------------ show, hint


@cli.command()
@click.argument("step", type=STEP)
@click.option("--raw", is_flag=True, help="Print the Markdown source.")
@click.option("--pager", is_flag=True, help="Page the lesson (less).")
def show(step, raw, pager):
    """Print STEP's lesson from the guide (workshop.md)."""
    from .views.show import render

    _check_step_exists(step)
    render(step, raw, pager)


@cli.command()
@click.argument("step", type=STEP, required=False)
@click.option("--all", "show_all", is_flag=True, help="Show every tier at once.")
@click.option("--reset", is_flag=True, help="Start again from the first tier.")
def hint(step, show_all, reset):
    """A hint for STEP, one tier more each time you ask."""
    from .views.hint import render

    if step is None:
        step = _default_step()
    _check_step_exists(step)
    render(step, show_all, reset)


# ------------------------------------------------------------------ diff, solution


@cli.command()
@click.argument("step", type=STEP)
@click.option("--stat", is_flag=True, help="Only which files change, and how much.")
@click.option("--mine", is_flag=True, help="What you changed in steps/STEP since its starting code.")
def diff(step, stat, mine):
    """What STEP adds: solutions/step(STEP-1) -> solutions/STEP."""
    import tempfile
    from pathlib import Path

    from . import paths
    from .diffs import unified_diff
    from .views.diff import render

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
        new = _need_solution(step)
        old = paths.solution_dir(step - 1) if step > 0 else None
        diffs = unified_diff(old, new, f"a/solutions/step{step - 1}", f"b/solutions/step{step}")
    if not diffs:
        _console().print("no changes" + (" (your folder is as generated)" if mine else ""))
        return
    render(diffs, stat)


@cli.command()
@click.argument("step", type=STEP)
@click.option("--force", is_flag=True, help="Show it even though the step does not pass yet.")
@click.option("--diff", "as_diff", is_flag=True, help="Show it as a diff from your steps/STEP.")
def solution(step, force, as_diff):
    """Show the reference solution of STEP (once your step passes)."""
    from . import paths, state

    _check_step_exists(step)
    if state.step_status(state.load(), step) != state.PASSING and not force:
        _err(f"step {step} does not pass yet (`workshop check {step}`). Try `workshop hint {step}` first; "
             f"`workshop solution {step} --force` shows the reference anyway.")
    ref = _need_solution(step)
    if as_diff:
        from .diffs import unified_diff
        from .views import diff as diff_view

        diffs = unified_diff(paths.steps_dir(step), ref, f"a/steps/step{step}", f"b/solutions/step{step}")
        if not diffs:
            _console().print(f"Your steps/step{step} is the same as the reference.")
        diff_view.render(diffs)
        return
    from .views.solution import render

    render(step)


# ------------------------------------------------------------------ reset


@cli.command()
@click.argument("step")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(step, yes):
    """Put steps/STEP back to its starting code (STEP may be `all`).

    Your version is kept first, in .workshop/backups/.
    """
    import time

    from rich.text import Text

    from . import meta, paths
    from .reset import backups
    from .reset import reset as reset_step
    from .ui import glyphs

    if step.strip().lower() == "all":
        targets = [s for s in meta.numbers() if paths.steps_dir(s).is_dir()]
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
                      f"{paths.rel(backups())}/", abort=True)
    con, g = _console(), glyphs()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    code = 0
    for s in targets:
        outcome = reset_step(s, stamp)
        if outcome.error:
            con.print(Text.assemble((g["fail"], "red"), f" step {s}: {outcome.error}; nothing was changed"))
            code = 1
            continue
        kept = f"; your version is in {paths.rel(outcome.backup)}/" if outcome.backup else ""
        con.print(Text.assemble((g["ok"], "green"),
                                f" steps/step{s} is back to its starting code (from {outcome.source}){kept}"))
    sys.exit(code)


# ------------------------------------------------------------------ doctor, clean, demo


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable results.")
def doctor(as_json):
    """Is this machine ready for the workshop? Each problem comes with its fix."""
    from .views.doctor import render

    sys.exit(render(as_json))


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
    the scratch folders of checks and tests that were killed outright, and the
    address leases of containers whose runtime is gone (step 9; with --network,
    the NAT rule and the bridge too).
    """
    from .views.clean import render

    sys.exit(render(dry_run, extra, stop_all, network))


@cli.command()
@click.option("--step", "step", type=STEP, help="Use solutions/STEP (default: the newest).")
@click.option("--impl", metavar="DIR", type=click.Path(file_okay=False), help="Use another runtime folder.")
@click.option("--rootfs", metavar="DIR", type=click.Path(file_okay=False),
              help="The root filesystem (default: $WORKSHOP_ROOTFS or /var/lib/container-workshop/busybox).")
def demo(step, impl, rootfs):
    """Show the finished runtime: hostname, PID 1, root inside, a memory limit."""
    from . import demo as demo_mod

    sys.exit(demo_mod.run(step=step, impl=impl, rootfs_dir=rootfs))


# ------------------------------------------------------------------ maintainers


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--network", is_flag=True, help="Also run the tests that need the real Docker Hub.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def selftest(network, pytest_args):
    """Maintainers: run the whole matrix (python -m pytest PYTEST_ARGS from the repo root).

    Tests marked `network` need the real Docker Hub; they are deselected (pytest
    reports how many) unless --network is given.
    """
    from .maintainer import pytest_in_repo

    if not network:
        pytest_args = ("-m", "not network", *pytest_args)
    sys.exit(pytest_in_repo(list(pytest_args)))


@cli.group()
def dev():
    """Maintainers: quick checks of the workshop itself."""


@dev.command("check")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def dev_check(pytest_args):
    """In seconds, without root: the generated folders are in sync with reference/, no marker
    leaks, the reference parses, steps.toml matches the tests and the guide, every starter is
    its previous solution plus TODOs.

    These are the static tests of tests/tooling (workshop.maintainer.STATIC_TESTS).
    """
    from .maintainer import STATIC_TESTS, pytest_in_repo

    sys.exit(pytest_in_repo([*STATIC_TESTS, "-q", "-p", "no:cacheprovider", *pytest_args]))


main = cli


# ------------------------------------------------------------------ registry (workshop/registry.py)

from .registry import command as _registry_command  # noqa: E402

cli.add_command(_registry_command)
