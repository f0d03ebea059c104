"""Step 10's given building blocks: capabilities.py, seccomp.py, lockdown.py (and syscalls.py's additions).

Two kinds of tests:
* the seccomp BPF program for x86_64 and aarch64, decoded instruction by
  instruction against the kernel's syscall numbers, and run in a small BPF
  interpreter written here; the capability and --security-opt parsing;
* real behaviour: tests/tooling/lockdown_probe.py applies the blocks in a
  child process (as root, and rootless as uid 4242 in a user namespace), tries
  the doors, and becomes `sleep`; we then read its /proc/PID/status and
  /proc/PID/mountinfo from the host. The probe starts in a private mount
  namespace, only ever opens dangerous files (never writes), and the tests
  check that no mount and no process is left behind.

Run them under the workshop lock (namespaces, mounts):
    flock /tmp/workshop-pytest.lock /opt/container-workshop/venv/bin/python -m pytest tests/tooling/test_lockdown_blocks.py
The real-behaviour tests take the lock themselves when nobody above them holds it.
"""
import argparse
import errno
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "reference"))
from udocker import capabilities, lockdown, seccomp  # noqa: E402

PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
ROOTLESS_UID = 4242
LOCK = "/tmp/workshop-pytest.lock"
DOCKER_MASK = 0x00000000A80425FB

# --------------------------------------------------------------------------- expected tables (independent)

# capabilities(7), in number order.
CAPABILITY_ORDER = (
    "CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP LINUX_IMMUTABLE"
    " NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE SYS_RAWIO"
    " SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME"
    " SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG"
    " WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE"
).split()

# The numbers of the calls a default container's filter must refuse, copied from
# the kernel's arch/x86/entry/syscalls/syscall_64.tbl and asm-generic/unistd.h
# (checked against /usr/include/x86_64-linux-gnu/asm/unistd_64.h,
# /usr/include/asm-generic/unistd.h and libseccomp's src/syscalls.csv).
EXPECTED_EPERM = {
    "x86_64": {
        "mount": 165, "umount2": 166, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "pivot_root": 155,
        "unshare": 272, "setns": 308, "keyctl": 250, "add_key": 248, "request_key": 249,
        "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "open_by_handle_at": 304, "reboot": 169, "swapon": 167, "swapoff": 168, "iopl": 172,
        "ioperm": 173, "acct": 163, "settimeofday": 164, "clock_settime": 227, "quotactl": 179,
        "quotactl_fd": 443, "lookup_dcookie": 212, "fanotify_init": 300, "kcmp": 312,
        "pidfd_getfd": 438, "process_madvise": 440, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "sethostname": 170, "setdomainname": 171, "syslog": 103,
        "vhangup": 153, "get_mempolicy": 239, "mbind": 237, "set_mempolicy": 238,
        "set_mempolicy_home_node": 450, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
        "lsm_list_modules": 461,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "open_tree": 428, "move_mount": 429, "fsopen": 430,
        "fsconfig": 431, "fsmount": 432, "fspick": 433, "mount_setattr": 442, "pivot_root": 41,
        "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217, "request_key": 218,
        "kexec_load": 104, "kexec_file_load": 294, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "open_by_handle_at": 265, "reboot": 142, "swapon": 224, "swapoff": 225, "acct": 89,
        "settimeofday": 170, "clock_settime": 112, "quotactl": 60, "quotactl_fd": 443,
        "lookup_dcookie": 18, "fanotify_init": 262, "kcmp": 272, "pidfd_getfd": 438,
        "process_madvise": 440, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "sethostname": 161, "setdomainname": 162, "syslog": 116,
        "vhangup": 58, "get_mempolicy": 236, "mbind": 235, "set_mempolicy": 237,
        "set_mempolicy_home_node": 450, "lsm_get_self_attr": 459, "lsm_set_self_attr": 460,
        "lsm_list_modules": 461,
    },
}
EXPECTED_CHECKED = {  # calls whose first argument is checked
    "x86_64": {"clone": 56, "personality": 135, "socket": 41},
    "aarch64": {"clone": 220, "personality": 92, "socket": 198},
}
EXPECTED_ENOSYS = {"x86_64": {"clone3": 435}, "aarch64": {"clone3": 435}}
ALLOWED = {  # ordinary calls, by number
    "x86_64": {"read": 0, "write": 1, "fork": 57, "vfork": 58, "execve": 59, "getpid": 39,
               "chroot": 161, "ptrace": 101, "adjtimex": 159, "exit_group": 231},
    "aarch64": {"read": 63, "write": 64, "execve": 221, "getpid": 172, "chroot": 51,
                "ptrace": 117, "adjtimex": 171, "exit_group": 94},
}
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
AUDIT_ARCH_I386, AUDIT_ARCH_ARM = 0x40000003, 0x40000028
RET_ALLOW, RET_KILL_PROCESS = 0x7FFF0000, 0x80000000


