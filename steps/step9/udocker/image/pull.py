"""`udocker pull`: the story of a pull, from a reference to a stored image.

    1. GET the manifest by tag (or digest). An index (multi-platform image)
       names one manifest per platform: GET ours, by digest.
    2. GET the config by digest: it lists the layers' diff_ids and says how
       to run the image (Env, WorkingDir, Entrypoint, Cmd, User).
    3. Each layer not stored yet: stream, verify, unpack (layers.py).
    4. Write the image record: the reference now resolves locally.

Pulling again what is stored downloads no blob: one HEAD request tells
whether the tag still names the same digest.
"""
from udocker.errors import UdockerError
from udocker.image.digest import verify_bytes
from udocker.image.layers import unpack_layer
from udocker.image.manifest import (
    DOCKER_SCHEMA1, INDEX_TYPES, MANIFEST_TYPES, choose_platform, host_platform, parse_json)
from udocker.image.progress import human
from udocker.image.registry import Registry, read_small
from udocker.image.store import new_record

MAX_CONFIG = 16 << 20


def short(digest):
    return digest[len("sha256:"):][:12]


def up_to_date(registry, reference, store):
    """The stored record when the registry still maps REFERENCE to the same digest, else None."""
    record = store.load_image(reference)
    if record is None:
        return None
    if reference.digest:
        return record  # a digest names one content forever
    return record if registry.manifest_digest(reference.tag) == record["digest"] else None


def fetch_manifest(registry, reference, store, progress):
    """The platform manifest for REFERENCE -> (manifest dict, its digest, repo digest, blob digests)."""
    what = f"image {reference.familiar()}"
    body, kind, digest = registry.manifest(reference.manifest_ref, what)
    repo_digest, blobs = digest, [digest]
    store.write_blob(digest, body)
    if kind in INDEX_TYPES:
        chosen = choose_platform(parse_json(body, what), host_platform(), what)
        what = f"{what} for {'/'.join(chosen['platform'].get(k, '') for k in ('os', 'architecture'))}"
        if store.has_blob(chosen["digest"]):
            body, digest = store.read_blob(chosen["digest"]), chosen["digest"]
            kind = chosen.get("mediaType") or parse_json(body, what).get("mediaType")
        else:
            body, kind, digest = registry.manifest(chosen["digest"], what)
            store.write_blob(digest, body)
        blobs.append(digest)
    if kind in DOCKER_SCHEMA1:
        raise UdockerError(f"{what} has a Docker schema 1 manifest, which is obsolete and unsupported")
    manifest = parse_json(body, what)
    if kind not in MANIFEST_TYPES and "layers" not in manifest:
        raise UdockerError(f"{what}: unexpected manifest type {kind!r}")
    return manifest, digest, repo_digest, blobs


def fetch_config(registry, manifest, store, what):
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


def fetch_layer(registry, descriptor, diff_id, store, progress):
    """Stream, verify and unpack one layer unless it is stored; return its unpacked size."""
    bar = progress.layer(descriptor["digest"], descriptor.get("size"))
    if store.has_layer(diff_id):
        bar.done("already exists")
        return store.layer_info(diff_id)["size"]
    what = f"layer {short(descriptor['digest'])}"
    with store.new_layer(diff_id, descriptor["digest"]) as (root, info):
        blob = registry.blob(descriptor, what)
        try:
            info["size"] = unpack_layer(bar.wrap(blob), root, descriptor, diff_id, what)
        finally:
            blob.close()
    bar.done(f"pull complete ({human(bar.count)})")
    return info["size"]


def pull(reference, store, progress):
    """Make REFERENCE available in STORE; return its image record."""
    store.clean_stale()
    registry = Registry(reference.api_host, reference.repository)
    progress.say(f"Pulling {reference.familiar()} from {reference.api_host}")
    record = up_to_date(registry, reference, store)
    if record:
        progress.say(f"Image is up to date for {reference.familiar()} ({record['digest']})")
        return record
    manifest, manifest_digest, repo_digest, blobs = fetch_manifest(registry, reference, store, progress)
    config, config_digest, diff_ids = fetch_config(registry, manifest, store, reference.familiar())
    layers = []
    for descriptor, diff_id in zip(manifest["layers"], diff_ids, strict=True):
        size = fetch_layer(registry, descriptor, diff_id, store, progress)
        layers.append({"digest": descriptor["digest"], "diff_id": diff_id, "size": size})
    record = new_record(reference, repo_digest, manifest_digest, config_digest, layers,
                        blobs + [config_digest])
    store.save_image(record)
    progress.say(f"Digest: {repo_digest}")
    progress.say(f"Downloaded {reference.familiar()} ({human(record['size'])})")
    return record
