"""Build the workshop's small images and push them to a registry, with nothing but HTTP.

    python3 -m workshop.images seed --registry 127.0.0.1:5000

pushes ``workshop/busybox:latest`` (the busybox root filesystem as one layer),
so that ``udocker pull 127.0.0.1:5000/workshop/busybox`` works without
Docker Hub, and the same image as ``library/busybox:latest``, so that with
``UDOCKER_REGISTRY_MIRRORS=http://127.0.0.1:5000`` even ``udocker pull busybox``
does. (``workshop registry start`` runs a registry and does this.) The tests of steps 7 and 8 use the builders below for images
with several layers, whiteouts, indexes, Docker media types, a run config
and hostile layers.

Images are reproducible: tar members have uid/gid 0 and mtime 0 unless said
otherwise, gzip has mtime 0, so the same input always gives the same digests.

Pushing (OCI distribution spec, "push"): each blob with POST
/v2/<name>/blobs/uploads/ then PUT <Location>&digest=<digest>, then the
manifest with PUT /v2/<name>/manifests/<tag> and its media type as
Content-Type. Blobs the registry has already are skipped (HEAD).
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def host_architecture() -> str:
    machine = os.uname().machine
    return GOARCH.get(machine, machine)


def other_architecture() -> str:
    """An architecture that is not this machine's (for the 'wrong platform' entry of an index)."""
    return "arm64" if host_architecture() != "arm64" else "amd64"


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(document) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# --- layers ---------------------------------------------------------------------


@dataclass
class Member:
    """One tar member, described by hand (for layers no file system could produce)."""

    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    devmajor: int = 0
    devminor: int = 0

    def tarinfo(self) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self.name)
        info.type = self.type
        info.mode = self.mode
        info.uid, info.gid = self.uid, self.gid
        info.uname = info.gname = "root" if self.uid == 0 else ""
        info.mtime = self.mtime
        info.linkname = self.linkname
        info.devmajor, info.devminor = self.devmajor, self.devminor
        info.size = len(self.data) if self.type in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
        return info


def file(name, data=b"", mode=0o644, **kw) -> Member:
    return Member(name, tarfile.REGTYPE, data if isinstance(data, bytes) else data.encode(), mode, **kw)


def directory(name, mode=0o755, **kw) -> Member:
    return Member(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name, target) -> Member:
    return Member(name, tarfile.SYMTYPE, mode=0o777, linkname=target)


def hardlink(name, target) -> Member:
    return Member(name, tarfile.LNKTYPE, linkname=target)


def chardev(name, major, minor, mode=0o666) -> Member:
    return Member(name, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor)


def fifo(name, mode=0o644) -> Member:
    return Member(name, tarfile.FIFOTYPE, mode=mode)


def tar_members(members) -> bytes:
    """A PAX tar of MEMBERS, in the order given."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = member.tarinfo()
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    return out.getvalue()


def tar_directory(root, extra=()) -> bytes:
    """A reproducible PAX tar of the directory ROOT (then EXTRA members), owned by root, mtime 0."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for current, dirs, files in os.walk(root):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(current, name)
                info = tar.gettarinfo(path, os.path.relpath(path, root))
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mtime = 0
                if info.isreg():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                else:
                    tar.addfile(info)
        for member in extra:
            info = member.tarinfo()
            tar.addfile(info, io.BytesIO(member.data) if info.size else None)
    return out.getvalue()


@dataclass
class Layer:
    raw: bytes  # the uncompressed tar: its sha256 is the diff_id
    compress: bool = True

    @property
    def diff_id(self) -> str:
        return sha256(self.raw)

    @property
    def blob(self) -> bytes:
        if not hasattr(self, "_blob"):
            self._blob = gzip.compress(self.raw, compresslevel=6, mtime=0) if self.compress else self.raw
        return self._blob

    @property
    def digest(self) -> str:
        return sha256(self.blob)


# --- images and indexes ------------------------------------------------------------


