"""seccomp: a filter the kernel runs on every system call of the container.

A seccomp filter (seccomp(2)) is a small program in classic BPF, the language
of packet filters. On each system call the kernel runs it over a struct
seccomp_data { int nr; u32 arch; u64 instruction_pointer; u64 args[6]; } and
obeys its answer: ALLOW, ERRNO(e) (the call fails with e, never runs), or
KILL_PROCESS. Once loaded, a filter can never be removed, by the process or
its children.

Docker's default profile (moby/profiles seccomp/default.json) allows about
360 calls by name and answers EPERM to the rest. We do the reverse, which is
shorter to read: DENIED below lists the calls that let a container reconfigure
the kernel or leave its namespaces, each with its reason. A call a newer kernel
adds is allowed by us and refused by Docker. Like Docker, a rule is lifted
when the container keeps the capability that the call needs anyway
(--cap-add SYS_ADMIN gives mount back).

The program, for one architecture:

    load arch;   arch != AUDIT_ARCH_<ours>          -> KILL_PROCESS
    load nr;     nr >= 0x40000000 (x86_64: x32)     -> ERRNO(EPERM)
                 nr == mount                        -> ERRNO(EPERM)
                 ...                                   (one test per denied call)
                 nr == clone                        -> check its flags
                 ...
                 otherwise                          -> ALLOW

Why the architecture first: the same number means another call on another
ABI (x86_64's mount, 165, is i386's getresuid), so a 64-bit process that makes
32-bit calls (int 0x80) would slip past a table of 64-bit numbers. We have
tables for x86_64 and aarch64 only, so any other ABI is killed, which is what
libseccomp (and so runc) does for an architecture the filter does not list: a
program under a filter that cannot judge its calls must not go on. Docker also
lists i386 and arm32; 32-bit programs need --security-opt seccomp=unconfined here.
x32 (x86_64's other ABI) reports AUDIT_ARCH_X86_64 but numbers its calls from
0x40000000: they are refused with EPERM, which also covers a denied call
retried with the x32 bit set.

Given code: the learner calls, in the container's process, as late as possible
(see capabilities.py for the order and why):

    seccomp.install(seccomp.default_rules(kept_capabilities))
"""
import ctypes
import errno
import os
import struct

from udocker import capabilities, syscalls
from udocker.errors import UdockerError

# Return values (<linux/seccomp.h>): the action in the high 16 bits, data below.
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# Classic BPF opcodes (<linux/filter.h>, <linux/bpf_common.h>).
BPF_LD_W_ABS = 0x20  # A = the 32-bit word at offset k of seccomp_data
BPF_JEQ_K = 0x15  # if A == k jump jt else jf
BPF_JGE_K = 0x35  # if A >= k (unsigned)
BPF_JSET_K = 0x45  # if A & k
BPF_RET_K = 0x06  # return k
BPF_MAXINSNS = 4096

# Offsets into struct seccomp_data. Arguments are 64 bits; both our
# architectures are little-endian, so the low half of args[0] comes first.
OFFSET_NR = 0
OFFSET_ARCH = 4
OFFSET_ARG0_LOW = 16

# <linux/audit.h>: EM_X86_64 / EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000

# CLONE_NEW* (<linux/sched.h>): the namespace flags. clone(2) takes them in
# its first argument on both x86_64 and aarch64, and uses only the low 32 bits.
CLONE_NAMESPACE_FLAGS = (
    syscalls.CLONE_NEWNS
    | syscalls.CLONE_NEWCGROUP
    | syscalls.CLONE_NEWUTS
    | syscalls.CLONE_NEWIPC
    | syscalls.CLONE_NEWUSER
    | syscalls.CLONE_NEWPID
    | syscalls.CLONE_NEWNET
)  # 0x7E020000, the mask in Docker's profile
# personality(2) values Docker allows: PER_LINUX, PER_LINUX32, UNAME26 with
# each, and 0xffffffff (which only asks for the current one).
PLAIN_PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
AF_ALG, AF_VSOCK = 38, 40

