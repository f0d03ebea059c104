# udocker: from step 7
"""Image references, parsed the way `docker pull` parses them.

    busybox                          -> docker.io/library/busybox:latest
    busybox:1.36                     -> docker.io/library/busybox:1.36
    library/busybox                  -> docker.io/library/busybox:latest
    127.0.0.1:5000/workshop/app:v1   -> 127.0.0.1:5000/workshop/app:v1
    busybox@sha256:<64 hex>          -> docker.io/library/busybox@sha256:<64 hex>

The grammar is the one of github.com/distribution/reference (regexp.go).
"""
import re

from udocker.errors import UdockerError

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"

# One path component: lowercase letters and digits, separated by '.', '_', '__' or dashes.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN = re.compile(
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
    r"(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


def _short(text, limit=64):
    """TEXT quoted, cut to LIMIT characters: a 300-character name is not worth printing in full."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class InvalidReference(UdockerError):
    def __init__(self, text, why):
        super().__init__(f"invalid reference format: {_short(text)}: {why}; "
                         "expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]")


class Reference:
    """A parsed reference: a plain class, since dataclasses costs more to import than a warm pull may."""

    def __init__(self, registry, repository, tag, digest):
        self.registry = registry  # as the user names it: docker.io, 127.0.0.1:5000, ghcr.io
        self.repository = repository  # library/busybox
        self.tag = tag  # None when pulling by digest only
        self.digest = digest  # sha256:<hex> or None

    def __eq__(self, other):
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self):
        return hash(str(self))

    def __repr__(self):
        return f"Reference({str(self)!r})"

    @property
    def on_docker_hub(self):
        """docker.io is a name, not a server: mirrors.py says which hosts answer for it."""
        return self.registry == DEFAULT_REGISTRY

    @property
    def name(self):
        return f"{self.registry}/{self.repository}"

    @property
    def manifest_ref(self):
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self):
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar(self):
        """The short form Docker prints: busybox:latest rather than docker.io/library/busybox:latest."""
        text = str(self)
        for prefix in (f"{DEFAULT_REGISTRY}/library/", f"{DEFAULT_REGISTRY}/"):
            if text.startswith(prefix):
                return text[len(prefix):]
        return text


def split_registry(name):
    """'busybox' -> ('docker.io', 'library/busybox'); '127.0.0.1:5000/a/b' -> ('127.0.0.1:5000', 'a/b')."""
    # >>> step 7: Docker's rule: the first component names a registry only when it has a '.' or a
    # ... ':' (or is localhost, or has capitals), and a Docker Hub name without '/' is an official
    # ... image under library/.
    first, slash, rest = name.partition("/")
    if slash and (any(c in first for c in ".:") or first == "localhost" or first != first.lower()):
        registry, repository = first, rest
    else:
        registry, repository = DEFAULT_REGISTRY, name
    if registry == "index.docker.io":
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository
    # --- before
    raise NotImplementedError("step 7: split the registry host off an image reference")
    # <<<


def parse_reference(text):
    """Parse TEXT into a Reference, or raise InvalidReference saying what is wrong."""
    if not text or len(text) > 512:
        raise InvalidReference(text, "empty or too long")
    rest, at, digest = text.partition("@")
    # A ':' after the last '/' starts the tag; one before it belongs to host:port.
    tag = None
    colon = rest.rfind(":")
    if colon > rest.rfind("/"):
        rest, tag = rest[:colon], rest[colon + 1:]
    registry, repository = split_registry(rest)
    if at and not _DIGEST.fullmatch(digest):
        raise InvalidReference(text, "a digest is sha256: and 64 lowercase hex digits")
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidReference(text, f"bad tag {_short(tag)}")
    if not _DOMAIN.fullmatch(registry):
        raise InvalidReference(text, f"bad registry host {_short(registry)}")
    port = registry.rpartition(":")[2] if ":" in registry else None
    if port is not None and not 0 < int(port) < 65536:
        raise InvalidReference(text, f"port {port} of {_short(registry)} is not a TCP port (1 to 65535)")
    if repository != repository.lower():
        raise InvalidReference(text, "repository names must be lowercase")
    if not _REPOSITORY.fullmatch(repository) or len(repository) > 255:
        raise InvalidReference(text, f"bad repository name {_short(repository)}")
    if tag is None and not at:
        tag = DEFAULT_TAG
    return Reference(registry, repository, tag, digest or None)
