"""Benchmark: what starting a container costs, udocker against runc and crun, per step.

    sudo python3 -m workshop.bench [--runs 31] [--python /usr/bin/python3] [--no-image] [--pulls]

Times whole processes, start to exit, of `/bin/true` in a container, and
alternates the commands round after round (so that a busy moment of the
machine hits them all alike). Prints medians, and the ratio of udocker to
runc: below 1.0, udocker is faster.

    floors      python -S -c pass, python -c pass, unshare ... chroot (C)
    runc, crun  an OCI bundle on the same busybox root filesystem (with a 64 MiB
                memory limit beside the -m rows); installed for the benchmark
                only: apt-get install runc crun
    udocker     `python3 -m udocker run ROOTFS /bin/true` for every step's
                solution; `-m 64m` from step 6 (a cgroup: runc always makes one);
                a stored image from step 8 (pulled first from a throwaway
                registry on loopback)

Then, for the newest solution, where its time goes: the interpreter's start,
the imports of the run path, the command line, the container's set-up and
wait, and the rest (the process's own start and exit).

Speed is measured here, never in timed tests. Bytecode is cached in a
temporary PYTHONPYCACHEPREFIX, as a learner's second run has it, without
writing into the step folders. Use a bare interpreter (the default,
/usr/bin/python3): a pyenv shim or a site-packages .pth file adds tens of
milliseconds that are not udocker's. `--pulls` then runs the benchmark of
pulls (cold and warm, against skopeo + umoci and podman: workshop.bench_pull,
which also runs alone).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workshop import meta, paths, rootfs

MEMORY = 64 * 1024 * 1024


def timed(argv, env) -> float:
    """Milliseconds from start to exit of one run."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def alternate(rows, runs):
    """{name: [ms, ...]}: every row once per round, RUNS rounds, after two rounds of warming up."""
    times = {name: [] for name, _, _ in rows}
    for round_ in range(runs + 2):
        for name, argv, env in rows:
            ms = timed(argv, env)
            if round_ >= 2:
                times[name].append(ms)
    return times


def own_cgroup(controller: str) -> str:
    """Our cgroup in a v1 hierarchy (or the v2 one), from /proc/self/cgroup."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") or (not controllers and controller == "unified"):
            return path
    return "/"


def oci_bundle(directory: Path, root: Path, memory: int | None) -> Path:
    """A runc/crun bundle that runs /bin/true on ROOT (read-only), its cgroup under our own."""
    directory.mkdir(parents=True)
    subprocess.run(["runc", "spec", "--bundle", str(directory)], check=True)
    config = json.loads((directory / "config.json").read_text())
    config["process"].update(args=["/bin/true"], terminal=False)
    config["root"] = {"path": str(root), "readonly": True}
    # never at a hierarchy's root: this machine may keep us in a cgroup of our own
    parent = own_cgroup("memory") if Path("/sys/fs/cgroup/memory").is_dir() else own_cgroup("unified")
    config["linux"]["cgroupsPath"] = f"{parent.rstrip('/')}/workshop-bench-{directory.name}"
    if memory:
        config["linux"].setdefault("resources", {})["memory"] = {"limit": memory}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def crun_argv(bundle: Path, name: str) -> list[str]:
    """crun refuses hybrid cgroups: there, unmount the unified tree in a private mount namespace first."""
    argv = ["crun", "run", "-b", str(bundle), name]
    if Path("/sys/fs/cgroup/unified").is_mount():
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                'umount -l /sys/fs/cgroup/unified && exec "$@"', "sh", *argv]
    return argv


def stored_image(scratch: Path, python: str, env: dict, say) -> tuple[str, Path] | None:
    """Pull the workshop's busybox image into a store of ours; its reference and UDOCKER_ROOT."""
    try:
        from workshop.registry import LocalRegistry, RegistryError
    except ImportError:
        return None
    store = scratch / "store"
    try:
        with LocalRegistry(str(scratch / "registry"), all_images=False) as registry:
            reference = f"{registry.address}/workshop/busybox:latest"
            subprocess.run([python, "-m", "udocker", "pull", reference], check=True, capture_output=True,
                           env={**env, "UDOCKER_ROOT": str(store)})
    except (RegistryError, subprocess.CalledProcessError, OSError) as error:
        say(f"bench: no stored-image rows ({error})")
        return None
    return reference, store