# The system calls the filter names, with their numbers on each architecture:
# x86_64 from arch/x86/entry/syscalls/syscall_64.tbl, aarch64 from
# include/uapi/asm-generic/unistd.h (cross-checked with libseccomp's
# src/syscalls.csv). None: the architecture has no such call.
SYSCALLS = {
    #  name                      x86_64  aarch64
    "mount":                    (165,     40),
    "umount2":                  (166,     39),
    "open_tree":                (428,    428),
    "move_mount":               (429,    429),
    "fsopen":                   (430,    430),
    "fsconfig":                 (431,    431),
    "fsmount":                  (432,    432),
    "fspick":                   (433,    433),
    "mount_setattr":            (442,    442),
    "pivot_root":               (155,     41),
    "chroot":                   (161,     51),
    "unshare":                  (272,     97),
    "setns":                    (308,    268),
    "clone":                    (56,     220),
    "clone3":                   (435,    435),
    "keyctl":                   (250,    219),
    "add_key":                  (248,    217),
    "request_key":              (249,    218),
    "kexec_load":               (246,    104),
    "kexec_file_load":          (320,    294),
    "init_module":              (175,    105),
    "finit_module":             (313,    273),
    "delete_module":            (176,    106),
    "bpf":                      (321,    280),
    "perf_event_open":          (298,    241),
    "userfaultfd":              (323,    282),
    "open_by_handle_at":        (304,    265),
    "reboot":                   (169,    142),
    "swapon":                   (167,    224),
    "swapoff":                  (168,    225),
    "iopl":                     (172,   None),
    "ioperm":                   (173,   None),
    "acct":                     (163,     89),
    "settimeofday":             (164,    170),
    "clock_settime":            (227,    112),
    "quotactl":                 (179,     60),
    "quotactl_fd":              (443,    443),
    "lookup_dcookie":           (212,     18),
    "fanotify_init":            (300,    262),
    "kcmp":                     (312,    272),
    "pidfd_getfd":              (438,    438),
    "process_madvise":          (440,    440),
    "personality":              (135,     92),
    "io_uring_setup":           (425,    425),
    "io_uring_enter":           (426,    426),
    "io_uring_register":        (427,    427),
    "sethostname":              (170,    161),
    "setdomainname":            (171,    162),
    "syslog":                   (103,    116),
    "vhangup":                  (153,     58),
    "get_mempolicy":            (239,    236),
    "mbind":                    (237,    235),
    "set_mempolicy":            (238,    237),
    "set_mempolicy_home_node":  (450,    450),
    "socket":                   (41,     198),
    "lsm_get_self_attr":        (459,    459),
    "lsm_set_self_attr":        (460,    460),
    "lsm_list_modules":         (461,    461),
}
ARCHITECTURES = ("x86_64", "aarch64")  # the columns of SYSCALLS

SYS_ADMIN = ("CAP_SYS_ADMIN",)


class Rule:
    """One denied call: when (always, or a test of its first argument), which errno, and why.

    lifted_by: the capabilities that lift the rule, as in Docker's profile
    ("includes": {"caps": [...]}); empty: Docker never allows the call.
    """

    def __init__(self, syscall, reason, lifted_by=(), errno=errno.EPERM,
                 deny_flags=0, allow_only=(), deny_values=()):
        self.syscall, self.reason, self.lifted_by, self.errno = syscall, reason, lifted_by, errno
        self.deny_flags = deny_flags  # denied when arg0 & deny_flags
        self.allow_only = allow_only  # denied unless arg0 is one of these
        self.deny_values = deny_values  # denied when arg0 is one of these

    def conditional(self):
        return bool(self.deny_flags or self.allow_only or self.deny_values)


