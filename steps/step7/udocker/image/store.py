"""The image store: content-addressed, and never half-written.

    $UDOCKER_ROOT/                      /var/lib/udocker as root, ~/.local/share/udocker otherwise
      blobs/sha256/<hex>                manifests, indexes and configs, by digest
      layers/sha256/<hex>/root/         an unpacked layer, by diff_id (shared between images)
      layers/sha256/<hex>/layer.json    its digest and unpacked size
      images/<reference>.json           what a reference resolved to, by reference
      leases/<container id>.json        what a running container uses (step 8)
      lock                              pulls and runs share it; rmi takes it alone
      tmp/<pid>.<random>/               work in progress

Everything is written under tmp/ first and renamed into place once complete
and verified; a rename is atomic. So an interrupted pull (Ctrl-C, kill -9, a
dropped connection, a full disk) leaves nothing that looks complete, and the
next pull redoes exactly what is missing. Stale tmp/ entries of dead
processes are removed by the next pull.

A running container holds a lease: a file naming its image and layers, locked
with flock(2) by the runtime for as long as it runs. `udocker rmi` never
removes what a locked lease names. The kernel drops the lock when the runtime
dies, kill -9 included, so a stale lease never blocks anything: the next rmi
removes it.
"""
import atexit
import contextlib
import errno
import fcntl
import json
import os
import stat
import time

from udocker.errors import UdockerError

# A run of a stored image reads records and configs only: what writes the store
# (hashing, shutil, progress) is imported where it is used, to keep `run` quick.

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def default_root():
    if os.environ.get("UDOCKER_ROOT"):
        return os.path.abspath(os.environ["UDOCKER_ROOT"])
    if os.geteuid() == 0:
        return "/var/lib/udocker"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "udocker")