def ret_errno(code):
    return 0x00050000 | code


# --------------------------------------------------------------------------- a classic BPF interpreter


def run_bpf(program, nr, arch, args=(0,) * 6):
    """What the kernel's seccomp would answer: run program over a struct seccomp_data."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    accumulator, pc = 0, 0
    for _ in range(len(program) + 1):
        code, jt, jf, k = program[pc]
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data), f"load at {k}: outside seccomp_data"
            accumulator = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):  # JEQ, JGE, JSET with K
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: accumulator & k != 0}[code]
            pc += 1 + (jt if taken else jf)
        elif code == 0x05:  # JA
            pc += 1 + k
        elif code == 0x06:  # RET K
            return k
        else:
            raise AssertionError(f"instruction {pc}: opcode {code:#x} this interpreter does not know")
    raise AssertionError("the program does not end")


def decode(program):
    return [f"{i:3}: code={c:#06x} jt={jt} jf={jf} k={k:#x}" for i, (c, jt, jf, k) in enumerate(program)]


def target(program, index, taken):
    code, jt, jf, _ = program[index]
    return index + 1 + (jt if taken else jf)


# --------------------------------------------------------------------------- capabilities: tables and parsing


def test_capability_numbers_follow_capabilities_7():
    expected = {f"CAP_{name}": number for number, name in enumerate(CAPABILITY_ORDER)}
    assert capabilities.CAPABILITIES == expected, "expected capabilities(7)'s numbers 0..40"


def test_docker_default_set_is_docker_mask():
    got = capabilities.mask(capabilities.CAPABILITIES[n] for n in capabilities.DOCKER_DEFAULT)
    assert got == DOCKER_MASK == capabilities.DOCKER_DEFAULT_MASK, f"expected {DOCKER_MASK:#x}, got {got:#x}"
    assert len(capabilities.DOCKER_DEFAULT) == 14


@pytest.mark.parametrize("text, expected", [
    ("chown", "CAP_CHOWN"), ("CAP_NET_ADMIN", "CAP_NET_ADMIN"), ("Cap_Sys_Admin", "CAP_SYS_ADMIN"),
    ("net_raw", "CAP_NET_RAW"), ("all", "ALL"), ("ALL", "ALL"),
])
def test_capability_names_are_read_as_docker_reads_them(text, expected):
    assert capabilities.parse(text) == expected


@pytest.mark.parametrize("text", ["FOO", "CAP_", "", "SYS ADMIN", "CAP_ALL"])
def test_unknown_capability_is_a_one_line_error(text):
    with pytest.raises(ValueError) as error:
        capabilities.parse(text)
    message = str(error.value)
    assert "\n" not in message and "unknown capability" in message and "man 7 capabilities" in message
    with pytest.raises(argparse.ArgumentTypeError, match="unknown capability"):
        capabilities.argument(text)


EVERY = frozenset(range(41))
DEFAULT = frozenset(capabilities.CAPABILITIES[n] for n in capabilities.DOCKER_DEFAULT)
C = capabilities.CAPABILITIES


@pytest.mark.parametrize("add, drop, privileged, expected", [
    ((), (), False, DEFAULT),
    ((), ("NET_RAW",), False, DEFAULT - {C["CAP_NET_RAW"]}),
    (("SYS_ADMIN",), (), False, DEFAULT | {C["CAP_SYS_ADMIN"]}),
    (("cap_net_admin",), ("chown", "mknod"), False, DEFAULT - {C["CAP_CHOWN"], C["CAP_MKNOD"]} | {C["CAP_NET_ADMIN"]}),
    (("CHOWN",), ("ALL",), False, frozenset({C["CAP_CHOWN"]})),
    ((), ("ALL",), False, frozenset()),
    (("ALL",), ("MKNOD",), False, EVERY - {C["CAP_MKNOD"]}),
    (("ALL",), ("ALL",), False, EVERY),  # docker: an ALL in --cap-add wins
    ((), (), True, EVERY),
])
def test_final_set_is_computed_docker_s_way(add, drop, privileged, expected):
    got = capabilities.resolve(add, drop, privileged, available=EVERY)
    assert got == expected, f"--cap-add {add} --cap-drop {drop}: expected {capabilities.names(expected)}, got {capabilities.names(got)}"


def test_all_means_what_the_runtime_has():
    available = EVERY - {C["CAP_SYS_RESOURCE"]}
    assert capabilities.resolve(["ALL"], [], available=available) == available
    assert capabilities.resolve([], [], privileged=True, available=available) == available
    with pytest.raises(ValueError, match="CAP_SYS_RESOURCE is not available"):
        capabilities.resolve(["SYS_RESOURCE"], [], available=available)


def test_own_bounding_set_is_read_from_the_kernel():
    with open("/proc/self/status") as file:
        line = next(l for l in file if l.startswith("CapBnd:"))
    expected = int(line.split()[1], 16)
    assert capabilities.mask(capabilities.bounding_set()) == expected
    with open("/proc/sys/kernel/cap_last_cap") as file:
        assert capabilities.last_cap() == int(file.read())


# --------------------------------------------------------------------------- seccomp: the program


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_program_instruction_by_instruction(arch):
    program = seccomp.build(arch, seccomp.DEFAULT_DENY)
    listing = "\n".join(decode(program))
    # The architecture first: load seccomp_data.arch, compare, a foreign one is killed.
    assert program[0] == (0x20, 0, 0, 4), listing
    assert program[1][0] == 0x15 and program[1][3] == AUDIT_ARCH[arch] and program[1][1] == 0, listing
    assert program[target(program, 1, False)] == (0x06, 0, 0, RET_KILL_PROCESS), listing
    assert program[2] == (0x20, 0, 0, 0), listing  # then the number
    first = 3
    if arch == "x86_64":  # x32: nr >= 0x40000000 goes to a check that ends in EPERM (or ALLOW for -1)
        assert program[3][0] == 0x35 and program[3][3] == 0x40000000 and program[3][2] == 0, listing
        x32 = target(program, 3, True)
        assert program[x32][0] == 0x15 and program[x32][3] == 0xFFFFFFFF, listing
        assert program[target(program, x32, False)] == (0x06, 0, 0, ret_errno(errno.EPERM)), listing
        first = 4
    # Then one JEQ per named call, falling through to RET ALLOW.
    compared, index = {}, first
    while program[index][0] == 0x15:
        code, jt, jf, k = program[index]
        assert jf == 0, f"instruction {index}: a miss must fall through to the next test\n{listing}"
        assert k not in compared, f"syscall {k} compared twice\n{listing}"
        compared[k] = target(program, index, True)
        index += 1
    assert program[index] == (0x06, 0, 0, RET_ALLOW), f"instruction {index}: expected RET ALLOW\n{listing}"
    for name, nr in EXPECTED_EPERM[arch].items():
        assert nr in compared, f"{name} ({nr}) is not in the {arch} filter\n{listing}"
        assert program[compared[nr]] == (0x06, 0, 0, ret_errno(errno.EPERM)), f"{name}: expected RET ERRNO(EPERM)\n{listing}"
    for name, nr in EXPECTED_ENOSYS[arch].items():
        assert program[compared[nr]] == (0x06, 0, 0, ret_errno(errno.ENOSYS)), f"{name}: expected ENOSYS\n{listing}"
    for name, nr in EXPECTED_CHECKED[arch].items():
        check = compared[nr]
        assert program[check] == (0x20, 0, 0, 16), f"{name}: expected a load of args[0] (low half)\n{listing}"
    expected = set(EXPECTED_EPERM[arch].values()) | set(EXPECTED_ENOSYS[arch].values()) | set(EXPECTED_CHECKED[arch].values())
    assert set(compared) == expected, (
        f"{arch}: compared numbers differ: extra {sorted(set(compared) - expected)}, "
        f"missing {sorted(expected - set(compared))}"
    )
    clone_check = compared[EXPECTED_CHECKED[arch]["clone"]] + 1
    assert program[clone_check][0] == 0x45 and program[clone_check][3] == 0x7E020000, listing
    assert len(seccomp.to_bytes(program)) == 8 * len(program)


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_seccomp_verdicts_in_a_bpf_interpreter(arch):
    program = seccomp.build(arch, seccomp.DEFAULT_DENY)
    native, eperm, enosys = AUDIT_ARCH[arch], ret_errno(errno.EPERM), ret_errno(errno.ENOSYS)
    numbers = {**EXPECTED_EPERM[arch], **EXPECTED_CHECKED[arch], **EXPECTED_ENOSYS[arch], **ALLOWED[arch]}
    clone_new_user = 0x10000000 | 17  # CLONE_NEWUSER | SIGCHLD
    glibc_fork = 0x01200011  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID | SIGCHLD
    threads = 0x003D0F00  # what pthread_create passes: CLONE_VM | CLONE_FS | CLONE_FILES | ...
    cases = [
        ("mount", (), eperm), ("umount2", (), eperm), ("unshare", (), eperm), ("setns", (), eperm),
        ("pivot_root", (), eperm), ("keyctl", (), eperm), ("bpf", (), eperm), ("io_uring_setup", (), eperm),
        ("clone3", (), enosys), ("clone", (clone_new_user,), eperm), ("clone", (0x20000 | 17,), eperm),
        ("clone", (glibc_fork,), RET_ALLOW), ("clone", (threads,), RET_ALLOW),
        ("clone", (1 << 32 | 17,), RET_ALLOW),  # the kernel reads only the low 32 bits of clone's flags
        ("personality", (0,), RET_ALLOW), ("personality", (0xFFFFFFFF,), RET_ALLOW),
        ("personality", (0x0040000,), eperm), ("personality", (0x0400000,), eperm),
        ("socket", (2,), RET_ALLOW), ("socket", (10,), RET_ALLOW), ("socket", (38,), eperm), ("socket", (40,), eperm),
        ("read", (), RET_ALLOW), ("write", (), RET_ALLOW), ("execve", (), RET_ALLOW),
        ("getpid", (), RET_ALLOW), ("chroot", (), RET_ALLOW), ("ptrace", (), RET_ALLOW),
        ("adjtimex", (), RET_ALLOW),
    ]
    if arch == "x86_64":
        cases += [("fork", (), RET_ALLOW), ("vfork", (), RET_ALLOW)]
    failures = []
    for name, args, expected in cases:
        got = run_bpf(program, numbers[name], native, args)
        if got != expected:
            failures.append(f"{arch} {name}{args}: expected {expected:#x}, got {got:#x}")
    for foreign in (AUDIT_ARCH_I386, AUDIT_ARCH_ARM, AUDIT_ARCH["aarch64" if arch == "x86_64" else "x86_64"]):
        got = run_bpf(program, numbers["read"], foreign)
        if got != RET_KILL_PROCESS:
            failures.append(f"{arch} filter, arch {foreign:#x}: expected KILL_PROCESS, got {got:#x}")
    if arch == "x86_64":
        for nr in (0x40000000 | 165, 0x40000000 | 0, 0x40000000 | 59):  # x32 mount, read, execve
            got = run_bpf(program, nr, native)
            if got != eperm:
                failures.append(f"x32 call {nr:#x}: expected EPERM, got {got:#x}")
        got = run_bpf(program, -1, native)
        if got != RET_ALLOW:
            failures.append(f"nr -1 (no call; the kernel answers ENOSYS): expected ALLOW, got {got:#x}")
    assert not failures, "\n".join(failures)


def test_aarch64_has_no_x86_only_calls():
    program = seccomp.build("aarch64", seccomp.DEFAULT_DENY)
    # x86_64's iopl/ioperm numbers are ordinary calls on aarch64 (172 is getpid there).
    assert run_bpf(program, 172, AUDIT_ARCH["aarch64"]) == RET_ALLOW
    assert all(code != 0x35 for code, *_ in program), "aarch64 has no x32 test"


def test_rules_follow_the_kept_capabilities():
    kept = DEFAULT | {C["CAP_SYS_ADMIN"]}
    program = seccomp.build("x86_64", seccomp.default_rules(kept))
    arch = AUDIT_ARCH["x86_64"]
    assert run_bpf(program, 165, arch) == RET_ALLOW, "--cap-add SYS_ADMIN gives mount back (Docker)"
    assert run_bpf(program, 435, arch) == RET_ALLOW, "and clone3"
    assert run_bpf(program, 56, arch, (0x10000000 | 17,)) == RET_ALLOW, "and clone with namespace flags"
    assert run_bpf(program, 250, arch) == ret_errno(errno.EPERM), "keyctl stays denied (Docker never allows it)"
    no_chroot = seccomp.build("x86_64", seccomp.default_rules(DEFAULT - {C["CAP_SYS_CHROOT"]}))
    assert run_bpf(no_chroot, 161, arch) == ret_errno(errno.EPERM), "--cap-drop SYS_CHROOT: chroot denied"
    assert run_bpf(seccomp.build("x86_64", seccomp.DEFAULT_DENY), 161, arch) == RET_ALLOW


def test_every_rule_says_why_and_has_numbers():
    for rule in seccomp.DENIED:
        assert rule.reason and "\n" not in rule.reason, rule.syscall
        assert rule.syscall in seccomp.SYSCALLS, rule.syscall
        for cap in rule.lifted_by:
            assert cap in capabilities.CAPABILITIES, f"{rule.syscall}: {cap}"


@pytest.mark.parametrize("values, expected", [
    ([], (True, False, True)),
    (["seccomp=unconfined"], (False, False, True)),
    (["no-new-privileges"], (True, True, True)),
    (["no-new-privileges:true"], (True, True, True)),
    (["no-new-privileges=true"], (True, True, True)),
    (["no-new-privileges", "no-new-privileges:false"], (True, False, True)),
    (["systempaths=unconfined", "seccomp=unconfined"], (False, False, False)),
])
def test_security_opt_values(values, expected):
    options = seccomp.security_options([seccomp.parse_security_opt(v) for v in values])
    got = (options.seccomp, options.no_new_privileges, options.system_paths)
    assert got == expected, f"--security-opt {values}: expected {expected}, got {got}"


@pytest.mark.parametrize("text", ["seccomp=/etc/profile.json", "no-new-privileges:maybe", "apparmor=unconfined",
                                  "label=disable", "bogus", "seccomp"])
def test_unknown_security_opt_is_a_one_line_error(text):
    with pytest.raises(ValueError) as error:
        seccomp.parse_security_opt(text)
    assert "\n" not in str(error.value) and "seccomp=unconfined" in str(error.value), str(error.value)
    with pytest.raises(argparse.ArgumentTypeError):
        seccomp.security_opt_argument(text)


def test_docker_masked_and_readonly_lists():
    for path in ("/proc/kcore", "/proc/keys", "/proc/interrupts", "/proc/timer_list", "/proc/sched_debug",
                 "/sys/firmware", "/sys/devices/virtual/powercap", "/proc/acpi", "/proc/scsi"):
        assert path in lockdown.MASKED_PATHS, path
    assert set(lockdown.READONLY_PATHS) == {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
    for path in lockdown.masked_paths()[len(lockdown.MASKED_PATHS):]:
        assert path.startswith("/sys/devices/system/cpu/cpu") and path.endswith("/thermal_throttle")


# --------------------------------------------------------------------------- real behaviour: the probe


def _lock_holders(path):
    inode = os.stat(path).st_ino
    holders = set()
    with open("/proc/locks") as file:
        for line in file:
            fields = line.split()
            if "FLOCK" in fields and fields[-3].rsplit(":", 1)[-1] == str(inode):
                holders.add(int(fields[-4]))
    return holders


def _ancestors():
    pid, found = os.getpid(), set()
    while pid > 1:
        found.add(pid)
        with open(f"/proc/{pid}/stat") as file:
            pid = int(file.read().rsplit(")", 1)[1].split()[1])
    return found


@pytest.fixture(scope="module")
def workshop_lock():
    """The workshop's lock, unless flock(1) above us already holds it."""
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not _lock_holders(LOCK) & _ancestors():
                fcntl.flock(fd, fcntl.LOCK_EX)  # another helper's run: wait for it
        yield
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory):
    """World-readable copies of the udocker package and the probe, for uid 4242 too."""
    base = Path(tempfile.mkdtemp(prefix="udocker-lockdown-"))
    shutil.copytree(REPO / "reference" / "udocker", base / "udocker",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(Path(__file__).with_name("lockdown_probe.py"), base)
    for dirpath, dirnames, filenames in os.walk(base):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)
    yield base
    shutil.rmtree(base)


