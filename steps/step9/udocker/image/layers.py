"""Unpack a layer: one pass from the network to the disk, checked all the way.

    registry -> sha256 (the layer digest) -> gunzip -> sha256 (the diff_id) -> tar members

Each layer is unpacked into a directory of its own, exactly as overlayfs
wants its layers (step 8 stacks them), so a layer shared by two images is
stored once:

- a whiteout `dir/.wh.NAME` (NAME was deleted by this layer) becomes what
  overlayfs calls a whiteout: a character device 0/0 named NAME;
- an opaque directory `dir/.wh..wh..opq` (dir's lower content is hidden)
  becomes the extended attribute overlay.opaque=y on dir.

A layer is untrusted input. Every member must land inside the layer
directory: names with `..` or a leading `/`, paths through a symlink, and
hard links to something outside are refused, and the pull fails. Symlinks
themselves may point anywhere (`/bin/sh -> /bin/busybox` is normal): they are
created, never followed.
"""
import gzip
import os
import shutil
import stat
import tarfile
import zlib

from udocker.errors import UdockerError
from udocker.image.digest import VerifyingReader

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
IS_ROOT = os.geteuid() == 0
# overlayfs reads trusted.* xattrs as root, user.* in a user namespace (mount option userxattr)
OPAQUE_XATTRS = ("trusted.overlay.opaque", "user.overlay.opaque") if IS_ROOT else ("user.overlay.opaque",)
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class HostileLayer(UdockerError):
    def __init__(self, what, member, why):
        super().__init__(f"{what} is refused: member {member!r} {why}; "
                         "the image may be malicious, nothing of it was stored")


class _Prefixed:
    """A reader that first returns HEAD, then the rest of SOURCE (to peek at magic bytes)."""

    def __init__(self, head, source):
        self.head = head
        self.source = source

    def read(self, n=-1):
        if self.head:
            if n is None or n < 0:
                data, self.head = self.head + self.source.read(), b""
                return data
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.source.read(n)


def decompressed(source, what):
    """SOURCE unzipped when it is gzip, as it is when it is a plain tar."""
    head = source.read(4)
    stream = _Prefixed(head, source)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if head == ZSTD_MAGIC:
        raise UdockerError(f"{what} is zstd-compressed; udocker reads gzip and plain tar layers")
    return stream


