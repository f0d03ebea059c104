"""A container's /dev: a few harmless devices, bind-mounted from the host's.

Given code: a root filesystem usually has an empty /dev, and many programs need
/dev/null or /dev/zero. Creating device nodes (mknod(2)) is not allowed in a
user namespace, so, like runc in a rootless container, we bind-mount the
host's device files instead, onto empty files of a tmpfs.
"""
import os

from udocker import syscalls

DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def mount_dev(target):
    """Mount a small /dev at target: a tmpfs holding bind mounts of DEVICES."""
    os.makedirs(target, exist_ok=True)
    syscalls.mount("tmpfs", target, "tmpfs", syscalls.MS_NOSUID, "mode=755")
    for name in DEVICES:
        device = os.path.join(target, name)
        open(device, "w").close()  # a bind mount needs a file to mount on
        try:
            syscalls.mount(f"/dev/{name}", device, None, syscalls.MS_BIND)
        except OSError:  # the host lacks it (no /dev/tty without a terminal, say)
            os.unlink(device)
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        os.symlink(f"/proc/self/fd/{fd}", os.path.join(target, name))
    os.symlink("/proc/self/fd", os.path.join(target, "fd"))