def host_mounts():
    with open("/proc/self/mountinfo") as file:
        return sorted(line.split()[4] for line in file)


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def read_status(pid):
    with open(f"/proc/{pid}/status") as file:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in file if ":\t" in line)
    return {k: fields[k].strip() for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}


def read_mountinfo(pid):
    entries = {}
    with open(f"/proc/{pid}/mountinfo") as file:
        for line in file:
            fields = line.split()
            sep = fields.index("-")
            entries[fields[4]] = {"fstype": fields[sep + 1], "options": fields[5].split(","), "root": fields[3]}
    return entries


class Probe:
    """One run of lockdown_probe.py: its findings, and its /proc files read from the host."""

    def __init__(self, probe_dir, spec):
        self.spec = spec
        command = [PYTHON, str(probe_dir / "lockdown_probe.py"), json.dumps(spec)]
        if spec.get("rootless"):
            command = ["setpriv", f"--reuid={ROOTLESS_UID}", f"--regid={ROOTLESS_UID}", "--clear-groups"] + command
        self.command = command
        print("running:", " ".join(command))
        self.mounts_before = host_mounts()
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PYTHONPATH": str(probe_dir)},
            cwd="/", start_new_session=True,
        )
        self.pids = [self.process.pid]

    def read_line(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.1)
            if ready:
                line = self.process.stdout.readline()
                if line:
                    return json.loads(line)
                break
        raise AssertionError(f"{' '.join(self.command)}: no answer; stderr: {self.stderr()}")

    def stderr(self):
        if self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read()

    def wait_for_sleep(self, pid, timeout=10):
        """The process has become `sleep`: what it has now is what a container's command would have."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
                    return
            except FileNotFoundError:
                break
            time.sleep(0.02)
        raise AssertionError(f"pid {pid} never became sleep; stderr: {self.stderr()}")

    def finish(self):
        for pid in reversed(self.pids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)
        self.process.stdout.close()
        self.process.stderr.close()
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in self.pids) and time.monotonic() < deadline:
            time.sleep(0.02)
        left = [pid for pid in self.pids if alive(pid)]
        assert not left, f"processes left behind: {left}"
        # Only where the probe mounts: other helpers' tests may mount elsewhere meanwhile.
        watched = [p for p in (self.spec.get("rootfs"), "/proc", "/sys", "/dev") if p]
        added = Counter(host_mounts()) - Counter(self.mounts_before)  # a mount stacked on /sys counts too
        new = [m for m in added if m == "/" or any(m == w or m.startswith(w + "/") for w in watched)]
        assert not new, f"the probe left mounts on the host: {new}"


@pytest.fixture
def probe(workshop_lock, probe_dir):
    """probe(spec) -> (findings, status of the command read on the host)."""
    runs = []

    def run(**spec):
        if spec.get("rootless") and not shutil.which("setpriv"):
            pytest.fail("rootless tests need setpriv (util-linux) to become uid 4242")
        p = Probe(probe_dir, spec)
        runs.append(p)
        found = p.read_line()
        assert "error" not in found, f"{' '.join(p.command)}: {found['error']}; stderr: {p.stderr()}"
        p.wait_for_sleep(found["pid"])
        return found, read_status(found["pid"])

    yield run
    for p in runs:
        p.finish()


def expect(found, key, expected):
    got = found.get(key)
    ok = got in expected if isinstance(expected, (set, frozenset)) else got == expected
    assert ok, f"{key}: expected {expected}, got {got}"


def expect_status(status, **expected):
    wrong = {k: (v, status[k]) for k, v in expected.items() if status[k] != v}
    assert not wrong, "in /proc/PID/status, (expected, got): " + ", ".join(f"{k} {v}" for k, v in wrong.items())


MASK = f"{DOCKER_MASK:016x}"
ZERO = "0" * 16


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_root_container_gets_docker_capabilities(probe, rootless):
    _, status = probe(scenario="caps", rootless=rootless)
    expect_status(status, CapBnd=MASK, CapPrm=MASK, CapEff=MASK, CapInh=ZERO, CapAmb=ZERO, NoNewPrivs="0")


def test_non_root_user_gets_no_capabilities_as_runc_gives(probe):
    found, status = probe(scenario="caps", user=1000)
    # Before execve the user still holds them (PR_SET_KEEPCAPS + capset), as in runc...
    expect_status(found["status"], CapPrm=MASK, CapEff=MASK, CapBnd=MASK)
    # ...and execve of a program without file capabilities empties them: CapBnd stays.
    expect_status(status, CapBnd=MASK, CapPrm=ZERO, CapEff=ZERO, CapInh=ZERO, CapAmb=ZERO)


def test_cap_drop_all_takes_chown_away(probe, tmp_path):
    target = tmp_path / "owned-by-root"
    target.write_text("")
    found, status = probe(scenario="caps", drop=["ALL"], chown_file=str(target))
    expect_status(status, CapBnd=ZERO, CapPrm=ZERO, CapEff=ZERO)
    expect(found, "chown", "EPERM")
    assert target.stat().st_uid == 0


def test_default_set_keeps_chown_and_cap_add_adds(probe, tmp_path):
    target = tmp_path / "owned-by-root"
    target.write_text("")
    found, status = probe(scenario="caps", add=["SYS_ADMIN", "net_admin"], chown_file=str(target))
    expected = f"{DOCKER_MASK | 1 << 21 | 1 << 12:016x}"
    expect_status(status, CapBnd=expected, CapEff=expected)
    expect(found, "chown", "ok")
    assert target.stat().st_uid == 4321


DOORS_CLOSED = {
    "mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "setns": "EPERM", "clone3": "ENOSYS",
    "clone_newuser": "EPERM", "personality_no_aslr": "EPERM", "keyctl": "EPERM", "io_uring_setup": "EPERM",
    "socket_vsock": "EPERM", "unshare_user": "EPERM",
    "personality_query": "ok", "socket_inet": "ok", "fork_exec": 0, "subprocess": 0, "thread": True,
}


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_seccomp_closes_the_doors_even_with_every_capability(probe, rootless):
    """caps untouched: an EPERM here comes from the filter, not from a missing capability."""
    found, status = probe(scenario="seccomp", seccomp=True, caps=False, doors=True, rootless=rootless)
    expect_status(status, Seccomp="2", NoNewPrivs="0")
    wrong = {k: (v, found.get(k)) for k, v in DOORS_CLOSED.items() if found.get(k) != v}
    assert not wrong, "(expected, got): " + ", ".join(f"{k} {v}" for k, v in wrong.items())


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_without_the_filter_the_doors_are_open(probe, rootless):
    """The control: the same probe, no filter, every capability: the calls go through."""
    found, status = probe(scenario="seccomp", seccomp=False, caps=False, doors=True, rootless=rootless)
    expect_status(status, Seccomp="0")
    for key, expected in {"mount": "ok", "setns": "ok", "clone3": "EINVAL", "clone_newuser": "ok",
                          "personality_no_aslr": "ok", "io_uring_setup": {"EFAULT", "ENOSYS"},
                          "unshare_user": "ok", "fork_exec": 0, "thread": True}.items():
        expect(found, key, expected)


@pytest.mark.parametrize("nnp", [False, True], ids=["docker-default", "no-new-privileges"])
def test_runc_order_for_a_user_switch(probe, nnp):
    """seccomp before the caps (no NNP) or last (NNP); -u 1000 ends with CapEff 0 and Seccomp 2."""
    found, status = probe(scenario="seccomp", seccomp=True, nnp=nnp, user=1000, doors=True)
    expect_status(status, Seccomp="2", NoNewPrivs="1" if nnp else "0", CapBnd=MASK, CapEff=ZERO, CapPrm=ZERO)
    for key in ("mount", "unshare_user", "setns", "clone3", "fork_exec", "thread", "subprocess"):
        expect(found, key, DOORS_CLOSED[key])


def test_filter_after_the_user_switch_needs_no_new_privs(probe):
    found, status = probe(scenario="seccomp", seccomp=False, user=1000, seccomp_late_without_nnp=True)
    expect(found, "late_install", "EACCES")
    expect_status(status, Seccomp="0")


# --------------------------------------------------------------------------- real behaviour: /proc, /sys, /dev


def _cgroup_parent():
    """Where the test may make a cgroup for the probe: v1 memory hierarchy, or the v2 root."""
    for path in ("/sys/fs/cgroup/memory", "/sys/fs/cgroup"):
        if os.path.exists(os.path.join(path, "cgroup.procs")):
            return path
    pytest.fail("no cgroup hierarchy with cgroup.procs under /sys/fs/cgroup")


@pytest.fixture
def own_cgroup():
    path = os.path.join(_cgroup_parent(), f"udocker-lockdown-test-{os.getpid()}")
    os.mkdir(path)
    yield path
    remove_cgroup(path)


def remove_cgroup(path):
    """rmdir a cgroup once its last process has gone (a dying one may hold it for a moment)."""
    deadline = time.monotonic() + 5
    while True:
        try:
            os.rmdir(path)
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def run_paths(probe_dir, workshop_lock, spec):
    p = Probe(probe_dir, {"scenario": "paths", **spec})
    try:
        lines = [p.read_line(), p.read_line()]
        outer = next(l for l in lines if "child" in l)
        inner = next(l for l in lines if "child" not in l)
        p.pids.append(outer["child"])
        assert "error" not in inner, f"{' '.join(p.command)}: {inner['error']}; stderr: {p.stderr()}"
        p.wait_for_sleep(outer["child"])
        return inner, read_mountinfo(outer["child"]), p
    except BaseException:
        p.finish()
        raise


@pytest.fixture
def container(workshop_lock, probe_dir, rootfs):
    runs = []

    def run(**spec):
        inner, mounts, p = run_paths(probe_dir, workshop_lock, {"rootfs": str(rootfs), **spec})
        runs.append(p)
        return inner, mounts

    yield run
    for p in runs:
        p.finish()


def mount_of(mounts, path):
    assert path in mounts, f"{path} is not a mount point in the container; mounts: {sorted(mounts)}"
    return mounts[path]


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_proc_and_sys_are_locked_down(container, rootless):
    inner, mounts = container(rootless=rootless)
    writes_fail = {"EROFS"} if not rootless else {"EROFS", "EACCES"}  # rootless: files of real root
    # Masked: every path of the list this kernel has shows nothing.
    host_has = [p for p in lockdown.masked_paths() if os.path.exists(p)]
    assert host_has, "this kernel has none of Docker's masked paths: nothing to check"
    for path in host_has:
        shown = inner["masked"].get(path)
        assert shown in (0, []), f"{path}: expected empty, got {shown!r}"
        entry = mount_of(mounts, path)
        if os.path.isdir(path):
            assert entry["fstype"] == "tmpfs" and "ro" in entry["options"], f"{path}: {entry}"
        else:
            assert entry["root"] == "/null", f"{path}: expected /dev/null over it, got {entry}"
    # Read-only: each path this kernel has is a read-only mount; opening for writing fails.
    for path in lockdown.READONLY_PATHS:
        if os.path.exists(path):
            assert "ro" in mount_of(mounts, path)["options"], f"{path}: {mounts[path]}"
    expect(inner, "core_pattern", writes_fail)
    if os.path.exists("/proc/sysrq-trigger"):
        expect(inner, "sysrq_trigger", writes_fail)
    sys_mount = mount_of(mounts, "/sys")
    assert sys_mount["fstype"] == "sysfs" and "ro" in sys_mount["options"], sys_mount
    expect(inner, "sysfs_write", "EROFS")
    cgroup = mount_of(mounts, "/sys/fs/cgroup")
    assert "ro" in cgroup["options"], cgroup
    hierarchies = {path: entry for path, entry in mounts.items()
                   if entry["fstype"] in ("cgroup", "cgroup2") and path.startswith("/sys/fs/cgroup")}
    assert hierarchies, f"no cgroup hierarchy under /sys/fs/cgroup: {sorted(mounts)}"
    for path, entry in hierarchies.items():
        assert "ro" in entry["options"], f"{path}: {entry}"
    assert inner["cgroup_procs_write"] and set(inner["cgroup_procs_write"].values()) <= writes_fail, inner["cgroup_procs_write"]


@pytest.mark.parametrize("rootless", [False, True], ids=["root", "rootless"])
def test_dev_has_shm_mqueue_pts_and_is_nodev(container, rootless):
    inner, mounts = container(rootless=rootless)
    dev = mount_of(mounts, "/dev")
    assert "nodev" in dev["options"], dev
    assert mount_of(mounts, "/dev/shm")["fstype"] == "tmpfs"
    assert {"nosuid", "nodev", "noexec"} <= set(mounts["/dev/shm"]["options"]), mounts["/dev/shm"]
    assert mount_of(mounts, "/dev/mqueue")["fstype"] == "mqueue"
    assert mount_of(mounts, "/dev/pts")["fstype"] == "devpts"
    expect(inner, "ptmx_link", "pts/ptmx")
    expect(inner, "pty", "/dev/pts/0")  # an instance of its own: its first terminal
    expect(inner, "dev_null", "ok")  # the given devices, bind-mounted, still work
    expect(inner, "shm_write", "ok")
    expect(inner, "mknod_open", "EACCES" if not rootless else "mknod EPERM")


def test_cgroup_namespace_shows_the_own_cgroup_as_root(own_cgroup, container):
    # own_cgroup first: it is removed after the container (torn down first) has gone.
    inner, mounts = container(cgroup=own_cgroup)
    name = "/" + os.path.basename(own_cgroup)
    controller = "memory" if "/memory/" in own_cgroup else ""
    line = next(l for l in inner["own_cgroup"] if l.split(":")[1] == controller)
    assert line.endswith(":/"), f"inside, expected its cgroup to be /, got {line}"
    hierarchy = "/sys/fs/cgroup/memory" if controller else "/sys/fs/cgroup"
    entry = mount_of(mounts, hierarchy)
    assert entry["root"] == name and "ro" in entry["options"], f"host side: expected root {name}, got {entry}"


@pytest.fixture
def own_v2_cgroup():
    """A cgroup in the host's cgroup2 hierarchy (the unified one of a hybrid layout, or the only one)."""
    for parent in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        with open("/proc/self/mountinfo") as file:
            if any(line.split()[4] == parent and " - cgroup2 " in line for line in file):
                break
    else:
        pytest.fail("no cgroup2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified")
    path = os.path.join(parent, f"udocker-lockdown-test-v2-{os.getpid()}")
    os.mkdir(path)
    yield path
    remove_cgroup(path)


