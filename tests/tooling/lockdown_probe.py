"""A child process for test_lockdown_blocks.py: apply the step-10 building blocks, try the doors, report.

    python3 lockdown_probe.py '{"scenario": "caps", ...}'

Run with PYTHONPATH holding reference/ (the udocker package), as root or as
any user ("rootless": true makes it root of a user namespace first, mapping
0 to its own uid, as udocker does). It always starts in a mount namespace of
its own, made private, so a door that is not closed opens on nothing of the
host's; every attempt to write uses a file we made or only opens a file
(never writes). It prints one JSON line of findings, then becomes `sleep` so
that the test reads /proc/PID/status and /proc/PID/mountinfo from the host.
"""
import ctypes
import errno
import json
import os
import socket
import subprocess
import sys
import threading
import time

from udocker import capabilities, devices, lockdown, seccomp, syscalls
from udocker.container import enter_user_namespace
from udocker.errors import UdockerError

libc = ctypes.CDLL(None, use_errno=True)
SIGCHLD = 17
NR = {  # numbers of the calls probed through syscall(2)
    "x86_64": {"clone": 56, "clone3": 435, "keyctl": 250, "io_uring_setup": 425, "personality": 135},
    "aarch64": {"clone": 220, "clone3": 435, "keyctl": 219, "io_uring_setup": 425, "personality": 92},
}[os.uname().machine]


def raw(name, *args):
    """syscall(2) by number: its result, or -errno."""
    result = libc.syscall(ctypes.c_long(NR[name]), *(ctypes.c_long(a) for a in args))
    return -ctypes.get_errno() if result == -1 else result


def attempt(function, *args):
    """Call function: 'ok', or the errno name it failed with."""
    try:
        function(*args)
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    except UdockerError as error:  # an OSError the runtime explains: its cause's errno
        return errno.errorcode.get(error.__cause__.errno, str(error))


def name(result):
    """'ok' for a result >= 0, else the errno's name."""
    return "ok" if result >= 0 else errno.errorcode.get(-result, str(-result))