@dataclass
class Image:
    """One platform's image: a manifest, its config and layers, ready to push."""

    layers: list
    config: dict = field(default_factory=dict)  # the run config: Env, WorkingDir, Cmd, ...
    docker: bool = False  # Docker schema 2 media types instead of OCI
    architecture: str = field(default_factory=host_architecture)
    variant: str | None = None

    def config_blob(self) -> bytes:
        document = {
            "architecture": self.architecture,
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": [{"created_by": "workshop.images"} for _ in self.layers],
        }
        if self.variant:
            document["variant"] = self.variant
        return canonical_json(document)

    @property
    def media_type(self) -> str:
        return DOCKER_MANIFEST if self.docker else OCI_MANIFEST

    def manifest(self) -> bytes:
        config = self.config_blob()
        layers = []
        for layer in self.layers:
            kind = DOCKER_LAYER_GZIP if self.docker else (OCI_LAYER_GZIP if layer.compress else OCI_LAYER_TAR)
            layers.append({"mediaType": kind, "digest": layer.digest, "size": len(layer.blob)})
        return canonical_json({
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": {"mediaType": DOCKER_CONFIG if self.docker else OCI_CONFIG,
                       "digest": sha256(config), "size": len(config)},
            "layers": layers,
        })

    @property
    def digest(self) -> str:
        return sha256(self.manifest())

    @property
    def config_digest(self) -> str:
        return sha256(self.config_blob())

    def blobs(self) -> list[bytes]:
        return [self.config_blob()] + [layer.blob for layer in self.layers]

    def platform(self) -> dict:
        platform = {"architecture": self.architecture, "os": "linux"}
        if self.variant:
            platform["variant"] = self.variant
        return platform


@dataclass
class Index:
    """A multi-platform image: an OCI index or a Docker manifest list."""

    images: list
    docker: bool = False

    @property
    def media_type(self) -> str:
        return DOCKER_LIST if self.docker else OCI_INDEX

    def manifest(self) -> bytes:
        return canonical_json({
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [
                {"mediaType": image.media_type, "digest": image.digest,
                 "size": len(image.manifest()), "platform": image.platform()}
                for image in self.images
            ],
        })

    @property
    def digest(self) -> str:
        return sha256(self.manifest())


# --- pushing -------------------------------------------------------------------


class PushError(Exception):
    pass


class Pusher:
    """Pushes blobs and manifests to REGISTRY (host:port, plain HTTP, or HTTPS not verified: our own)."""

    def __init__(self, registry: str, token: str = "workshop", scheme: str = "http"):
        import requests  # only pushing needs it

        self.base = f"{scheme}://{registry}/v2"
        self.session = requests.Session()
        self.session.verify = False  # a registry we started ourselves, maybe with a certificate for another name
        self.session.trust_env = False  # loopback: no proxy, and REQUESTS_CA_BUNDLE must not undo verify=False
        # Registries with `auth: silly` (the tests') accept any token; others ignore the header.
        self.session.headers["Authorization"] = f"Bearer {token}"

    def _check(self, response, what):
        if response.status_code >= 300:
            raise PushError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
        return response

    def push_blob(self, repository: str, data: bytes) -> str:
        digest = sha256(data)
        if self.session.head(f"{self.base}/{repository}/blobs/{digest}").status_code == 200:
            return digest
        started = self._check(self.session.post(f"{self.base}/{repository}/blobs/uploads/"),
                              f"start upload to {repository}")
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self.base[: -len("/v2")] + location
        separator = "&" if "?" in location else "?"
        self._check(self.session.put(f"{location}{separator}digest={digest}", data=data,
                                     headers={"Content-Type": "application/octet-stream"}),
                    f"upload {digest} to {repository}")
        return digest

    def push_manifest(self, repository: str, tag: str, body: bytes, media_type: str) -> str:
        self._check(self.session.put(f"{self.base}/{repository}/manifests/{tag}", data=body,
                                     headers={"Content-Type": media_type}),
                    f"push manifest {repository}:{tag}")
        return sha256(body)

    def push_image(self, repository: str, tag: str | None, image: Image) -> str:
        for blob in image.blobs():
            self.push_blob(repository, blob)
        return self.push_manifest(repository, tag or image.digest, image.manifest(), image.media_type)

    def push_index(self, repository: str, tag: str, index: Index) -> str:
        for image in index.images:
            self.push_image(repository, None, image)  # by digest: the index names them so
        return self.push_manifest(repository, tag, index.manifest(), index.media_type)

    def push(self, repository: str, tag: str, thing) -> str:
        if isinstance(thing, Index):
            return self.push_index(repository, tag, thing)
        return self.push_image(repository, tag, thing)