_NEW_MOUNT_API = "the new mount API: mount(2) by other means"
# Allowed, as in Docker's profile: ptrace and process_vm_readv/writev (kernels
# >= 4.8), adjtimex and clock_adjtime (only reading, without CAP_SYS_TIME),
# name_to_handle_at (harmless without open_by_handle_at), mknod (CAP_MKNOD
# decides; lockdown.py's nodev mounts keep such a node from being opened).
# Docker's default profile, read as a deny-list (moby/profiles seccomp/default.json).
DENIED = (
    Rule("mount", "attaches a filesystem: a host disk, a cgroup hierarchy, a proc over the masks", SYS_ADMIN),
    Rule("umount2", "detaches a mount: uncovers what the masked paths hide", SYS_ADMIN),
    Rule("open_tree", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("move_mount", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("fsopen", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("fsconfig", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("fsmount", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("fspick", _NEW_MOUNT_API, SYS_ADMIN),
    Rule("mount_setattr", "changes a mount's flags: makes a read-only mount writable", SYS_ADMIN),
    Rule("pivot_root", "changes the root mount: the runtime's job, done before the filter"),
    Rule("chroot", "Docker keeps CAP_SYS_CHROOT; dropped, chroot goes too", ("CAP_SYS_CHROOT",)),
    Rule("unshare", "new namespaces: a new user namespace gives back every capability inside it", SYS_ADMIN),
    Rule("setns", "joins another namespace, the host's if a descriptor to it leaks in", SYS_ADMIN),
    Rule("clone", "clone(2) with a CLONE_NEW* flag is unshare by another name; plain fork passes",
         SYS_ADMIN, deny_flags=CLONE_NAMESPACE_FLAGS),
    Rule("clone3", "its flags lie in memory, where a filter cannot look: ENOSYS makes libc"
         " fall back to clone, whose flags it can", SYS_ADMIN, errno=errno.ENOSYS),
    Rule("keyctl", "the kernel's keyrings are not namespaced: keys of the host and other containers"),
    Rule("add_key", "the kernel's keyrings are not namespaced"),
    Rule("request_key", "the kernel's keyrings are not namespaced"),
    Rule("kexec_load", "boots another kernel"),
    Rule("kexec_file_load", "boots another kernel"),
    Rule("init_module", "loads code into the kernel", ("CAP_SYS_MODULE",)),
    Rule("finit_module", "loads code into the kernel", ("CAP_SYS_MODULE",)),
    Rule("delete_module", "removes code from the kernel", ("CAP_SYS_MODULE",)),
    Rule("bpf", "loads programs into the kernel: a frequent source of kernel exploits",
         ("CAP_SYS_ADMIN", "CAP_BPF")),
    Rule("perf_event_open", "watches the host's CPUs and kernel; leaks kernel addresses",
         ("CAP_SYS_ADMIN", "CAP_PERFMON")),
    Rule("userfaultfd", "stalls the kernel on a page fault: the classic way to win a kernel race"),
    Rule("open_by_handle_at", "opens any file of a filesystem by handle, outside the container's root"
         " (the 2014 'shocker' escape)", ("CAP_DAC_READ_SEARCH",)),
    Rule("reboot", "restarts the machine (in a PID namespace: kills its init)", ("CAP_SYS_BOOT",)),
    Rule("swapon", "the host's swap"),
    Rule("swapoff", "the host's swap"),
    Rule("iopl", "direct access to the hardware's I/O ports", ("CAP_SYS_RAWIO",)),
    Rule("ioperm", "direct access to the hardware's I/O ports", ("CAP_SYS_RAWIO",)),
    Rule("acct", "process accounting for the whole host, into a file", ("CAP_SYS_PACCT",)),
    Rule("settimeofday", "the wall clock is the host's: no namespace has its own", ("CAP_SYS_TIME",)),
    Rule("clock_settime", "the wall clock is the host's: no namespace has its own", ("CAP_SYS_TIME",)),
    Rule("quotactl", "the host's disk quotas", SYS_ADMIN),
    Rule("quotactl_fd", "the host's disk quotas", SYS_ADMIN),
    Rule("lookup_dcookie", "a kernel profiling interface that names the host's files", SYS_ADMIN),
    Rule("fanotify_init", "watches every file access on a filesystem, the host's too", SYS_ADMIN),
    Rule("kcmp", "compares the kernel objects of other processes (ptrace itself is allowed,"
         " as in Docker on kernels >= 4.8, which check the call again after a tracer changes it)",
         ("CAP_SYS_PTRACE",)),
    Rule("pidfd_getfd", "takes a copy of another process's file descriptor", ("CAP_SYS_PTRACE",)),
    Rule("process_madvise", "acts on another process's memory", ("CAP_SYS_PTRACE",)),
    Rule("personality", "flags such as ADDR_NO_RANDOMIZE and READ_IMPLIES_EXEC weaken the defences"
         " against exploits: only the plain Linux personalities pass", allow_only=PLAIN_PERSONALITIES),
    Rule("io_uring_setup", "io_uring runs operations the filter never sees, and has had many kernel bugs"),
    Rule("io_uring_enter", "io_uring runs operations the filter never sees"),
    Rule("io_uring_register", "io_uring runs operations the filter never sees"),
    Rule("sethostname", "the runtime sets the hostname; Docker allows it with CAP_SYS_ADMIN only", SYS_ADMIN),
    Rule("setdomainname", "as sethostname", SYS_ADMIN),
    Rule("syslog", "reads and clears the host's kernel log (dmesg): kernel addresses",
         ("CAP_SYS_ADMIN", "CAP_SYSLOG")),
    Rule("vhangup", "hangs up the terminal", ("CAP_SYS_TTY_CONFIG",)),
    Rule("get_mempolicy", "the machine's NUMA memory placement", ("CAP_SYS_NICE",)),
    Rule("mbind", "the machine's NUMA memory placement", ("CAP_SYS_NICE",)),
    Rule("set_mempolicy", "the machine's NUMA memory placement", ("CAP_SYS_NICE",)),
    Rule("set_mempolicy_home_node", "the machine's NUMA memory placement", ("CAP_SYS_NICE",)),
    Rule("socket", "AF_ALG (the kernel's crypto API, a recent exploit path) and AF_VSOCK"
         " (talks to the hypervisor)", deny_values=(AF_ALG, AF_VSOCK)),
    Rule("lsm_get_self_attr", "security-module attributes; Docker wants CAP_SYS_ADMIN", SYS_ADMIN),
    Rule("lsm_set_self_attr", "security-module attributes; Docker wants CAP_SYS_ADMIN", SYS_ADMIN),
    Rule("lsm_list_modules", "security-module attributes; Docker wants CAP_SYS_ADMIN", SYS_ADMIN),
)


def default_rules(kept=None):
    """DENIED minus the rules that a kept capability lifts (kept: capability numbers).

    kept=None: Docker's default capability set.
    """
    if kept is None:
        kept = [capabilities.CAPABILITIES[name] for name in capabilities.DOCKER_DEFAULT]
    kept_names = set(capabilities.names(kept))
    return [rule for rule in DENIED if not kept_names.intersection(rule.lifted_by)]


DEFAULT_DENY = default_rules()  # for a container with Docker's default capabilities


def native_arch():
    """This machine's architecture, as SYSCALLS names it; ValueError when we have no table for it."""
    machine = os.uname().machine
    if machine not in ARCHITECTURES:
        raise ValueError(
            f"no seccomp syscall table for {machine} (only {', '.join(ARCHITECTURES)});"
            " run with --security-opt seccomp=unconfined"
        )
    return machine


def build(arch, rules):
    """The BPF program for arch: a list of (code, jt, jf, k) instructions, as struct sock_filter."""
    column = ARCHITECTURES.index(arch)
    returns = {"allow": SECCOMP_RET_ALLOW, f"errno {errno.EPERM}": SECCOMP_RET_ERRNO | errno.EPERM}

    # An assembler with labels: ("label", name) marks a place; an instruction's
    # jt/jf are label names (None: the next instruction), resolved at the end.
    code = [
        (BPF_LD_W_ABS, None, None, OFFSET_ARCH),
        (BPF_JEQ_K, None, "kill", AUDIT_ARCH[arch]),
        (BPF_LD_W_ABS, None, None, OFFSET_NR),
    ]
    if arch == "x86_64":
        code.append((BPF_JGE_K, "x32", None, X32_SYSCALL_BIT))
    checks = []
    for rule in rules:
        nr = SYSCALLS[rule.syscall][column]
        if nr is None:
            continue
        returns[f"errno {rule.errno}"] = SECCOMP_RET_ERRNO | rule.errno
        if not rule.conditional():
            code.append((BPF_JEQ_K, f"errno {rule.errno}", None, nr))
            continue
        code.append((BPF_JEQ_K, f"check {rule.syscall}", None, nr))
        deny = f"errno {rule.errno}"
        checks += [("label", f"check {rule.syscall}"), (BPF_LD_W_ABS, None, None, OFFSET_ARG0_LOW)]
        if rule.deny_flags:
            checks.append((BPF_JSET_K, deny, "allow", rule.deny_flags))
        for i, value in enumerate(rule.allow_only, start=1):  # the last one falls through to deny
            checks.append((BPF_JEQ_K, "allow", deny if i == len(rule.allow_only) else None, value))
        for i, value in enumerate(rule.deny_values, start=1):  # the last one falls through to allow
            checks.append((BPF_JEQ_K, deny, "allow" if i == len(rule.deny_values) else None, value))
    code.append((BPF_RET_K, None, None, SECCOMP_RET_ALLOW))
    code += checks
    if arch == "x86_64":
        # nr -1 is no call at all (a tracer uses it to skip one): the kernel answers ENOSYS.
        code += [("label", "x32"), (BPF_JEQ_K, "allow", f"errno {errno.EPERM}", 0xFFFFFFFF)]
    returns["kill"] = SECCOMP_RET_KILL_PROCESS
    for name, value in returns.items():
        code += [("label", name), (BPF_RET_K, None, None, value)]
    return _assemble(code)


def _assemble(code):
    labels, program = {}, []
    for item in code:
        if item[0] == "label":
            labels[item[1]] = len(program)
        else:
            program.append(item)

    def offset(index, target):
        if target is None:
            return 0
        distance = labels[target] - index - 1
        if not 0 <= distance <= 255:  # jt/jf are 8 bits, and jumps only go forward
            raise ValueError(f"seccomp: a jump of {distance} instructions to {target!r}")
        return distance

    program = [(op, offset(i, jt), offset(i, jf), k) for i, (op, jt, jf, k) in enumerate(program)]
    if len(program) > BPF_MAXINSNS:
        raise ValueError(f"seccomp: {len(program)} instructions, more than the kernel's {BPF_MAXINSNS}")
    return program


def to_bytes(program):
    """The program as the kernel reads it: struct sock_filter { u16 code; u8 jt, jf; u32 k; }."""
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in program)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def load(program):
    """Install program as a seccomp filter on this process (for good).

    Needs no_new_privs (set_no_new_privs) or CAP_SYS_ADMIN in our user
    namespace, else EACCES: a filter could otherwise make a setuid program it
    then runs fail where it never fails (say, in dropping its privileges).
    As root, or as root of a rootless container's user namespace, we have
    CAP_SYS_ADMIN until capabilities.drop_bounding/set_process_caps; after
    switching to another user only no_new_privs is left: see capabilities.py
    for where runc loads it in each case.
    """
    raw = to_bytes(program)
    fprog = _SockFprog(len(program), raw)
    try:
        try:
            syscalls.seccomp(syscalls.SECCOMP_SET_MODE_FILTER, 0, fprog)
        except OSError as error:
            if error.errno != errno.ENOSYS:  # seccomp(2) exists since Linux 3.17; prctl is older
                raise
            syscalls.prctl(syscalls.PR_SET_SECCOMP, syscalls.SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
    except PermissionError as error:  # the usual mistake, named: the order of the calls
        raise UdockerError(
            "cannot load the seccomp filter (EACCES): without CAP_SYS_ADMIN (after the switch to"
            " another user, or after the capabilities are dropped) it needs no_new_privs first;"
            " load it while still root, or call set_no_new_privs() before it"
        ) from error


def install(rules=DEFAULT_DENY):
    """Build the filter for this machine's architecture and load it."""
    load(build(native_arch(), rules))


def set_no_new_privs():
    """PR_SET_NO_NEW_PRIVS: from now on, execve(2) never adds privileges (setuid bits, file capabilities).

    Docker leaves it off by default: with it, ping (file capability
    cap_net_raw) or su (setuid root) stop working for a non-root user.
    """
    syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)


# --------------------------------------------------------------------------- --security-opt


class SecurityOptions:
    """What --security-opt asked for; the defaults are docker's."""

    def __init__(self):
        self.seccomp = True  # seccomp=unconfined: no filter
        self.no_new_privileges = False  # no-new-privileges[:true|false]
        self.system_paths = True  # systempaths=unconfined: no masked or read-only /proc, /sys paths


_SECURITY_OPT_HELP = (
    "use seccomp=unconfined, no-new-privileges[:true|false] or systempaths=unconfined"
)


def parse_security_opt(text):
    """One --security-opt value -> (option, value), as docker reads it; ValueError if unknown."""
    key, sep, value = text.partition("=")
    if not sep:
        key, sep, value = text.partition(":")  # docker's older spelling: no-new-privileges:true
    key = key.strip()
    if key == "no-new-privileges":
        if not sep:
            return key, True
        if value in ("true", "false"):
            return key, value == "true"
        raise ValueError(f"invalid --security-opt {text!r}: no-new-privileges takes true or false; "
                         + _SECURITY_OPT_HELP)
    if key == "seccomp" and value == "unconfined":
        return key, False
    if key == "seccomp" and sep:
        raise ValueError(f"--security-opt {text!r}: udocker has no seccomp profiles of its own; "
                         + _SECURITY_OPT_HELP)
    if key == "systempaths" and value == "unconfined":
        return key, False
    if key in ("apparmor", "label"):
        raise ValueError(f"--security-opt {text!r}: udocker has no AppArmor or SELinux support; "
                         + _SECURITY_OPT_HELP)
    raise ValueError(f"unknown --security-opt {text!r}; {_SECURITY_OPT_HELP}")


def security_opt_argument(text):
    """parse_security_opt as an argparse type=."""
    import argparse  # already loaded by the command line: free here

    try:
        return parse_security_opt(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def security_options(parsed):
    """A list of parse_security_opt results (the last one of each option wins) -> SecurityOptions."""
    options = SecurityOptions()
    for key, value in parsed:
        setattr(options, {"seccomp": "seccomp", "no-new-privileges": "no_new_privileges",
                          "systempaths": "system_paths"}[key], value)
    return options
