"""Content addressing: a digest names bytes, so the bytes must be checked against it.

A registry, a proxy or a flaky network can hand back anything. Everything
fetched by digest is hashed *while it streams* and refused when the hash
differs, so nothing unverified is ever kept, and nothing needs to be held in
memory to be checked.
"""
import hashlib
import io

from udocker.errors import UdockerError


class DigestMismatch(UdockerError):
    pass


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def check_algorithm(digest):
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise UdockerError(f"unsupported digest {digest!r}; udocker checks sha256 digests only")


class VerifyingReader:
    """A file-like reader over SOURCE that hashes what passes through it.

    Call verify() once everything has been read: it raises DigestMismatch when
    the bytes are not the ones EXPECTED names (or when SIZE is given and the
    length differs).
    """

    def __init__(self, source, expected, what, size=None):
        check_algorithm(expected)
        self.source = source
        self.expected = expected
        self.what = what
        self.size = size
        self.count = 0
        self.hash = hashlib.sha256()

    def read(self, n=-1):
        data = self.source.read(n)
        self.hash.update(data)
        self.count += len(data)
        return data

    def drain(self):
        """Read what is left, so the whole blob is hashed even if the consumer stopped early."""
        while self.read(1 << 16):
            pass

    def verify(self):
        actual = "sha256:" + self.hash.hexdigest()
        if self.size is not None and self.count != self.size:
            raise DigestMismatch(
                f"{self.what}: got {self.count} bytes, expected {self.size}; "
                "the download was cut short or the registry sent something else")
        if actual != self.expected:
            raise DigestMismatch(
                f"{self.what}: content does not match its digest (expected {self.expected}, "
                f"got {actual}); nothing of it was stored")


def verify_bytes(data, expected, what):
    """Check bytes already in memory (a manifest, a config) against their digest."""
    reader = VerifyingReader(io.BytesIO(data), expected, what)
    reader.drain()
    reader.verify()