# --- the workshop's images ---------------------------------------------------------

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def busybox_layer(rootfs: str | None = None) -> Layer:
    """The busybox root filesystem as one gzip layer (built in a temporary directory if not given)."""
    if rootfs is None:
        from workshop.rootfs import build_rootfs

        with tempfile.TemporaryDirectory(prefix="workshop-rootfs-") as temp:
            return Layer(tar_directory(build_rootfs(os.path.join(temp, "rootfs"))))
    return Layer(tar_directory(rootfs))


def busybox_image(base: Layer, **kw) -> Image:
    return Image([base], {"Env": [PATH], "Cmd": ["/bin/sh"]}, **kw)


def layered_image(base: Layer) -> Image:
    """Three layers: files, then whiteouts and an opaque directory, then every kind of member."""
    first = Layer(tar_members([
        directory("etc"), file("etc/motd", "hello from layer 1\n"),
        file("etc/issue", "version 1\n"),
        directory("root", 0o700), file("root/old", "old\n"), directory("root/olddir"),
        file("root/olddir/deep", "deep\n"),
        directory("opt"), directory("opt/keep"), file("opt/keep/file", "kept\n"),
    ]))
    second = Layer(tar_members([
        file("etc/.wh.motd"),  # deletes etc/motd
        file("etc/added", "added by layer 2\n"),
        file("etc/issue", "version 2\n"),  # replaces layer 1's
        directory("root", 0o700),
        file("root/.wh..wh..opq"),  # hides all of root/ below this layer
        file("root/new", "new in layer 2\n"),
    ]))
    third = Layer(tar_members([  # a plain (uncompressed) tar layer
        directory("opt/special", 0o2775),
        file("opt/special/setuid", "#!/bin/sh\necho setuid\n", 0o4755),
        file("opt/special/owned", "owned by 1000:1000\n", 0o640, uid=1000, gid=1000),
        file("opt/special/old-mtime", "mtime\n", mtime=1234567890),
        file("opt/special/target", "linked\n"),
        hardlink("opt/special/hardlink", "opt/special/target"),
        symlink("opt/special/absolute", "/etc/added"),
        symlink("opt/special/relative", "../keep/file"),
        chardev("opt/special/null", 1, 3),
        fifo("opt/special/fifo"),
    ]), compress=False)
    return Image([base, first, second, third], {"Env": [PATH], "Cmd": ["/bin/sh"]})


def marker_layer(text: str) -> Layer:
    return Layer(tar_members([file("PLATFORM", text + "\n")]))


def multi_platform(base: Layer, docker=False) -> Index:
    """An index whose first entry is another architecture (a placeholder), then this machine's."""
    other = Image([marker_layer("wrong platform")], {"Cmd": ["/bin/false"]}, docker=docker,
                  architecture=other_architecture(),
                  variant="v8" if other_architecture() == "arm64" else None)
    ours = Image([base, marker_layer(f"linux/{host_architecture()}")],
                 {"Env": [PATH], "Cmd": ["/bin/sh"]}, docker=docker)
    return Index([other, ours], docker=docker)


def config_image(base: Layer) -> Image:
    """A run config that uses everything: Env, WorkingDir (missing from the rootfs), Entrypoint, Cmd."""
    return Image([base], {
        "Env": [PATH, "GREETING=hello", "WHO=image"],
        "WorkingDir": "/srv/app",
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo $GREETING from $(pwd)"],
    })