def remove_tree(path):
    """rm -rf PATH, also when it holds read-only directories (a layer may have them)."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path) and os.geteuid() != 0:
        # root may delete anything; anyone else needs write access to each directory first
        os.chmod(path, stat.S_IRWXU)
        for directory, subdirectories, _files in os.walk(path):
            for name in subdirectories:
                child = os.path.join(directory, name)
                if not os.path.islink(child):
                    os.chmod(child, stat.S_IRWXU)
    if os.path.isdir(path) and not os.path.islink(path):
        import shutil

        shutil.rmtree(path)
    else:
        os.unlink(path)


def _hex(digest):
    return digest.split(":", 1)[1]


class Store:
    def __init__(self, root=None):
        self.root = root or default_root()

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    # --- work in progress ------------------------------------------------------

    def temp_dir(self):
        """A fresh directory under tmp/ named after this process, so leftovers can be told apart."""
        os.makedirs(self.path("tmp"), mode=0o700, exist_ok=True)
        os.chmod(self.root, 0o700)  # unpacked setuid files must not be reachable by other users
        path = self.path("tmp", f"{os.getpid()}.{os.urandom(4).hex()}")
        os.mkdir(path, 0o700)
        return path

    def clean_stale(self):
        """Remove what dead processes left in tmp/ (a pull killed with -9)."""
        try:
            entries = os.listdir(self.path("tmp"))
        except FileNotFoundError:
            return
        for entry in entries:
            pid = entry.split(".", 1)[0]
            try:
                os.kill(int(pid), 0)
                continue  # still running: its work is not ours to remove
            except (ValueError, ProcessLookupError):
                pass
            except PermissionError:
                continue
            remove_tree(self.path("tmp", entry))

    def _install(self, temp, final):
        """Rename TEMP to FINAL; if another pull got there first, keep theirs."""
        os.makedirs(os.path.dirname(final), exist_ok=True)
        try:
            os.rename(temp, final)
        except OSError:
            if not os.path.exists(final):
                raise
            remove_tree(temp)

    # --- blobs: manifests, indexes, configs ------------------------------------

    def blob_path(self, digest):
        return self.path("blobs", "sha256", _hex(digest))

    def has_blob(self, digest):
        return os.path.isfile(self.blob_path(digest))

    def read_blob(self, digest):
        with open(self.blob_path(digest), "rb") as f:
            return f.read()

    def write_blob(self, digest, data):
        from udocker.image.digest import verify_bytes

        verify_bytes(data, digest, f"blob {digest}")
        temp = self.temp_dir()
        try:
            with open(os.path.join(temp, "blob"), "wb") as f:
                f.write(data)
            os.makedirs(os.path.dirname(self.blob_path(digest)), exist_ok=True)
            os.replace(os.path.join(temp, "blob"), self.blob_path(digest))
        except OSError as error:
            if error.errno in NO_SPACE:
                raise self.disk_full(f"blob {_hex(digest)[:12]}", len(data)) from None
            raise
        finally:
            remove_tree(temp)

    # --- layers, by diff_id -----------------------------------------------------

    def layer_path(self, diff_id):
        return self.path("layers", "sha256", _hex(diff_id))

    def layer_root(self, diff_id):
        """The directory overlayfs stacks: the layer's files."""
        return os.path.join(self.layer_path(diff_id), "root")

    def has_layer(self, diff_id):
        return os.path.isfile(os.path.join(self.layer_path(diff_id), "layer.json"))

    def layer_info(self, diff_id):
        with open(os.path.join(self.layer_path(diff_id), "layer.json")) as f:
            return json.load(f)

    @contextlib.contextmanager
    def new_layer(self, diff_id, digest, size=None):
        """Yield an empty directory to unpack into; installed as the layer only if the block succeeds.

        The block sets info["size"] (the unpacked size). SIZE, the layer's size
        as downloaded, is what a full disk's message names.
        """
        temp = self.temp_dir()
        root = os.path.join(temp, "root")
        info = {"diff_id": diff_id, "digest": digest, "size": 0}
        try:
            os.mkdir(root, 0o755)
            yield root, info
            with open(os.path.join(temp, "layer.json"), "w") as f:
                json.dump(info, f)
            self._install(temp, self.layer_path(diff_id))
        except BaseException as error:  # KeyboardInterrupt too: nothing partial stays behind
            remove_tree(temp)
            if isinstance(error, OSError) and error.errno in NO_SPACE:
                raise self.disk_full(f"layer {_hex(digest)[:12]}", size) from None
            raise

    def disk_full(self, what, size=None):
        """The error of a full disk: where, what was being written, how big it is, what to do."""
        from udocker.image.progress import human

        needed = f" ({human(size)} to download, more once unpacked)" if size else ""
        return UdockerError(
            f"no space left on the disk of {self.root} while storing {what}{needed}; "
            "nothing of it was kept: free some space there (udocker rmi the images you no "
            "longer need) or set UDOCKER_ROOT to a directory on a larger disk")

    # --- image records, by reference ------------------------------------------

    def record_path(self, reference):
        return self.path("images", quote(str(reference)) + ".json")

    def save_image(self, record):
        temp = self.temp_dir()
        with open(os.path.join(temp, "record"), "w") as f:
            json.dump(record, f, indent=1)
        os.makedirs(self.path("images"), exist_ok=True)
        os.replace(os.path.join(temp, "record"), self.record_path(record["reference"]))
        os.rmdir(temp)

    def load_image(self, reference):
        """The record of REFERENCE, or None when it is not stored (or incompletely)."""
        try:
            with open(self.record_path(reference)) as f:
                record = json.load(f)
        except (FileNotFoundError, ValueError):
            return None
        if not self.is_complete(record):
            return None
        return record

    def is_complete(self, record):
        return (self.has_blob(record["manifest"]) and self.has_blob(record["config"])
                and all(self.has_layer(layer["diff_id"]) for layer in record["layers"]))

    def images(self):
        """Every stored record, sorted by reference."""
        try:
            names = sorted(os.listdir(self.path("images")))
        except FileNotFoundError:
            return []
        records = []
        for name in names:
            if name.endswith(".json"):
                record = self.load_image(unquote(name[:-len(".json")]))
                if record:
                    records.append(record)
        return records

    def remove_image(self, reference):
        """Remove REFERENCE's record (untag it); its blobs and layers go with collect_garbage."""
        try:
            os.unlink(self.record_path(reference))
        except FileNotFoundError:
            raise UdockerError(f"no such image: {reference}; see 'udocker images'") from None

    def collect_garbage(self):
        """Remove the blobs and layers no image record and no running container uses; return how many went."""
        with self.locked(fcntl.LOCK_EX):  # no pull or start in between
            blobs, layers = set(), set()
            for record in self.images() + self.leases():
                blobs.update(record.get("blobs", [record["manifest"], record["config"]]))
                layers.update(layer["diff_id"] for layer in record["layers"])
            removed = 0
            for kind, keep, remove in (("blobs", blobs, os.unlink), ("layers", layers, remove_tree)):
                directory = self.path(kind, "sha256")
                try:
                    entries = os.listdir(directory)
                except FileNotFoundError:
                    continue
                for entry in entries:
                    if f"sha256:{entry}" not in keep:
                        remove(os.path.join(directory, entry))
                        removed += 1
            return removed

    # --- the store's lock ---------------------------------------------------------

    @contextlib.contextmanager
    def locked(self, mode=fcntl.LOCK_SH):
        """Hold the store's lock: shared by pulls and starting containers, exclusive for rmi's clean-up.

        So rmi never removes a layer that a pull has just unpacked but not yet
        recorded, nor one that a container is about to lease.
        """
        os.makedirs(self.root, exist_ok=True)
        fd = os.open(self.path("lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing drops the lock

    # --- leases: what running containers use ------------------------------------

    def hold(self, reference, digest, container_id):
        """Lease the image REFERENCE (as it resolved to DIGEST) for the running container CONTAINER_ID.

        Returns a Lease; it is released when this process exits (or by the kernel
        if it is killed). Raises UdockerError when the image was removed or
        changed since it was looked up.
        """
        with self.locked():
            record = self.load_image(reference)
            if record is None or record["digest"] != digest:
                raise UdockerError(f"the image {reference} was removed or pulled again while the "
                                   "container was starting; run it again")
            lease = {"container": container_id, "reference": record["reference"], "digest": digest,
                     "manifest": record["manifest"], "config": record["config"],
                     "layers": record["layers"], "blobs": record.get("blobs", [])}
            temp = self.temp_dir()
            path = os.path.join(temp, "lease.json")
            # Locked before it is visible under leases/: a lease there without a lock is stale.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, json.dumps(lease).encode())
            os.makedirs(self.path("leases"), mode=0o700, exist_ok=True)
            final = self.path("leases", f"{container_id}.json")
            os.rename(path, final)
            os.rmdir(temp)
        return Lease(final, fd)

    def leases(self):
        """The leases of the containers that run now; stale ones (their runtime died) are removed."""
        try:
            names = sorted(os.listdir(self.path("leases")))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            path = self.path("leases", name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # released meanwhile
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:  # its runtime holds the lock: the container runs
                    with os.fdopen(os.dup(fd)) as f:
                        found.append(json.load(f))
                else:  # nobody holds it: its runtime is gone
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
            finally:
                os.close(fd)
        return found

    def users(self, record):
        """The leases of running containers that use RECORD's image (the same config: docker's image id)."""
        return [lease for lease in self.leases() if lease["config"] == record["config"]]


class Lease:
    """A running container's claim on its image: a locked file under leases/, until release()."""

    def __init__(self, path, fd):
        self.path, self.fd = path, fd
        atexit.register(self.release)  # when the runtime exits; the kernel drops the lock if it is killed

    def release(self):
        if self.fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self.fd)  # drops the lock
        self.fd = None


def new_record(reference, digest, manifest_digest, config_digest, layers, blobs):
    return {
        "reference": str(reference),
        "digest": digest,  # what the reference resolved to: the index's digest for multi-platform images
        "manifest": manifest_digest,
        "config": config_digest,
        "layers": layers,  # [{"digest", "diff_id", "size"}], lowest first
        "size": sum(layer["size"] for layer in layers),
        "blobs": sorted(set(blobs)),
        "pulled": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# A record's file name is its reference, %-quoted as urllib.parse.quote(text, safe="") does
# (its module costs 4 ms to import, on every run of an image).
_UNQUOTED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(text):
    """'docker.io/library/busybox:latest' -> 'docker.io%2Flibrary%2Fbusybox%3Alatest'."""
    return "".join(chr(b) if b in _UNQUOTED else f"%{b:02X}" for b in text.encode())


def unquote(name):
    """The reverse of quote()."""
    parts = name.split("%")
    raw = bytearray(parts[0].encode())
    for part in parts[1:]:
        raw += bytes([int(part[:2], 16)]) + part[2:].encode()
    return raw.decode()
