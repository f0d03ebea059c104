"""The image store: content-addressed, and never half-written.

    $UDOCKER_ROOT/                      /var/lib/udocker as root, ~/.local/share/udocker otherwise
      blobs/sha256/<hex>                manifests, indexes and configs, by digest
      layers/sha256/<hex>/root/         an unpacked layer, by diff_id (shared between images)
      layers/sha256/<hex>/layer.json    its digest and unpacked size
      images/<reference>.json           what a reference resolved to, by reference
      tmp/<pid>.<random>/               work in progress

Everything is written under tmp/ first and renamed into place once complete
and verified; a rename is atomic. So an interrupted pull (Ctrl-C, kill -9, a
dropped connection) leaves nothing that looks complete, and the next pull
redoes exactly what is missing. Stale tmp/ entries of dead processes are
removed by the next pull.
"""
import contextlib
import json
import os
import shutil
import stat
import time
from urllib.parse import quote, unquote

from udocker.errors import UdockerError
from udocker.image.digest import verify_bytes


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
        verify_bytes(data, digest, f"blob {digest}")
        temp = self.temp_dir()
        with open(os.path.join(temp, "blob"), "wb") as f:
            f.write(data)
        os.makedirs(os.path.dirname(self.blob_path(digest)), exist_ok=True)
        os.replace(os.path.join(temp, "blob"), self.blob_path(digest))
        os.rmdir(temp)

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
    def new_layer(self, diff_id, digest):
        """Yield an empty directory to unpack into; installed as the layer only if the block succeeds.

        The block sets info["size"] (the unpacked size).
        """
        temp = self.temp_dir()
        root = os.path.join(temp, "root")
        os.mkdir(root, 0o755)
        info = {"diff_id": diff_id, "digest": digest, "size": 0}
        try:
            yield root, info
            with open(os.path.join(temp, "layer.json"), "w") as f:
                json.dump(info, f)
            self._install(temp, self.layer_path(diff_id))
        except BaseException:  # KeyboardInterrupt too: nothing partial stays behind
            remove_tree(temp)
            raise

    # --- image records, by reference ------------------------------------------

    def record_path(self, reference):
        return self.path("images", quote(str(reference), safe="") + ".json")

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
        try:
            os.unlink(self.record_path(reference))
        except FileNotFoundError:
            raise UdockerError(f"no such image: {reference}; see 'udocker images'") from None

    def collect_garbage(self):
        """Remove the blobs and layers no image record refers to; return how many went."""
        blobs, layers = set(), set()
        for record in self.images():
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
