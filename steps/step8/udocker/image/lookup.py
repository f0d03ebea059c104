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
    # TODO(step 8): Look the image up in the store and pull it when it is missing; then
    #   read its config blob and list its layer directories, lowest first.
    raise NotImplementedError("step 8: find (or pull) the image and its layers")