def test_cgroup_v2_layout_gets_one_read_only_cgroup2_of_its_own(own_v2_cgroup, container):
    """The pure-v2 branch: the probe mounts the host's cgroup2 on /sys/fs/cgroup in its own mount table first."""
    inner, mounts = container(cgroup=own_v2_cgroup, pure_v2=True)
    entry = mount_of(mounts, "/sys/fs/cgroup")
    name = "/" + os.path.basename(own_v2_cgroup)
    assert entry["fstype"] == "cgroup2" and "ro" in entry["options"], entry
    assert entry["root"] == name, f"host side: expected root {name}, got {entry}"
    assert not [p for p in mounts if p.startswith("/sys/fs/cgroup/")], sorted(mounts)
    line = next(l for l in inner["own_cgroup"] if l.startswith("0::"))
    assert line == "0::/", f"inside, expected 0::/, got {line}"
    expect(inner, "cgroup_procs_write", {"/sys/fs/cgroup/cgroup.procs": "EROFS"})


def test_without_lockdown_the_paths_are_open(container):
    """The control: step 9's mounts, no lockdown: core_pattern opens for writing (closed unwritten)."""
    inner, mounts = container(lockdown=False)
    expect(inner, "core_pattern", "ok")
    assert any(v not in (0, []) for v in inner["masked"].values()), inner["masked"]
    assert "ro" not in mount_of(mounts, "/sys")["options"]
