"""`udocker pull`: the story of a pull, from a reference to a stored image.

    0. Resolve: what do we have? One HEAD says whether the tag still names the
       stored digest; if so, the pull is done without downloading anything.
    1. The manifest: GET it by tag (or digest), verify it, keep it.
    2. The platform: an index (a multi-platform image) names one manifest per
       platform; choose ours and GET that one, by digest.
    3. The config: GET it by digest; it lists the layers' diff_ids and says how
       to run the image (Env, WorkingDir, Entrypoint, Cmd, User).
    4. The layers: each one the store lacks is streamed, verified and unpacked
       (download.py, layers.py).
    5. Store the image record: the reference now resolves locally.

pull() tells that story against one registry. pull_image() is what `udocker
pull` calls: it tries the registries that may serve the image (mirrors.py:
Docker Hub's mirrors first) until one does.
"""
from udocker.errors import UdockerError
from udocker.image.digest import DigestMismatch, verify_bytes
from udocker.image.download import fetch_layers
from udocker.image.manifest import (
    DOCKER_SCHEMA1, INDEX_TYPES, MANIFEST_TYPES, choose_platform, host_platform, parse_json)
from udocker.image.mirrors import endpoints
from udocker.image.progress import human
from udocker.image.registry import ATTEMPTS, PullError, Registry, read_small
from udocker.image.store import new_record

MAX_CONFIG = 16 << 20
# What makes pull_image try the next registry: it could not serve, or served something wrong.
FALLBACK_ERRORS = (PullError, DigestMismatch)


def up_to_date(registry, reference, store):
    """The stored record when the registry still maps REFERENCE to the same digest, else None."""
    record = store.load_image(reference)
    if record is None:
        return None
    if reference.digest:
        return record  # a digest names one content forever
    return record if registry.manifest_digest(reference.tag) == record["digest"] else None


def fetch_manifest(registry, manifest_ref, store, what):
    """GET a manifest or index by tag or digest, verified and kept in STORE -> (body, media type, digest).

    By digest, one that STORE has already is not downloaded again.
    """
    if manifest_ref.startswith("sha256:") and store.has_blob(manifest_ref):
        body = store.read_blob(manifest_ref)
        return body, parse_json(body, what).get("mediaType"), manifest_ref
    body, kind, digest = registry.manifest(manifest_ref, what)
    store.write_blob(digest, body)
    return body, kind, digest


def check_manifest(body, kind, what):
    """The manifest as a dict, when it is one udocker reads (not an index, not schema 1)."""
    if kind in DOCKER_SCHEMA1:
        raise UdockerError(f"{what} has a Docker schema 1 manifest, which is obsolete and unsupported")
    manifest = parse_json(body, what)
    if kind not in MANIFEST_TYPES and "layers" not in manifest:
        raise UdockerError(f"{what}: unexpected manifest type {kind!r}")
    return manifest


def fetch_config(registry, manifest, store, what):
    """The image config the manifest names, verified and kept -> (config dict, its digest, diff_ids)."""
    descriptor = manifest["config"]
    digest = descriptor["digest"]
    if store.has_blob(digest):
        body = store.read_blob(digest)
    else:
        blob = registry.blob(descriptor, f"config of {what}")
        body = read_small(blob, MAX_CONFIG, f"config of {what}")
        verify_bytes(body, digest, f"config of {what}")
        store.write_blob(digest, body)
    config = parse_json(body, f"config of {what}")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(diff_ids) != len(manifest.get("layers") or []):
        raise UdockerError(f"{what}: the manifest has {len(manifest.get('layers') or [])} layers "
                           f"but the config lists {len(diff_ids)} diff_ids")
    return config, digest, diff_ids


def pull(registry, reference, store, progress):
    """Pull REFERENCE from REGISTRY into STORE (the story above); return its image record."""
    what = f"image {reference.familiar()}"
    record = up_to_date(registry, reference, store)
    if record:
        progress.say(f"Image is up to date for {reference.familiar()} ({record['digest']})")
        return record
    body, kind, digest = fetch_manifest(registry, reference.manifest_ref, store, what)
    repo_digest, blobs = digest, [digest]  # the digest the reference resolved to
    if kind in INDEX_TYPES:
        chosen = choose_platform(parse_json(body, what), host_platform(), what)
        body, kind, digest = fetch_manifest(registry, chosen["digest"], store, what)
        blobs.append(digest)
    manifest = check_manifest(body, kind, what)
    config, config_digest, diff_ids = fetch_config(registry, manifest, store, what)
    layers = fetch_layers(registry, manifest["layers"], diff_ids, store, progress)
    record = new_record(reference, repo_digest, digest, config_digest, layers, blobs + [config_digest])
    store.save_image(record)
    progress.say(f"Digest: {repo_digest}")
    progress.say(f"Downloaded {reference.familiar()} ({human(record['size'])})")
    return record


def pull_image(reference, store, progress):
    """`udocker pull`: REFERENCE from the first of its registries that serves it; its record.

    A registry that fails (unreachable, an error answer, content that does not
    match its digest) is reported in one line, and the next one is tried.
    """
    notes = []
    candidates = endpoints(reference, notes)
    for note in notes:
        progress.say(note)
    store.clean_stale()
    failures = []
    for number, endpoint in enumerate(candidates):
        progress.say(f"Pulling {reference.familiar()} from {endpoint}")
        # A mirror is asked once: trying the next registry is its retry.
        registry = Registry(endpoint.url, reference.repository, attempts=1 if endpoint.mirror else ATTEMPTS)
        try:
            with store.locked():  # rmi's clean-up waits: what is unpacked is not recorded yet
                return pull(registry, reference, store, progress)
        except FALLBACK_ERRORS as error:
            if number + 1 == len(candidates):
                if not failures:
                    raise
                raise type(error)("; ".join(failures + [f"{endpoint}: {error}"])) from None
            failures.append(f"{endpoint}: {error}")
            progress.say(f"{endpoint} failed ({error}); trying {candidates[number + 1]}")
