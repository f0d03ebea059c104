# udocker: from step 7
"""What a registry hands out: manifests, indexes (manifest lists) and their media types.

An image is a *manifest*: a config blob (JSON: environment, command, the
diff_ids of the layers) and a list of layer blobs (tar archives). A
multi-platform image is an *index* that points at one manifest per platform.
OCI and Docker name the same two things differently; udocker reads both.
"""
import json
import os

from udocker.errors import UdockerError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)


def accept_header():
    """The Accept header of manifest requests: every format udocker can read.

    A registry answers with the first of its formats that the client accepts.
    Without the OCI types, Debian's registry 2.8 answers 404 ("OCI manifest
    found, but accept header does not support OCI manifests"); without Docker's
    schema 2, it converts a Docker image to the obsolete, signed schema 1, whose
    bytes then differ from the digest it announces.
    """
    return ", ".join((OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST))

# uname -m -> (GOARCH, variant): the names registries use for platforms.
_ARCHITECTURES = {
    "x86_64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i686": ("386", None),
    "i386": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


def host_platform():
    """This machine's platform as a registry names it: {'os', 'architecture'[, 'variant']}."""
    machine = os.uname().machine
    architecture, variant = _ARCHITECTURES.get(machine, (machine, None))
    platform = {"os": "linux", "architecture": architecture}
    if variant:
        platform["variant"] = variant
    return platform


def platform_name(platform):
    parts = [platform.get("os", "?"), platform.get("architecture", "?")]
    if platform.get("variant"):
        parts.append(platform["variant"])
    return "/".join(parts)


def parse_json(body, what):
    try:
        document = json.loads(body)
    except ValueError as error:
        raise UdockerError(f"{what} is not valid JSON ({error})") from None
    if not isinstance(document, dict):
        raise UdockerError(f"{what} is not a JSON object")
    return document


def media_type(content_type, document):
    """The manifest's media type: the Content-Type header, else its own mediaType field."""
    content_type = (content_type or "").split(";")[0].strip()
    if content_type in INDEX_TYPES + MANIFEST_TYPES + DOCKER_SCHEMA1:
        return content_type
    return document.get("mediaType") or content_type


def choose_platform(index, platform, what):
    """The descriptor, in INDEX's manifests, of the image for PLATFORM; UdockerError if none."""
    def matches(candidate):
        if candidate.get("os") != platform["os"]:
            return False
        if candidate.get("architecture") != platform["architecture"]:
            return False
        wanted = platform.get("variant")
        offered = candidate.get("variant")
        if platform["architecture"] == "arm64":  # v8 is the only arm64 there is, named or not
            return offered in (None, "", "v8")
        return wanted is None or offered in (None, "", wanted)

    for descriptor in index.get("manifests") or []:
        if matches(descriptor.get("platform") or {}):
            return descriptor
    offered = sorted({platform_name(d.get("platform") or {}) for d in index.get("manifests") or []})
    raise UdockerError(
        f"{what} has no image for {platform_name(platform)} "
        f"(it offers: {', '.join(offered) or 'nothing'})"
    )
