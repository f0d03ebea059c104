"""From `udocker run IMAGE` to what the container needs: layer directories and a run config.

IMAGE is a reference here (a directory IMAGE, starting with / or ., is
handled by the caller). An image that is not stored yet is pulled first, with
the pull's progress on stderr: stdout stays the container's.
"""
import json

from udocker.image.reference import parse_reference
from udocker.image.store import Store


class Image:
    """What `run` needs of a stored image (a plain class: dataclasses is slow to import)."""

    def __init__(self, reference, digest, layer_dirs, config=None):
        self.reference = reference  # docker.io/library/busybox:latest
        self.digest = digest
        self.layer_dirs = layer_dirs  # unpacked layers, lowest first: overlayfs's lowerdir lists them the other way round
        self.config = config or {}  # Env, WorkingDir, Entrypoint, Cmd, User (any may be missing)


def resolve(reference, store=None):
    """The stored image REFERENCE names, pulled first when it is not stored."""
    reference = parse_reference(reference)
    store = store or Store()
    record = store.load_image(reference)
    if record is None:
        from udocker.image.progress import Progress
        from udocker.image.pull import pull_image  # the pull path loads only when there is something to pull

        record = pull_image(reference, store, Progress())
    config = json.loads(store.read_blob(record["config"]))
    return Image(
        reference=str(reference),
        digest=record["digest"],
        layer_dirs=[store.layer_root(layer["diff_id"]) for layer in record["layers"]],
        config=config.get("config") or {},
    )