def inside(root, name, what, member):
    """The path of member NAME inside ROOT, refusing anything that could lead outside it.

    Returns (parent directory, last component); the last component is None for ROOT itself.
    Missing parent directories are created.
    """
    if name.startswith("/"):
        raise HostileLayer(what, member, "has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise HostileLayer(what, member, "climbs out with '..'")
    if not parts:
        return root, None
    parent = root
    for part in parts[:-1]:
        parent = os.path.join(parent, part)
        try:
            st = os.lstat(parent)
        except FileNotFoundError:
            os.mkdir(parent, 0o755)
            continue
        if stat.S_ISLNK(st.st_mode):
            raise HostileLayer(what, member, f"goes through the symlink {part!r}")
        if not stat.S_ISDIR(st.st_mode):
            raise HostileLayer(what, member, f"goes through {part!r}, which is not a directory")
    return parent, parts[-1]


def clear(path, keep_directory):
    """Remove what is at PATH (a later member replaces an earlier one), without following links."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        if not keep_directory:
            shutil.rmtree(path)
    else:
        os.unlink(path)


def whiteout(parent, name, what, member):
    """Record, in overlayfs's words, that this layer deletes NAME or hides a directory's lower content."""
    if name == OPAQUE:
        for xattr in OPAQUE_XATTRS:
            os.setxattr(parent, xattr, b"y", follow_symlinks=False)
        return
    target = name[len(WHITEOUT):]
    if target in ("", ".", ".."):
        raise HostileLayer(what, member, "is a whiteout of nothing")
    path = os.path.join(parent, target)
    clear(path, keep_directory=False)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


def create(tar, member, root, path, what):
    """Create the file, directory, link or device MEMBER describes at PATH."""
    if member.isdir():
        clear(path, keep_directory=True)
        if not os.path.isdir(path):
            os.mkdir(path, 0o700)
    elif member.isfile():  # regular, contiguous or sparse
        clear(path, keep_directory=False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(tar.extractfile(member), out, 1 << 20)
    elif member.issym():
        clear(path, keep_directory=False)
        os.symlink(member.linkname, path)
    elif member.islnk():
        # The target is a path inside the layer too, and must already be in it.
        link_parent, link_name = inside(root, member.linkname, what, f"{member.name} -> {member.linkname}")
        target = os.path.join(link_parent, link_name or "")
        try:
            is_file = link_name is not None and not stat.S_ISDIR(os.lstat(target).st_mode)
        except FileNotFoundError:
            is_file = False
        if not is_file:
            raise HostileLayer(what, member.name, f"is a hard link to {member.linkname!r}, "
                               "which is not a file of this layer")
        clear(path, keep_directory=False)
        os.link(target, path, follow_symlinks=False)
    elif member.ischr() or member.isblk() or member.isfifo():
        clear(path, keep_directory=False)
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK if member.isblk() else stat.S_IFIFO
        try:
            os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))
        except PermissionError:
            return False  # rootless: no device nodes, as with rootless podman
    else:
        return False  # an unknown member type: skip it
    return True


def set_attributes(member, path):
    """Ownership (as root), then mode (chown clears setuid bits), then modification time."""
    is_link = member.issym()
    if IS_ROOT:
        os.chown(path, member.uid, member.gid, follow_symlinks=False)
    if not is_link:
        os.chmod(path, stat.S_IMODE(member.mode))
    for key, value in (member.pax_headers or {}).items():
        # file capabilities (ping's cap_net_raw) travel as PAX xattr records
        if key.startswith("SCHILY.xattr.security.capability") and not is_link:
            try:
                os.setxattr(path, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"))
            except OSError:
                pass
    os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def unpack_members(tar, root, what):
    """Apply every member of TAR inside the directory ROOT."""
    directories = []  # their mode and time are set last: a read-only directory must take its files first
    for member in tar:
        parent, name = inside(root, member.name, what, member.name)
        if name is None:
            continue  # './' itself: the layer directory keeps its own attributes
        if name.startswith(WHITEOUT):
            whiteout(parent, name, what, member.name)
            continue
        path = os.path.join(parent, name)
        if not create(tar, member, root, path, what):
            continue
        if member.isdir():
            directories.append((member, path))
        elif not member.islnk():  # a hard link shares its target's attributes
            set_attributes(member, path)
    for member, path in reversed(directories):
        set_attributes(member, path)


def unpack_layer(blob, dest, descriptor, diff_id, what):
    """Stream the layer BLOB into the empty directory DEST; return its uncompressed size.

    Both digests are checked at the end: the compressed one (the layer digest,
    from the manifest) and the uncompressed one (the diff_id, from the config).
    DEST is a temporary directory: the caller discards it when this raises.
    """
    compressed = VerifyingReader(blob, descriptor["digest"], what, descriptor.get("size"))
    plain = VerifyingReader(decompressed(compressed, what), diff_id, f"{what} unpacked (its diff_id in the config)")
    try:
        with tarfile.open(fileobj=plain, mode="r|", format=tarfile.PAX_FORMAT) as tar:
            unpack_members(tar, dest, what)
        plain.drain()  # the zero blocks after the tar's end belong to the diff_id too
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as error:
        # A corrupted download usually breaks gzip or tar before the digest can say so.
        compressed.drain()
        compressed.verify()
        raise UdockerError(f"{what} is not a valid layer: {error}") from None
    except HostileLayer:
        compressed.drain()  # garbage from a corrupted download is not an attack: tell them apart
        compressed.verify()
        raise
    compressed.drain()
    compressed.verify()
    plain.verify()
    return plain.count
