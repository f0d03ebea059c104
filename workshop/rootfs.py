"""Build the busybox root filesystem the workshop's containers run in.

A static busybox is one executable that behaves like ``ls``, ``sh``, ``ps``
... depending on the name it is started under. So a complete little root
filesystem is: ``/bin/busybox``, one symlink per applet (``/bin/sh ->
busybox``), an ``/etc/passwd`` and ``/etc/group``, and the empty directories
the runtime mounts things on.

    python3 -m workshop.rootfs [DEST]

builds it in DEST (default: ``$WORKSHOP_ROOTFS`` or
``/var/lib/container-workshop/busybox``). Running it again refreshes the
rootfs in place. Standard library only.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

DEFAULT_ROOTFS = "/var/lib/container-workshop/busybox"

#: where the host's busybox-static may live (Debian/Ubuntu: both, via usrmerge)
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

#: the applets the workshop's steps and tests use; each becomes /bin/NAME
APPLETS = (
    # shells and basics
    "sh", "ash", "true", "false", "echo", "printf", "test", "[", "env",
    "pwd", "sleep", "timeout", "kill", "seq", "yes", "expr",
    # identity, processes, system
    "hostname", "id", "whoami", "ps", "top", "uname", "date", "nproc",
    "free", "mount", "umount", "df", "du",
    # terminals (step 8's -t)
    "tty", "stty",
    # networks (step 9)
    "ip", "ifconfig", "route", "netstat", "ping", "nc", "wget", "httpd", "nslookup",
    # the breakouts step 10 closes
    "mknod", "unshare", "nsenter", "pivot_root",
    # files
    "ls", "cat", "dd", "head", "tail", "tr", "wc", "grep", "sed", "awk",
    "sort", "uniq", "cut", "find", "xargs", "stat", "readlink", "basename",
    "dirname", "mkdir", "rmdir", "touch", "rm", "cp", "mv", "ln", "chmod",
    "chown", "vi", "less",
)

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
)
GROUP = (
    "root:x:0:\n"
    "nobody:x:65534:\n"
)

#: files in /etc that a runtime bind-mounts a container's own over (step 9): shipped empty
NETWORK_FILES = ("hostname", "hosts", "resolv.conf")

#: empty directories: (path, mode)
DIRECTORIES = (
    ("bin", 0o755),
    ("etc", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("usr", 0o755),
    ("usr/bin", 0o755),
)


class RootfsError(Exception):
    """Building the root filesystem failed; the message says why and how to fix it."""


def default_dest() -> Path:
    """The rootfs learners use: ``$WORKSHOP_ROOTFS`` or /var/lib/container-workshop/busybox."""
    return Path(os.environ.get("WORKSHOP_ROOTFS") or DEFAULT_ROOTFS)


def is_static_elf(path: str | os.PathLike) -> bool:
    """True when PATH is an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 64 or ident[:4] != b"\x7fELF":
                return False
            is64 = ident[4] == 2
            endian = "<" if ident[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(endian + "Q", ident, 0x20)
                phentsize, phnum = struct.unpack_from(endian + "HH", ident, 0x36)
            else:
                phoff, = struct.unpack_from(endian + "I", ident, 0x1C)
                phentsize, phnum = struct.unpack_from(endian + "HH", ident, 0x2A)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    PT_INTERP = 3
    for i in range(phnum):
        p_type, = struct.unpack_from(endian + "I", table, i * phentsize)
        if p_type == PT_INTERP:
            return False
    return True


def find_busybox() -> Path | None:
    """The host's busybox executable, static or not (None when there is none)."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def find_static_busybox() -> Path:
    """The host's static busybox; raises RootfsError with the fix otherwise."""
    busybox = find_busybox()
    if busybox is None:
        raise RootfsError("busybox is not installed; apt-get install busybox-static")
    if not is_static_elf(busybox):
        raise RootfsError(
            f"{busybox} is dynamically linked and would not run inside the container; "
            "apt-get install busybox-static"
        )
    return busybox


def busybox_applets(busybox: str | os.PathLike) -> set[str]:
    """The applets this busybox was built with (``busybox --list``)."""
    out = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, timeout=10, check=False
    ).stdout
    return set(out.split())


