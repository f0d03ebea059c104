"""Step 7: layers are unpacked as overlayfs layers: whiteouts, opaque directories, every kind of file.

workshop/layers:latest is busybox + 3 layers (workshop.images.layered_image):
1. etc/motd, etc/issue (v1), root/old, root/olddir/deep, opt/keep/file
2. etc/.wh.motd, etc/added, etc/issue (v2), root/.wh..wh..opq, root/new
3. (plain tar) opt/special/: setuid file, file owned 1000:1000, old mtime,
   hard link, absolute and relative symlinks, char device 1:3, fifo
"""
import os
import stat
import subprocess

import pytest

IMAGE = "workshop/layers:latest"


@pytest.fixture
def pulled(shared_pull):
    return shared_pull(IMAGE)


@pytest.fixture
def layers(pulled, image_registry):
    """The unpacked layer directories of workshop/layers, lowest first."""
    return [pulled.store.layer(layer.diff_id) for layer in image_registry.images[IMAGE].layers]


def test_whiteout_is_an_overlay_whiteout(pulled, layers):
    path = layers[2] / "etc" / "motd"
    st = os.lstat(path) if os.path.lexists(path) else None
    pulled.result.check(st is not None and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0,
                        f"{path}: a character device 0/0 (overlayfs's whiteout)",
                        "missing" if st is None else f"mode {stat.filemode(st.st_mode)} rdev {st.st_rdev}")


def test_whiteout_file_itself_is_not_unpacked(pulled, layers):
    path = layers[2] / "etc" / ".wh.motd"
    pulled.result.check(not os.path.lexists(path), f"no {path}", "it exists")


def test_opaque_directory_has_the_overlay_xattr(pulled, layers):
    path = layers[2] / "root"
    names = {"trusted.overlay.opaque", "user.overlay.opaque"}
    values = {name: os.getxattr(path, name) for name in os.listxattr(path) if name in names}
    pulled.result.check(b"y" in values.values(), f"{path} with trusted.overlay.opaque=y", repr(values))
    pulled.result.check(not os.path.lexists(path / ".wh..wh..opq"), "no .wh..wh..opq file", "it exists")


def _merged_listing(layers, tmp_path, script):
    """Mount the layers as overlayfs (lowest last in lowerdir) in a private mount namespace; run SCRIPT."""
    target = tmp_path / "merged"
    target.mkdir()
    lower = ":".join(str(p) for p in reversed(layers))
    command = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
               f'mount -t overlay overlay -o "lowerdir={lower}" "{target}" && cd "{target}" && {script}']
    return subprocess.run(command, capture_output=True, text=True, timeout=10)


def test_overlay_of_the_layers_applies_whiteouts(pulled, layers, tmp_path):
    out = _merged_listing(layers, tmp_path, "ls etc/motd; cat etc/added etc/issue; ls root; ls opt/keep")
    expected = "added by layer 2\nversion 2\nnew\nfile\n"
    pulled.result.check(out.stdout == expected and "motd" in out.stderr,
                        f"in the merged view: no etc/motd, stdout {expected!r}",
                        f"stdout {out.stdout!r}, stderr {out.stderr!r}")


def _lstat(pulled, path):
    if not os.path.lexists(path):
        pulled.result.fail(f"expected {path}, got nothing there")
    return os.lstat(path)


def test_setuid_bit_is_kept(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special/setuid")
    pulled.result.check(stat.S_IMODE(st.st_mode) == 0o4755, "mode 4755", oct(stat.S_IMODE(st.st_mode)))


def test_directory_mode_is_kept(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special")
    pulled.result.check(stat.S_IMODE(st.st_mode) == 0o2775, "mode 2775", oct(stat.S_IMODE(st.st_mode)))


def test_ownership_is_kept(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special/owned")
    pulled.result.check((st.st_uid, st.st_gid) == (1000, 1000), "owner 1000:1000", f"{st.st_uid}:{st.st_gid}")


def test_mtime_is_kept(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special/old-mtime")
    pulled.result.check(int(st.st_mtime) == 1234567890, "mtime 1234567890", f"{st.st_mtime}")


def test_hard_link_shares_the_inode(pulled, layers):
    a, b = _lstat(pulled, layers[3] / "opt/special/target"), _lstat(pulled, layers[3] / "opt/special/hardlink")
    pulled.result.check(a.st_ino == b.st_ino, "one inode for target and hardlink", f"{a.st_ino} and {b.st_ino}")


def test_absolute_symlink_is_kept_as_it_is(pulled, layers):
    path = layers[3] / "opt/special/absolute"
    _lstat(pulled, path)
    pulled.result.check(os.readlink(path) == "/etc/added", "a symlink to /etc/added", os.readlink(path))


def test_relative_symlink_is_kept(pulled, layers):
    path = layers[3] / "opt/special/relative"
    _lstat(pulled, path)
    pulled.result.check(os.readlink(path) == "../keep/file", "a symlink to ../keep/file", os.readlink(path))


def test_device_node_is_created(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special/null")
    pulled.result.check(stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) == (1, 3),
                        "a character device 1:3", f"{stat.filemode(st.st_mode)} {os.major(st.st_rdev)}:"
                                                  f"{os.minor(st.st_rdev)}")


def test_fifo_is_created(pulled, layers):
    st = _lstat(pulled, layers[3] / "opt/special/fifo")
    pulled.result.check(stat.S_ISFIFO(st.st_mode), "a fifo", stat.filemode(st.st_mode))


def test_busybox_layer_is_complete(pulled, layers):
    sh = layers[0] / "bin" / "sh"
    pulled.result.check(os.path.islink(sh) and os.readlink(sh) == "busybox", "bin/sh -> busybox",
                        repr(os.readlink(sh)) if os.path.islink(sh) else "no symlink")
    st = _lstat(pulled, layers[0] / "tmp")
    pulled.result.check(stat.S_IMODE(st.st_mode) == 0o1777, "tmp with mode 1777", oct(stat.S_IMODE(st.st_mode)))
