"""Record the failures of broken runtimes, for tests/tooling/test_diagnoses.py.

Each case copies a solution, makes one mistake a learner made (a replacement
in one file), runs `workshop check STEP --impl COPY --json` and keeps the
failing checks in tests/tooling/diagnoses/NAME.json. Run it as root, under the
test lock, from the repository's root, when a case is added or the runtime's
messages change:

    flock /tmp/workshop-pytest.lock python3 tests/tooling/diagnoses/record.py [NAME...]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent
KEPT = ("step", "name", "label", "outcome", "ok", "kind", "command", "expected", "got", "output", "run",
        "problem", "message")


@dataclass
class Case:
    name: str
    solution: int  # the solution the mistake is made in
    file: str      # in udocker/
    old: str
    new: str
    check: int     # the step checked
    keyword: str = ""
    shared_root: bool = False  # run the check where / is a shared mount (as under systemd)
    also: tuple[str, str] | None = None  # a second replacement in the same file


SETGROUPS = '        write_file("/proc/self/setgroups", "deny")\n'
UID_MAP = '        write_file("/proc/self/uid_map", f"0 {uid} 1")\n'
GID_MAP = '        write_file("/proc/self/gid_map", f"0 {gid} 1")\n'

CASES = [
    Case("pivot-root-busy", 4, "container.py",
         "    syscalls.mount(rootfs, rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)\n", "", 4),
    Case("pivot-root-shared", 4, "container.py",
         '    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)\n', "", 4, shared_root=True),
    Case("pid-namespace-in-the-child", 4, "container.py",
         "    syscalls.unshare(syscalls.CLONE_NEWPID)\n    # Block", "    # Block", 4,
         also=("    syscalls.unshare(syscalls.CLONE_NEWUTS)\n",
               "    syscalls.unshare(syscalls.CLONE_NEWUTS)\n    syscalls.unshare(syscalls.CLONE_NEWPID)\n")),
    Case("raw-wait-status", 1, "container.py",
         "    code = os.waitstatus_to_exitcode(status)\n    return 128 - code if code < 0 else code\n",
         "    return status\n", 1),
    Case("gid-map-before-setgroups", 5, "container.py",
         SETGROUPS + UID_MAP + GID_MAP, UID_MAP + GID_MAP + SETGROUPS, 5),
    Case("docker-media-type-missing", 8, "image/manifest.py",
         "OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST", "OCI_INDEX, OCI_MANIFEST, DOCKER_LIST", 8),
    Case("network-handshake-in-the-wrong-order", 9, "network.py",
         "        self.handshake.tell_parent()\n        if not self.handshake.parent_said_go():\n"
         "            os._exit(EXIT_RUNTIME_ERROR)  # the parent failed: it reports why, we go quietly\n",
         "        if not self.handshake.parent_said_go():\n"
         "            os._exit(EXIT_RUNTIME_ERROR)  # the parent failed: it reports why, we go quietly\n"
         "        self.handshake.tell_parent()\n", 9, keyword="test_namespace"),
    Case("seccomp-last-without-no-new-privs", 10, "container.py",
         "    if security.seccomp and not security.no_new_privileges:\n        seccomp.install(seccomp.default_rules(keep))\n",
         "", 10, keyword="test_seccomp or test_capabilities",
         also=("    if security.seccomp and security.no_new_privileges:\n", "    if security.seccomp:\n")),
    Case("python-traceback", 2, "container.py",
         "    syscalls.sethostname(args.hostname)\n", "    syscalls.sethostname(args.hostnmae)\n", 2),
]


def record(case: Case) -> Path:
    with tempfile.TemporaryDirectory(prefix=f"workshop-diagnosis-{case.name}-") as tmp:
        impl = Path(tmp) / "impl"
        shutil.copytree(REPO / "solutions" / f"step{case.solution}", impl,
                        ignore=shutil.ignore_patterns("__pycache__"))
        source = impl / "udocker" / case.file
        text = source.read_text()
        if case.old not in text:
            raise SystemExit(f"{case.name}: {case.file} of solutions/step{case.solution} no longer has {case.old!r}")
        text = text.replace(case.old, case.new, 1)
        if case.also:
            text = text.replace(*case.also, 1)
        source.write_text(text)
        argv = [sys.executable, "-m", "workshop", "check", str(case.check), "--impl", str(impl), "--json"]
        if case.keyword:
            argv += ["-k", case.keyword]
        if case.shared_root:
            argv = ["unshare", "-m", "--propagation", "shared", *argv]
        proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=900)
        data = json.loads(proc.stdout)
    failing = [{k: c.get(k) for k in KEPT} for c in data["checks"] if not c["ok"]]
    text = json.dumps({"case": case.name, "step": case.check, "mistake": {"file": case.file, "old": case.old,
                                                                            "new": case.new, "also": case.also},
                       "checks": failing}, indent=1)
    # the paths of this run say nothing: keep the recording stable
    text = text.replace(str(impl), "/tmp/learner").replace(tmp, "/tmp/learner-run")
    path = HERE / f"{case.name}.json"
    path.write_text(text + "\n")
    return path


def main(names: list[str]) -> int:
    for case in CASES:
        if not names or case.name in names:
            path = record(case)
            checks = json.loads(path.read_text())["checks"]
            print(f"{case.name}: {len(checks)} failing checks -> {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