def build_rootfs(dest: str | os.PathLike | None = None, busybox: str | os.PathLike | None = None) -> Path:
    """Build (or refresh) the busybox root filesystem in DEST and return its absolute path.

    DEST may be missing, empty, or a rootfs built before (it is then updated in
    place); any other non-empty directory is refused, so a typo cannot clobber
    a real directory.
    """
    dest = Path(dest) if dest is not None else default_dest()
    dest = Path(os.path.abspath(dest))
    busybox = Path(busybox) if busybox is not None else find_static_busybox()

    if dest.exists():
        if not dest.is_dir():
            raise RootfsError(f"{dest} exists and is not a directory")
        if any(dest.iterdir()) and not (dest / "bin" / "busybox").exists():
            raise RootfsError(
                f"{dest} is a non-empty directory that is not a busybox rootfs; "
                "choose another destination or empty it"
            )

    missing = sorted(set(APPLETS) - busybox_applets(busybox))
    if missing:
        raise RootfsError(f"{busybox} lacks the applets {', '.join(missing)}; apt-get install busybox-static")

    dest.mkdir(parents=True, exist_ok=True)
    os.chmod(dest, 0o755)
    for rel, mode in DIRECTORIES:
        d = dest / rel
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, mode)  # mkdir's mode is filtered by the umask; sticky bit needs chmod anyway

    # copy the binary next to its final name, then rename: a running busybox is never overwritten
    target = dest / "bin" / "busybox"
    tmp = dest / "bin" / ".busybox.new"
    shutil.copyfile(busybox, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)

    def link(path: Path, to: str) -> None:
        if path.is_symlink() or path.exists():
            if path.is_symlink() and os.readlink(path) == to:
                return
            path.unlink()
        os.symlink(to, path)

    for applet in APPLETS:
        link(dest / "bin" / applet, "busybox")
    link(dest / "usr" / "bin" / "env", "../../bin/busybox")  # for "#!/usr/bin/env sh" scripts

    for name, text in (("passwd", PASSWD), ("group", GROUP)):
        path = dest / "etc" / name
        path.write_text(text)
        os.chmod(path, 0o644)
    for name in NETWORK_FILES:  # mount points: the runtime mounts the container's own over them
        path = dest / "etc" / name
        if not path.is_file() or path.is_symlink():
            path.unlink(missing_ok=True)
            path.write_text("")
            os.chmod(path, 0o644)
    return dest


def clone_rootfs(src: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """A cheap private copy of a rootfs: directories copied, files hard-linked, symlinks kept.

    Meant for tests that add files to a rootfs. Files are shared with SRC, so
    write new files into the copy but do not modify the ones it has.
    """
    src, dest = Path(src), Path(dest)

    def link_or_copy(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:  # another file system
            shutil.copy2(s, d)

    shutil.copytree(src, dest, symlinks=True, copy_function=link_or_copy)
    shutil.copystat(src, dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(
            "usage: python3 -m workshop.rootfs [DEST]\n\n"
            "Build the busybox root filesystem in DEST (default: $WORKSHOP_ROOTFS or "
            f"{DEFAULT_ROOTFS}) from the host's busybox-static."
        )
        return 0
    if len(argv) > 1:
        print("usage: python3 -m workshop.rootfs [DEST]", file=sys.stderr)
        return 2
    try:
        dest = build_rootfs(argv[0] if argv else None)
    except (RootfsError, OSError) as e:
        print(f"workshop.rootfs: {e}", file=sys.stderr)
        return 1
    print(f"busybox root filesystem ready in {dest} ({len(APPLETS)} applets)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