def status():
    with open("/proc/self/status") as file:
        fields = dict(line.rstrip("\n").split(":\t", 1) for line in file if ":\t" in line)
    return {key: fields[key].strip() for key in
            ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs", "Seccomp")}



def switch_user(uid):
    """setgroups/setgid/setuid, the way process.become does it."""
    with open("/proc/self/setgroups") as file:
        if file.read().strip() == "allow":
            os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def secure(spec, found):
    """The container's last steps, in runc's order (see capabilities.py)."""
    keep = capabilities.resolve(spec.get("add", ()), spec.get("drop", ()), spec.get("privileged", False))
    nnp = spec.get("nnp", False)
    rules = seccomp.default_rules(keep)
    if nnp:
        seccomp.set_no_new_privs()
    if spec.get("seccomp") and not nnp:
        seccomp.install(rules)
    if spec.get("caps", True):
        capabilities.drop_bounding(keep)
    if spec.get("user") is not None:
        capabilities.set_keepcaps(True)
        switch_user(spec["user"])
        capabilities.set_keepcaps(False)
    if spec.get("caps", True):
        capabilities.set_process_caps(keep)
    if spec.get("seccomp") and nnp:
        seccomp.install(rules)
    if spec.get("seccomp_late_without_nnp"):  # the wrong order: after the user switch, no NNP
        found["late_install"] = attempt(seccomp.install, rules)
    found["status"] = status()


def try_doors(spec, found):
    """The calls the filter must refuse, and the ordinary ones it must let through."""
    found["mount"] = attempt(syscalls.mount, None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    found["umount2"] = attempt(syscalls.umount2, "/nonexistent-udocker-probe")
    found["pivot_root"] = attempt(syscalls.pivot_root, "/nonexistent-udocker-probe", "/nonexistent-udocker-probe")
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    found["setns"] = attempt(syscalls.setns, fd, syscalls.CLONE_NEWUTS)  # our own: harmless
    os.close(fd)
    found["clone3"] = name(raw("clone3", 0, 0))  # EINVAL (size 0) unless the filter answers ENOSYS
    pid = raw("clone", syscalls.CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    if pid == 0:  # the filter let it through: this is the new child
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
    found["clone_newuser"] = name(pid)
    found["personality_query"] = name(raw("personality", 0xFFFFFFFF))
    found["personality_no_aslr"] = name(raw("personality", 0x0040000))
    raw("personality", 0)  # back to PER_LINUX, should the filter have let it through
    found["keyctl"] = name(raw("keyctl", 0, -3, 0))  # KEYCTL_GET_KEYRING_ID of the session keyring
    found["io_uring_setup"] = name(raw("io_uring_setup", 1, 0))  # EFAULT unless the filter refuses
    try:
        socket.socket(40, socket.SOCK_STREAM).close()  # AF_VSOCK
        found["socket_vsock"] = "ok"
    except OSError as error:
        found["socket_vsock"] = errno.errorcode.get(error.errno, str(error.errno))
    found["socket_inet"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close())
    pid = os.fork()  # glibc's fork: clone(SIGCHLD | CLONE_CHILD_*)
    if pid == 0:
        os.execv("/bin/true", ["true"])
    found["fork_exec"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    found["subprocess"] = subprocess.run(["/bin/true"]).returncode
    ran = []
    thread = threading.Thread(target=ran.append, args=(1,))  # pthread_create: clone3, then clone
    thread.start()
    thread.join()
    found["thread"] = ran == [1]
    while len(os.listdir("/proc/self/task")) > 1:  # join returns before the kernel's thread is gone,
        time.sleep(0.001)  # and unshare(CLONE_NEWUSER) refuses a multi-threaded process (EINVAL)
    found["unshare_user"] = attempt(syscalls.unshare, syscalls.CLONE_NEWUSER)  # last: it may succeed


def try_chown(spec, found):
    if spec.get("chown_file"):
        found["chown"] = attempt(os.chown, spec["chown_file"], 4321, 4321)


def mountinfo():
    entries = {}
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            sep = fields.index("-")
            entries[fields[4]] = {"fstype": fields[sep + 1], "options": fields[5], "root": fields[3]}
    return entries


def open_for_writing(path):
    """Open path for writing and close it at once, never writing: 'ok' or the errno name."""
    try:
        os.close(os.open(path, os.O_WRONLY))
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))
    except UdockerError as error:  # an OSError the runtime explains: its cause's errno
        return errno.errorcode.get(error.__cause__.errno, str(error))


def writable_sysfs_file():
    """A file under /sys/kernel that sysfs lets root write (mode u+w); we only open it."""
    for directory, _, files in os.walk("/sys/kernel"):
        for file in sorted(files):
            path = os.path.join(directory, file)
            try:
                if os.stat(path).st_mode & 0o200:
                    return path
            except OSError:
                continue
    return None


def container_paths(spec, found):
    """pid 1 of new namespaces: the container's mounts as udocker step 10 makes them, then look."""
    rootfs = spec["rootfs"]
    syscalls.mount(rootfs, rootfs, None, syscalls.MS_BIND | syscalls.MS_REC)
    syscalls.mount("proc", f"{rootfs}/proc", "proc", syscalls.MS_NOSUID | syscalls.MS_NODEV | syscalls.MS_NOEXEC)
    devices.mount_dev(f"{rootfs}/dev")
    if spec.get("lockdown", True):
        lockdown.mount_sysfs(f"{rootfs}/sys")
        lockdown.mount_cgroup(f"{rootfs}/sys/fs/cgroup")
        lockdown.mount_dev_extras(f"{rootfs}/dev")
        lockdown.remount(f"{rootfs}/dev", syscalls.MS_NODEV)
    else:  # the control: what step 9 has
        syscalls.mount("sysfs", f"{rootfs}/sys", "sysfs", 0)
    os.chdir(rootfs)
    syscalls.pivot_root(".", ".")
    syscalls.umount2(".", syscalls.MNT_DETACH)
    os.chdir("/")
    if spec.get("lockdown", True):
        lockdown.lock_system_paths()
    masked = {}  # what each masked path shows: bytes read of a file, entries of a directory
    for path in lockdown.masked_paths():
        if os.path.isdir(path):
            masked[path] = os.listdir(path)
        elif os.path.exists(path):
            with open(path, "rb") as file:
                masked[path] = len(file.read(4096))
    found["masked"] = masked
    found["sysrq_trigger"] = open_for_writing("/proc/sysrq-trigger")
    found["core_pattern"] = open_for_writing("/proc/sys/kernel/core_pattern")
    sysfs_file = writable_sysfs_file()
    found["sysfs_file"] = sysfs_file
    found["sysfs_write"] = open_for_writing(sysfs_file) if sysfs_file else "no writable file found"
    with open("/dev/null", "w") as null:  # the given devices still work on a nodev /dev
        null.write("x")
    found["dev_null"] = "ok"
    try:
        os.mknod("/dev/probe-null", 0o020666, os.makedev(1, 3))
        found["mknod_open"] = open_for_writing("/dev/probe-null")
        os.unlink("/dev/probe-null")
    except OSError as error:
        found["mknod_open"] = "mknod " + errno.errorcode.get(error.errno, str(error.errno))
    if os.path.islink("/dev/ptmx"):
        master, slave = os.openpty()
        found["pty"] = os.ttyname(slave)
        os.close(master)
        os.close(slave)
    found["ptmx_link"] = os.readlink("/dev/ptmx") if os.path.islink("/dev/ptmx") else None
    found["shm_write"] = attempt(lambda: open("/dev/shm/probe", "w").close())
    with open("/proc/self/cgroup") as file:
        found["own_cgroup"] = file.read().split("\n")
    cgroup_files = [os.path.join(d, "cgroup.procs") for d in ("/sys/fs/cgroup", "/sys/fs/cgroup/memory",
                                                              "/sys/fs/cgroup/unified")]
    found["cgroup_procs_write"] = {p: open_for_writing(p) for p in cgroup_files if os.path.exists(p)}
    found["mounts"] = mountinfo()


def main():
    spec = json.loads(sys.argv[1])
    found = {"pid": os.getpid()}
    if spec.get("rootless"):
        enter_user_namespace()
    if spec.get("cgroup"):  # join the cgroup the test made, before a cgroup namespace is made
        with open(os.path.join(spec["cgroup"], "cgroup.procs"), "w") as file:
            file.write(str(os.getpid()))
    # A UTS namespace of our own, for setns to join (the host's would need the host's CAP_SYS_ADMIN).
    syscalls.unshare(syscalls.CLONE_NEWNS | syscalls.CLONE_NEWUTS)
    syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_PRIVATE)
    if spec.get("pure_v2"):  # a pure cgroup-v2 layout, in our own mount table only
        syscalls.mount("cgroup2", "/sys/fs/cgroup", "cgroup2", 0)
    if spec["scenario"] == "paths":
        flags = syscalls.CLONE_NEWPID | syscalls.CLONE_NEWNET | syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWCGROUP
        syscalls.unshare(flags)
        pid = os.fork()
        if pid == 0:
            try:
                found = {}
                container_paths(spec, found)
                print(json.dumps(found), flush=True)
                os.execv("/bin/sleep", ["sleep", "60"])
            except BaseException as error:
                print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
            finally:
                os._exit(1)
        found["child"] = pid
        print(json.dumps(found), flush=True)
        os.waitpid(pid, 0)
        return
    try:
        secure(spec, found)
        try_chown(spec, found)
        if spec.get("doors"):
            try_doors(spec, found)
    except OSError as error:
        found["error"] = f"{type(error).__name__}: {error}"
    print(json.dumps(found), flush=True)
    os.execv("/bin/sleep", ["sleep", "60"])


if __name__ == "__main__":
    main()
