"""Benchmark: cold and warm pulls of a multi-layer image, udocker against skopeo + umoci and podman.

    sudo python3 -m workshop.bench_pull [--rounds 5] [--size 280] [--python /usr/bin/python3]

Builds a reproducible image of about 280 MB in 5 layers (files of mixed
content: text that compresses, binary that does not, a few big files and
thousands of small ones; workshop.images does the tar and gzip), pushes it to
a throwaway docker-registry on loopback, then alternates, round after round:

    udocker cold    `udocker pull` into an empty UDOCKER_ROOT (wall time and peak RSS)
    skopeo + umoci  `skopeo copy` to an OCI layout, then `umoci unpack` (what a pull needs)
    podman cold     `podman pull` into an empty --root
    udocker warm    `udocker pull` again: the image is stored
    podman warm     `podman pull` again

and prints the medians and the ratios (udocker / the other; below 1.0 is
faster). skopeo, umoci and podman are measured where installed (apt-get
install skopeo umoci podman; not needed for anything else). Each of them
runs in a private mount namespace with its own scratch directories bound over
/var/lib/containers and TMPDIR, so nothing of theirs stays on the host; the
registry and every store are removed at the end. Speed is measured here,
never in timed tests.
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workshop import images, paths

REPOSITORY, TAG = "bench/pull", "latest"
WORDS = ("container image layer digest manifest registry overlay namespace cgroup runtime kernel "
         "process mount signal token platform index config whiteout").split()


# --------------------------------------------------------------------------- the image


def _content(rng: random.Random, size: int) -> bytes:
    """SIZE bytes: text (compresses about 4x) or binary (does not), as in a real root filesystem."""
    if rng.random() < 0.55:
        words = " ".join(rng.choice(WORDS) for _ in range(size // 6 + 1)).encode()
        return words[:size]
    return rng.randbytes(size)


def bench_layers(total_mb: int, seed: int = 2024) -> list[images.Layer]:
    """5 layers, biggest first (a base, then smaller ones), TOTAL_MB uncompressed in all."""
    rng = random.Random(seed)
    shares = (0.42, 0.28, 0.15, 0.10, 0.05)
    layers = []
    for number, share in enumerate(shares):
        budget = int(total_mb * share * 1024 * 1024)
        members = [images.directory(f"layer{number}")]
        index = 0
        while budget > 0:
            size = rng.choice((rng.randint(200, 20_000),) * 8 + (rng.randint(100_000, 4_000_000),))
            size = min(size, budget)
            directory = f"layer{number}/d{index // 100:03d}"
            if index % 100 == 0:
                members.append(images.directory(directory))
            members.append(images.file(f"{directory}/f{index:05d}", _content(rng, size), mode=0o644))
            budget -= size
            index += 1
        layers.append(images.Layer(images.tar_members(members)))
    return layers


def push_bench_image(registry: str, total_mb: int, say) -> tuple[int, int]:
    """Build and push the image; (uncompressed bytes, compressed bytes)."""
    started = time.monotonic()
    layers = bench_layers(total_mb)
    image = images.Image(layers, {"Env": [images.PATH], "Cmd": ["/bin/sh"]})
    raw = sum(len(layer.raw) for layer in layers)
    packed = sum(len(layer.blob) for layer in layers)  # gzip happens here
    images.Pusher(registry).push(REPOSITORY, TAG, image)
    say(f"image {REPOSITORY}:{TAG}: {len(layers)} layers, {raw / 1e6:.0f} MB unpacked, {packed / 1e6:.0f} MB "
        f"to download (built and pushed in {time.monotonic() - started:.0f} s)")
    return raw, packed


# --------------------------------------------------------------------------- the contenders


# A small process forks and execs the command, and reports its peak RSS: measured from this (big) one,
# the count would include our own pages, which a child has until it execs (ru_maxrss keeps them).
LAUNCHER = ("import os, sys\n"
            "pid = os.fork()\n"
            "if pid == 0:\n"
            "    os.execvp(sys.argv[2], sys.argv[2:])\n"
            "_, status, usage = os.wait4(pid, 0)\n"
            "os.write(int(sys.argv[1]), str(usage.ru_maxrss).encode())\n"
            "sys.exit(os.waitstatus_to_exitcode(status))\n")


def timed(argv, env=None, cwd=None) -> tuple[float, int]:
    """Run ARGV; (wall seconds, peak RSS in MB of the process). Fails loudly when it fails."""
    read, write = os.pipe()
    started = time.perf_counter()
    process = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, str(write), *argv], env=env, cwd=cwd,
                             stdin=subprocess.DEVNULL, capture_output=True, pass_fds=(write,))
    seconds = time.perf_counter() - started
    os.close(write)
    with os.fdopen(read, "rb") as f:
        peak = int(f.read() or 0)
    if process.returncode != 0:
        output = (process.stderr or process.stdout).decode(errors="replace")[-500:]
        raise RuntimeError(f"{' '.join(argv)} failed ({process.returncode}): {output}")
    return seconds, peak // 1024


def isolated(scratch: Path, argv: list[str]) -> list[str]:
    """ARGV in a private mount namespace where /var/lib/containers and /var/tmp are scratch directories."""
    containers, tmp = scratch / "var-lib-containers", scratch / "tmp"
    containers.mkdir(exist_ok=True)
    tmp.mkdir(exist_ok=True)
    script = ('mount --bind "$0" /var/lib/containers && mount --bind "$1" /var/tmp && shift && '
              'TMPDIR=/var/tmp exec "$@"')
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, str(containers), str(tmp), *argv]


class Contenders:
    def __init__(self, reference: str, scratch: Path, python: str, impl: Path):
        self.reference, self.scratch, self.python, self.impl = reference, scratch, python, impl
        self.rounds = 0
        self.warm_store = scratch / "udocker-warm"

    def udocker(self, store: Path) -> tuple[float, int]:
        env = {**os.environ, "PYTHONPATH": str(self.impl), "UDOCKER_ROOT": str(store)}
        return timed([self.python, "-m", "udocker", "pull", self.reference], env=env)

    def udocker_cold(self):
        self.rounds += 1
        store = self.scratch / f"udocker-cold-{self.rounds}"
        try:
            return self.udocker(store)
        finally:
            shutil.rmtree(store, ignore_errors=True)

    def udocker_warm(self):
        if not (self.warm_store / "images").is_dir():
            self.udocker(self.warm_store)
        return self.udocker(self.warm_store)

    def skopeo_umoci(self):
        work = self.scratch / f"skopeo-{self.rounds}"
        work.mkdir()
        try:
            started = time.perf_counter()
            timed(isolated(work, ["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                                  f"docker://{self.reference}", f"oci:{work / 'layout'}:{TAG}"]))
            timed(["umoci", "unpack", "--image", f"{work / 'layout'}:{TAG}", str(work / "bundle")])
            return time.perf_counter() - started, 0
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def podman(self, root: Path):
        root.mkdir(exist_ok=True)
        runroot = self.scratch / f"r{root.name[-1]}"  # podman wants a runroot shorter than 50 characters
        return timed(isolated(root, ["podman", "--root", str(root / "storage"), "--runroot", str(runroot),
                                     "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs",
                                     "--events-backend", "file", "pull", "--quiet", "--tls-verify=false",
                                     self.reference]))

    def podman_cold(self):
        root = self.scratch / f"podman-cold-{self.rounds}"
        try:
            return self.podman(root)
        finally:
            remove_podman_root(root)

    def podman_warm(self):
        root = self.scratch / "podman-warm"
        if not (root / "storage").is_dir():
            self.podman(root)
        return self.podman(root)


def remove_podman_root(root: Path) -> None:
    """podman's overlay storage may hold mounts (never on the host here: its namespace is gone); files only."""
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=False)


