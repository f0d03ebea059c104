"""Layers download side by side while the pull unpacks them one after the other.

    up to 3 download threads:  registry -> one spool file per layer, in the store's tmp/
    the pull (this thread):    spool file -> unpack_layer, base layer first, as the bytes arrive

A spool is a file that its download thread appends to while the unpacker
reads it: no layer is ever held in memory, and a layer's unpacking starts
with its first bytes, not after its last. The spool's name is removed as soon
as both ends have it open, so not even kill -9 leaves it on the disk. A
download that fails makes the next read of its spool fail, with the
download's own error (a 404, a timeout, a full disk).
"""
import os
import threading

from udocker.image.progress import human
from udocker.image.store import remove_tree

DOWNLOADS = 3  # at once, as dockerd's max-concurrent-downloads
CHUNK = 1 << 16


def short(digest):
    return digest[len("sha256:"):][:12]


class Spool:
    """A file one thread fills (fill) while another reads it (read), like a pipe that never blocks the writer."""

    def __init__(self, directory):
        path = os.path.join(directory, os.urandom(6).hex())
        self.write_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self.read_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        os.unlink(path)  # the data lives as long as the two descriptors
        self.written = self.position = 0
        self.finished = False
        self.error = None
        self.changed = threading.Condition()

    def fill(self, blob, cancelled):
        """In a download thread: copy BLOB (a file-like reader) into the spool, then close both."""
        try:
            while not cancelled.is_set():
                chunk = blob.read(CHUNK)
                if not chunk:
                    break
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.write_fd, view):]
                with self.changed:
                    self.written += len(chunk)
                    self.changed.notify_all()
        except BaseException as error:  # handed to the reader, which reports it
            self.error = error
        finally:
            blob.close()
            self.finish()

    def finish(self):
        os.close(self.write_fd)  # only the thread that writes closes it
        with self.changed:
            self.finished = True
            self.changed.notify_all()

    def read(self, n=-1):
        """Up to N bytes: what is written already, else wait for more; b"" once the download is done."""
        with self.changed:
            while self.position == self.written and not self.finished and self.error is None:
                self.changed.wait()
            if self.error is not None:
                raise self.error
            available = self.written - self.position
        if not available:
            return b""
        data = os.read(self.read_fd, available if n is None or n < 0 else min(n, available))
        self.position += len(data)
        return data

    def close(self):
        if self.read_fd is not None:
            os.close(self.read_fd)
            self.read_fd = None


def download_all(registry, jobs, cancelled):
    """Start the download threads: each takes the next (descriptor, spool) of JOBS, in order."""
    jobs = iter(jobs)
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                descriptor, spool = next(jobs, (None, None))
            if spool is None:
                return
            if cancelled.is_set():
                spool.finish()
                continue
            what = f"layer {short(descriptor['digest'])}"
            try:
                blob = registry.blob(descriptor, what)
            except BaseException as error:
                spool.error = error
                spool.finish()
                continue
            spool.fill(blob, cancelled)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(DOWNLOADS)]
    for thread in threads:
        thread.start()
    return threads


def fetch_layers(registry, descriptors, diff_ids, store, progress):
    """Download and unpack the layers STORE lacks; return the image record's layer list, base first.

    The downloads run ahead in threads; this thread unpacks, in order, each
    layer into a directory of its own (store.new_layer: installed only when
    complete and verified).
    """
    from udocker.image.layers import unpack_layer  # tarfile, gzip...: not for a pull that has every layer

    bars = [progress.layer(d["digest"], d.get("size")) for d in descriptors]
    spool_dir = store.temp_dir()
    cancelled = threading.Event()
    spools = {}  # diff_id -> Spool: a layer listed twice is fetched once
    for descriptor, diff_id in zip(descriptors, diff_ids, strict=True):
        if not store.has_layer(diff_id) and diff_id not in spools:
            spools[diff_id] = (descriptor, Spool(spool_dir))
    threads = download_all(registry, list(spools.values()), cancelled)
    try:
        layers = []
        for bar, descriptor, diff_id in zip(bars, descriptors, diff_ids, strict=True):
            if store.has_layer(diff_id):
                bar.done("already exists")
            else:
                spool = spools[diff_id][1]
                what = f"layer {short(descriptor['digest'])}"
                with store.new_layer(diff_id, descriptor["digest"], descriptor.get("size")) as (root, info):
                    info["size"] = unpack_layer(bar.wrap(spool), root, descriptor, diff_id, what)
                bar.done(f"pull complete ({human(bar.count)})")
            layers.append({"digest": descriptor["digest"], "diff_id": diff_id,
                           "size": store.layer_info(diff_id)["size"]})
        for thread in threads:
            thread.join()  # done already: every spool was read to its end
        return layers
    finally:
        cancelled.set()  # a failure: the other downloads stop at their next chunk
        for _, spool in spools.values():
            spool.close()
        remove_tree(spool_dir)
