"""Benchmark: what starting a container costs, per step, against util-linux's floor.

    sudo python3 -m workshop.bench [--runs 21] [--python /usr/bin/python3]

Times whole processes (`udocker run ROOTFS /bin/true`, start to exit, for every
solution from step 1 on) and prints
min / median / max in milliseconds. Speed is measured here, never in timed
tests. Use a bare interpreter (the default, /usr/bin/python3): a pyenv shim or a
site-packages .pth file adds tens of milliseconds that are not udocker's.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workshop import paths, rootfs


def measure(argv, runs, env=None):
    for _ in range(2):  # warm the page cache
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append((time.perf_counter() - start) * 1000)
    return min(times), statistics.median(times), max(times)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m workshop.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run it as root (sudo): the runs create namespaces", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="workshop-bench-") as scratch:
        root = rootfs.build_rootfs(Path(scratch) / "rootfs")
        rows = [("python -c pass", [args.python, "-c", "pass"], None)]
        rows.append(("unshare+chroot (C floor)",
                     ["unshare", "--uts", "--pid", "--mount", "--fork", "chroot", str(root), "/bin/true"], None))
        for step, folder in paths.step_folders("solutions").items():
            if step >= 1:  # step 0 runs nothing
                env = {**os.environ, "PYTHONPATH": str(folder)}
                rows.append((f"udocker run (solutions/step{step})",
                             [args.python, "-m", "udocker", "run", str(root), "/bin/true"], env))
        print(f"{'what':34} {'min':>7} {'median':>7} {'max':>7}   (ms, {args.runs} runs)")
        for name, command, env in rows:
            low, middle, high = measure(command, args.runs, env)
            print(f"{name:34} {low:7.1f} {middle:7.1f} {high:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