def user_image(base: Layer) -> Image:
    return Image([base], {"Env": [PATH], "User": "nobody", "Cmd": ["id"]})


def workshop_images(base: Layer) -> dict[str, object]:
    """repository:tag -> Image or Index: the images the tests of steps 7 and 8 pull."""
    return {
        "workshop/busybox:latest": busybox_image(base),
        "workshop/layers:latest": layered_image(base),
        "workshop/multi:latest": multi_platform(base),
        "workshop/docker:latest": busybox_image(base, docker=True),
        "workshop/docker:list": multi_platform(base, docker=True),
        "workshop/config:latest": config_image(base),
        "workshop/user:latest": user_image(base),
    }


def hostile_images(outside: str) -> dict[str, Image]:
    """Layers that try to write OUTSIDE (an absolute directory): each pull must fail, or be harmless.

    OUTSIDE/target and OUTSIDE/victim should exist beforehand, so that a
    successful attack would show as a changed or hard-linked file.
    """
    outside = outside.rstrip("/")
    up = "../" * 40  # from anywhere up to /
    cases = {
        "dotdot": [file(f"{up}{outside.lstrip('/')}/dotdot", "escaped\n")],
        "absolute": [file(f"{outside}/absolute", "escaped\n")],
        "symlink-dir": [symlink("escape", outside), file("escape/through-symlink", "escaped\n")],
        "symlink-relative": [symlink("up", up.rstrip("/")),
                             file(f"up/{outside.lstrip('/')}/through-relative-symlink", "escaped\n")],
        "hardlink": [hardlink("stolen", f"{outside}/target")],
        "hardlink-dotdot": [hardlink("stolen", f"{up}{outside.lstrip('/')}/target")],
        "whiteout-dotdot": [file(f"{up}{outside.lstrip('/')}/.wh.target")],
        # whiteouts of '.' and '..': unguarded, they delete their own directory or the one above
        "whiteout-of-dot": [directory("keep"), file("keep/file", "kept\n"), file("keep/.wh..")],
        "whiteout-of-dotdot": [directory("keep"), file("keep/file", "kept\n"), file("keep/.wh...")],
    }
    images = {f"workshop/evil:{name}": Image([Layer(tar_members(members))], {"Cmd": ["/bin/sh"]})
              for name, members in cases.items()}
    # Not an attack when done right: the file replaces the symlink, the symlink's target is untouched.
    images["workshop/evil:replace-symlink"] = Image([Layer(tar_members([
        symlink("victim", f"{outside}/victim"), file("victim", "replaced inside the layer\n")]))])
    return images


def push_all(registry: str, images: dict, token: str = "workshop", scheme: str = "http") -> dict[str, str]:
    """Push {repository:tag: image}; return {repository:tag: manifest digest}."""
    if scheme == "https":
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    pusher = Pusher(registry, token, scheme)
    digests = {}
    for name, image in images.items():
        repository, _, tag = name.rpartition(":")
        digests[name] = pusher.push(repository, tag, image)
    return digests


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m workshop.images", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    seed = commands.add_parser("seed", help="push workshop/busybox:latest (and the other workshop images)")
    seed.add_argument("--registry", default="127.0.0.1:5000", help="host:port of a plain-HTTP registry")
    seed.add_argument("--rootfs", help="a busybox rootfs to use (default: build one)")
    seed.add_argument("--all", action="store_true", help="push every test image, not only workshop/busybox")
    args = parser.parse_args(argv)
    try:
        base = busybox_layer(args.rootfs)
        images = workshop_images(base)
        if not args.all:
            images = {"workshop/busybox:latest": images["workshop/busybox:latest"]}
        # Docker Hub's name too, for UDOCKER_REGISTRY_MIRRORS=http://<this registry>: `udocker pull busybox`
        images["library/busybox:latest"] = images["workshop/busybox:latest"]
        for name, digest in push_all(args.registry, images).items():
            print(f"pushed {args.registry}/{name} ({digest})")
    except Exception as error:  # one line, whatever went wrong
        print(f"workshop.images: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