# --------------------------------------------------------------------------- the benchmark


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m workshop.bench_pull", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", type=int, default=280, help="MB of files in the image (default 280)")
    parser.add_argument("--python", default="/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable,
                        help="the interpreter that runs udocker (a bare one: no pyenv shim, no .pth)")
    parser.add_argument("--impl", default=None, help="the udocker folder (default: the newest solutions/stepN)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_pull: run it as root (sudo): podman and umoci unpack as root, like udocker", file=sys.stderr)
        return 2
    impl = Path(args.impl) if args.impl else max(
        (d for d in (paths.root() / "solutions").glob("step*") if (d / "udocker" / "image").is_dir()),
        key=lambda d: int(d.name[4:]))
    tools = {name: shutil.which(name) for name in ("skopeo", "umoci", "podman")}
    missing = [name for name, path in tools.items() if not path]
    if missing:
        print(f"bench_pull: {', '.join(missing)} not installed: measured without them "
              f"(apt-get install -y --no-install-recommends {' '.join(missing)})", file=sys.stderr)
    from workshop.registry import LocalRegistry

    made_containers_dir = not os.path.exists("/var/lib/containers")
    with tempfile.TemporaryDirectory(prefix="wbp-", dir="/tmp") as scratch:
        scratch = Path(scratch)
        os.chmod(scratch, 0o755)
        if made_containers_dir:
            os.makedirs("/var/lib/containers")  # a mount point for the scratch one; removed at the end
        try:
            with LocalRegistry(str(scratch / "registry"), all_images=False) as registry:
                push_bench_image(registry.address, args.size, print)
                reference = f"{registry.address}/{REPOSITORY}:{TAG}"
                contenders = Contenders(reference, scratch, args.python, impl)
                runs = [("udocker cold", contenders.udocker_cold), ("udocker warm", contenders.udocker_warm)]
                if tools["skopeo"] and tools["umoci"]:
                    runs.insert(1, ("skopeo + umoci", contenders.skopeo_umoci))
                if tools["podman"]:
                    runs.insert(-1, ("podman cold", contenders.podman_cold))
                    runs.append(("podman warm", contenders.podman_warm))
                results = {name: [] for name, _ in runs}
                print(f"udocker: {impl} with {args.python}; {args.rounds} rounds, alternated: {', '.join(results)}")
                for number in range(args.rounds):
                    for name, run in runs:
                        results[name].append(run())
                    print(f"  round {number + 1}: " + ", ".join(f"{name} {results[name][-1][0]:.2f} s" for name in results),
                          flush=True)
        finally:
            if made_containers_dir:
                shutil.rmtree("/var/lib/containers", ignore_errors=True)
    report(results)
    return 0


def report(results: dict) -> None:
    medians = {name: statistics.median(seconds for seconds, _ in values) for name, values in results.items()}
    print(f"\n{'what':16} {'min':>7} {'median':>7} {'max':>7}  (s)")
    for name, values in results.items():
        times = [seconds for seconds, _ in values]
        print(f"{name:16} {min(times):7.2f} {medians[name]:7.2f} {max(times):7.2f}")
    print()
    for mine, theirs in (("udocker cold", "skopeo + umoci"), ("udocker cold", "podman cold"),
                         ("udocker warm", "podman warm")):
        if theirs in medians:
            print(f"{mine} / {theirs}: {medians[mine] / medians[theirs]:.2f}")
    for name in ("udocker cold", "udocker warm"):
        peaks = [rss for _, rss in results[name]]
        print(f"{name}: peak RSS {min(peaks)}-{max(peaks)} MB")
    warm = max(seconds for seconds, _ in results["udocker warm"])
    print(f"udocker warm pull: at most {warm:.3f} s ({'under' if warm < 0.2 else 'NOT under'} 0.2 s)")


if __name__ == "__main__":
    sys.exit(main())