def breakdown(python: str, folder: Path, root: Path, env: dict, runs: int) -> list[tuple[str, float]]:
    """Where a `udocker run ROOTFS /bin/true` of FOLDER spends its time, in medians of RUNS."""
    probe = (
        "import sys, time; t0 = time.perf_counter(); "
        "import udocker.cli as cli; from udocker import container; t1 = time.perf_counter(); "
        "args = cli.build_parser().parse_args(sys.argv[1:]); t2 = time.perf_counter(); "
        "container.run(args); t3 = time.perf_counter(); "
        "print(t1 - t0, t2 - t1, t3 - t2)"
    )
    starts, imports, parses, runs_ = [], [], [], []
    for _ in range(runs):
        starts.append(timed([python, "-c", "import os; os._exit(0)"], env))  # udocker leaves so too
        out = subprocess.run([python, "-c", probe, "run", str(root), "/bin/true"], env=env, check=True,
                             capture_output=True, text=True).stdout.split()
        imports.append(float(out[0]) * 1000)
        parses.append(float(out[1]) * 1000)
        runs_.append(float(out[2]) * 1000)
    return [("python start and exit", statistics.median(starts)),
            ("imports of the run path", statistics.median(imports)),
            ("the command line (argparse)", statistics.median(parses)),
            ("the container: set up, exec, wait", statistics.median(runs_))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m workshop.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=31, help="rounds (default 31)")
    parser.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3")
                        else sys.executable)
    parser.add_argument("--no-image", action="store_true", help="leave out the stored-image rows")
    parser.add_argument("--pulls", action="store_true", help="then benchmark pulls too (workshop.bench_pull)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run it as root (sudo): the runs create namespaces", file=sys.stderr)
        return 2
    solutions = paths.step_folders("solutions")
    steps = [n for n in meta.numbers() if n >= 1 and n in solutions]
    newest = max(steps)
    with tempfile.TemporaryDirectory(prefix="workshop-bench-") as scratch:
        scratch = Path(scratch)
        root = rootfs.build_rootfs(scratch / "rootfs")
        base = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        base["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
        rows = [("python -S -c pass", [args.python, "-S", "-c", "pass"], base),
                ("python -c pass", [args.python, "-c", "pass"], base),
                ("unshare + chroot (C floor)",
                 ["unshare", "--uts", "--pid", "--mount", "--fork", "chroot", str(root), "/bin/true"], base)]
        reference = {}  # row name -> the runc row it is compared with
        missing = [tool for tool in ("runc", "crun") if not shutil.which(tool)]
        if "runc" not in missing:
            plain, limited = oci_bundle(scratch / "b1", root, None), oci_bundle(scratch / "b2", root, MEMORY)
            rows += [("runc run", ["runc", "run", "-b", str(plain), "wsbench1"], base),
                     ("runc run, memory limit", ["runc", "run", "-b", str(limited), "wsbench2"], base)]
            if "crun" not in missing:
                rows += [("crun run", crun_argv(plain, "wsbench3"), base),
                         ("crun run, memory limit", crun_argv(limited, "wsbench4"), base)]
        image = None
        if not args.no_image and newest >= 8:
            image = stored_image(scratch, args.python, {**base, "PYTHONPATH": str(solutions[newest])}, print)
        for step in steps:
            env = {**base, "PYTHONPATH": str(solutions[step])}
            udocker = [args.python, "-m", "udocker", "run"]
            rows.append((f"udocker step {step}", [*udocker, str(root), "/bin/true"], env))
            reference[f"udocker step {step}"] = "runc run"
            if step >= 6:
                rows.append((f"udocker step {step} -m 64m", [*udocker, "-m", "64m", str(root), "/bin/true"], env))
                reference[f"udocker step {step} -m 64m"] = "runc run, memory limit"
            if step >= 8 and image:
                rows.append((f"udocker step {step} IMAGE", [*udocker, image[0], "/bin/true"],
                             {**env, "UDOCKER_ROOT": str(image[1])}))
                reference[f"udocker step {step} IMAGE"] = "runc run"
        print(f"bench: {len(rows)} commands, {args.runs} rounds, alternated (python: {args.python})")
        if missing:
            print(f"bench: no {' and no '.join(missing)} here: apt-get install {' '.join(missing)} to compare")
        times = alternate(rows, args.runs)
        medians = {name: statistics.median(ms) for name, ms in times.items()}
        print(f"\n{'what':30} {'min':>7} {'median':>7} {'max':>7}  {'/ runc':>6}   (ms)")
        for name, ms in times.items():
            ratio = ""
            if name in reference and reference[name] in medians:
                ratio = f"{medians[name] / medians[reference[name]]:6.2f}"
            print(f"{name:30} {min(ms):7.1f} {medians[name]:7.1f} {max(ms):7.1f}  {ratio:>6}")
        env = {**base, "PYTHONPATH": str(solutions[newest])}
        parts = breakdown(args.python, solutions[newest], root, env, max(5, args.runs // 3))
        total = medians[f"udocker step {newest}"]
        print(f"\nwhere udocker step {newest} spends its {total:.1f} ms (medians):")
        for name, ms in parts:
            print(f"  {name:36} {ms:6.1f}")
        print(f"  {'the rest: -m (runpy) and noise':36} {total - sum(ms for _, ms in parts):6.1f}")
    if args.pulls:
        from workshop import bench_pull

        print()
        return bench_pull.main(["--python", args.python])
    return 0


if __name__ == "__main__":
    sys.exit(main())
