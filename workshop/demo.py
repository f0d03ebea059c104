"""`workshop demo`: the finished runtime in one minute, no network needed.

Builds the busybox root filesystem when it is missing, then runs a few
containers with the newest solutions/stepN, printing every command first:
its own hostname, its own PIDs (PID 1), root inside, a memory limit that
bites, an image pulled from a throwaway registry, a network of its own and the
lockdown. Each run is checked; the demo exits 1 when one misbehaves.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import meta, paths

# one 64 MiB buffer: dd holds it in memory while it copies it
MEMORY_HOG = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]

@dataclass
class Scene:
    title: str
    since: int                       # the first step whose runtime can do it
    options: list[str]
    command: list[str]
    expect: Callable[[int, str, str], bool]  # (exit status, stdout, stderr)
    expected: str
    root_only: bool = False


SCENES = [
    Scene("Its own hostname (a UTS namespace)", 2, ["--hostname", "demo"], ["hostname"],
          lambda rc, out, err: rc == 0 and out.strip() == "demo", "prints demo"),
    Scene("Its own process tree: the command is PID 1 (a PID namespace, its own /proc)", 4, [], ["ps"],
          lambda rc, out, err: rc == 0 and any(line.split()[:1] == ["1"] for line in out.splitlines()[1:]),
          "ps lists PID 1"),
    Scene("Root inside (a user namespace maps it to you when you are not root)", 3, [], ["id"],
          lambda rc, out, err: rc == 0 and "uid=0(" in out, "uid=0(root)"),
    Scene("A 64 MiB buffer without a limit", 6, [], MEMORY_HOG,
          lambda rc, out, err: rc == 0, "exit status 0"),
    Scene("The same with --memory 32m (a cgroup): the kernel kills it", 6, ["--memory", "32m"],
          MEMORY_HOG, lambda rc, out, err: rc == 137, "exit status 137 (128 + SIGKILL)", root_only=True),
    # --network none (udocker's default) only: bridge would make a bridge and NAT on this machine
    Scene("A network of its own: only lo (a network namespace)", 9, ["--network", "none"],
          ["cat", "/proc/net/dev"],
          lambda rc, out, err: rc == 0 and [line.split(":")[0].strip() for line in out.splitlines()[2:]] == ["lo"],
          "one interface, lo"),
    Scene("Locked down: root inside may not mount (Docker's capabilities and seccomp)", 10, [],
          ["sh", "-c", "mount -t tmpfs demo /tmp && echo mounted || echo refused"],
          lambda rc, out, err: rc == 0 and out.strip() == "refused", "refused"),
]


def newest_solution() -> int | None:
    """The newest step whose solutions/stepN folder holds a runtime."""
    found = [n for n, folder in paths.step_folders("solutions").items()
             if (folder / "udocker" / "__main__.py").exists()]
    return found[-1] if found else None


def ensure_rootfs(dest: str | None, say) -> Path:
    from . import rootfs

    path = Path(dest) if dest else rootfs.default_dest()
    if (path / "bin" / "busybox").exists():
        say(f"root filesystem: {path}")
        return path
    say(f"building the busybox root filesystem in {path} (python3 -m workshop.rootfs {path})")
    return rootfs.build_rootfs(path)


def run(step: int | None = None, impl: str | None = None, rootfs_dir: str | None = None,
        timeout: float = 60.0) -> int:
    from rich.markup import escape
    from rich.text import Text

    from .ui import console, glyphs

    con = console()
    g = glyphs()
    if impl:
        folder = Path(impl).resolve()
        step = step if step is not None else meta.numbers()[-1]  # a folder of unknown step: any scene
    else:
        step = newest_solution() if step is None else step
        if step is None:
            con.print(f"[red]{g['fail']} no solutions/stepN folder found.[/] "
                      "Generate them: python3 -m workshop.generate")
            return 1
        folder = paths.solution_dir(step)
    if not (folder / "udocker").is_dir():
        con.print(f"[red]{g['fail']} {escape(str(folder))} has no udocker/ package.[/]")
        return 1
    if step < 3:
        con.print(f"[red]{g['fail']} the demo needs a runtime from step 3 on (a root filesystem); "
                  f"this one is step {step}.[/]")
        return 1
    try:
        rootfs = ensure_rootfs(rootfs_dir, lambda s: con.print(Text(s, style="dim")))
    except Exception as e:  # RootfsError, OSError: the message says what to do
        con.print(f"[red]{g['fail']} cannot build the root filesystem: {escape(str(e))}[/]")
        return 1

    rel_folder = paths.rel(folder)
    con.print(Text.assemble(("udocker demo", "bold"), f": the runtime of {rel_folder}, containers on {rootfs}"))
    env = dict(os.environ, PYTHONPATH=str(folder))
    failures = 0
    ran = 0
    for scene in SCENES:
        if scene.since > step:
            continue
        con.print()
        con.print(Text(scene.title, style="bold"))
        if scene.root_only and os.geteuid() != 0:
            con.print(Text("  skipped: cgroup limits need root (or a delegated cgroup); run the demo with sudo",
                           style="yellow"))
            continue
        args = ["run", *scene.options, str(rootfs), *scene.command]
        ran += 1
        failures += 0 if show_run(con, g, rel_folder, args, env, timeout, scene.expect, scene.expected) else 1
    if step >= 8:
        image_ran, image_failures = run_image_scenes(con, g, folder, rel_folder, timeout)
        ran, failures = ran + image_ran, failures + image_failures
    con.print()
    if failures:
        con.print(f"[bold red]{failures} of {ran} demo runs misbehaved.[/] "
                  "`workshop doctor` checks the machine; `workshop selftest` the solutions.")
        return 1
    con.print(f"[green]{g['ok']} all {ran} demo runs behaved.[/] Build it yourself: `workshop show 0`.")
    return 0


def run_image_scenes(con, g, folder: Path, rel_folder: str, timeout: float) -> tuple[int, int]:
    """Steps 7-8: a throwaway registry, a pull from it, and runs of the pulled image; (runs, failures).

    The registry (workshop.registry.LocalRegistry, on a free loopback port) and
    the image store (a temporary UDOCKER_ROOT) are removed at the end: nothing
    keeps running.
    """
    import tempfile

    from rich.text import Text

    from . import scratch
    from .registry import LocalRegistry, RegistryError

    con.print()
    con.print(Text("An image from a registry (steps 7 and 8)", style="bold"))
    ran = failures = 0
    with tempfile.TemporaryDirectory(prefix="workshop-demo-") as temp:
        held = scratch.hold(temp)  # `workshop clean` removes it (and its registry) if we are killed
        try:
            registry = LocalRegistry(os.path.join(temp, "registry"))
            registry.__enter__()
        except (RegistryError, OSError) as error:
            con.print(Text(f"  {g['fail']} cannot start a throwaway registry: {error}", style="bold red"))
            os.close(held)
            return 1, 1
        try:
            image = f"{registry.address}/workshop/config"
            con.print(Text(f"  a throwaway registry on {registry.address}, with workshop/config pushed: Env "
                           "GREETING=hello, WorkingDir /srv/app, Entrypoint sh -c", style="dim"))
            env = dict(os.environ, PYTHONPATH=str(folder), UDOCKER_ROOT=os.path.join(temp, "store"))
            scenes = [
                (["pull", image], lambda rc, out, err: rc == 0 and "Downloaded" in err,
                 "exit status 0: every layer checked against its digest"),
                (["run", image], lambda rc, out, err: rc == 0 and out == "hello from /srv/app\n",
                 "hello from /srv/app: the image's Env, WorkingDir, Entrypoint and Cmd"),
                (["run", image, "echo written > note; cat note"],
                 lambda rc, out, err: rc == 0 and out == "written\n", "written: a writable layer of its own"),
                (["run", image, "cat note || echo gone"], lambda rc, out, err: rc == 0 and out.endswith("gone\n"),
                 "gone: every run starts from the pristine image"),
            ]
            for args, expect, expected in scenes:
                ran += 1
                failures += 0 if show_run(con, g, rel_folder, args, env, timeout, expect, expected) else 1
        finally:
            registry.__exit__(None, None, None)
            os.close(held)
    return ran, failures


def show_run(con, g, rel_folder: str, args: list[str], env: dict, timeout: float, expect, expected: str) -> bool:
    """Print `python3 -m udocker ARGS`, run it, print its output and whether it did what EXPECT wants."""
    from rich.text import Text

    con.print(Text(f"$ PYTHONPATH={rel_folder} python3 -m udocker {shlex.join(args)}", style="cyan"), soft_wrap=True)
    try:
        proc = subprocess.run([sys.executable, "-m", "udocker", *args], env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, errors="replace", timeout=timeout)
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = None, "", f"(no answer after {timeout:.0f} s)"
    for line in out.rstrip("\n").splitlines():
        con.print(Text("  " + line), soft_wrap=True)
    for line in err.rstrip("\n").splitlines():
        con.print(Text("  " + line, style="dim yellow"), soft_wrap=True)
    ok = rc is not None and expect(rc, out, err)
    status = f"exit status {rc}" if rc is not None else "timed out"
    con.print(Text(f"  {g['ok' if ok else 'fail']} {status}; expected: {expected}", style="green" if ok else "bold red"))
    return ok
