"""Step 7: registry mirrors, with Docker's semantics (offline: everything on loopback).

The test registry plays Docker Hub (UDOCKER_DOCKER_HUB, a test-only setting);
a docker-registry in proxy mode in front of it is the classroom's pull-through
cache (imagesupport.Mirror). Only Docker Hub references go to the mirror; on
its failure the pull falls back to Docker Hub itself, saying so; digests are
checked, so a mirror cannot change what is stored.
"""
import json

import pytest

from imagesupport import Fault, expect_failure, mirror  # noqa: F401 (the mirror fixture)

HUB_IMAGE = "busybox"  # docker.io/library/busybox:latest
RECORD = "docker.io/library/busybox:latest"


def _pull(cli, store_root=None, **env):
    """udocker pull busybox with ENV, into the test's store (or STORE_ROOT)."""
    extra = {"UDOCKER_ROOT": str(store_root)} if store_root else {}
    return cli("pull", HUB_IMAGE, env={**env, **extra})


def _same_image(result, a, b):
    keys = ("digest", "manifest", "config")
    result.check(all(a[k] == b[k] for k in keys) and a["layers"] == b["layers"],
                 f"the same digests and layers as a direct pull {[b[k] for k in keys]}",
                 repr([a[k] for k in keys]))


def _requests(proxy, *kinds):
    return [(m, p) for m, p in proxy.requests() if any(kind in p for kind in kinds)]


def test_a_pull_through_the_mirror_stores_what_a_direct_pull_stores(cli, mirror, tmp_path):
    result = _pull(cli, **mirror.env()).expect_exit(0)
    result.check(f"from mirror {mirror.url}" in result.stderr, f"'from mirror {mirror.url}' on stderr",
                 repr(result.stderr))
    result.check(_requests(mirror.proxy, "/manifests/"), "the manifest asked of the mirror",
                 repr(mirror.proxy.log))
    through_mirror = cli.store.record(RECORD)
    direct = _pull(cli, tmp_path / "direct", UDOCKER_DOCKER_HUB=mirror.upstream.address).expect_exit(0)
    from imagesupport import StoreView

    _same_image(direct, through_mirror or {}, StoreView(tmp_path / "direct").record(RECORD))


def test_a_second_client_is_served_from_the_cache(cli, mirror, tmp_path):
    _pull(cli, **mirror.env()).expect_exit(0)
    cli.registry.proxy.log.clear()  # what reaches "Docker Hub" from now on
    result = _pull(cli, tmp_path / "second-client", **mirror.env()).expect_exit(0)
    gets = [(m, p) for m, p in _requests(cli.registry.proxy, "/blobs/", "/manifests/") if m == "GET"]
    heads = [(m, p) for m, p in _requests(cli.registry.proxy, "/manifests/") if m == "HEAD"]
    result.check(gets == [] and len(heads) <= 1,
                 "no GET of a blob or manifest upstream, at most the proxy's HEAD of the tag",
                 repr(cli.registry.proxy.log))


def test_the_cache_still_serves_when_docker_hub_is_down(cli, mirror, tmp_path):
    _pull(cli, **mirror.env()).expect_exit(0)
    mirror.upstream.close()
    result = _pull(cli, tmp_path / "second-client", **mirror.env()).expect_exit(0)
    result.check("failed" not in result.stderr, "no fallback: the mirror served it", repr(result.stderr))


def test_a_mirror_that_is_down_falls_back_to_docker_hub(cli, mirror):
    mirror.front.close()
    result = _pull(cli, **mirror.env()).expect_exit(0)
    notes = [line for line in result.stderr.splitlines() if mirror.url in line and "failed" in line]
    result.check(len(notes) == 1 and mirror.upstream.address in notes[0],
                 f"one line saying that {mirror.url} failed and that {mirror.upstream.address} is tried",
                 repr(result.stderr))
    result.check(RECORD in cli.store.records(), f"the record {RECORD}", cli.store.summary())


@pytest.mark.parametrize("status, words", [(404, "not found"), (503, "HTTP 503")])
def test_an_error_answer_of_the_mirror_falls_back_to_docker_hub(cli, mirror, status, words):
    mirror.proxy.inject(Fault("/manifests/", "status", status=status, method=None))
    result = _pull(cli, **mirror.env()).expect_exit(0)
    result.check(f"{mirror.url} failed" in result.stderr and words in result.stderr,
                 f"a line saying the mirror failed ({words})", repr(result.stderr))
    result.check(RECORD in cli.store.records(), f"the record {RECORD}", cli.store.summary())


def test_mirror_and_docker_hub_down_is_one_clear_error(cli, mirror):
    mirror.front.close()
    mirror.upstream.close()
    result = expect_failure(_pull(cli, **mirror.env()), mirror.url, mirror.upstream.address, "cannot reach")
    result.check(cli.store.records() == {} and cli.store.layers() == set(), "nothing stored", cli.store.summary())


def test_other_registries_never_go_to_the_mirror(cli, mirror):
    cli("pull", cli.ref("workshop/busybox:latest"), env=mirror.env()).expect_exit(0)
    cli.last.check(mirror.proxy.log == [], "no request to the mirror", repr(mirror.proxy.log))


def test_a_corrupted_blob_from_the_mirror_is_refused_then_docker_hub_serves_it(cli, mirror):
    layer = cli.registry.base.digest
    mirror.proxy.inject(Fault(f"/blobs/{layer}", "corrupt"))
    result = _pull(cli, **mirror.env()).expect_exit(0)
    notes = [line for line in result.stderr.splitlines() if f"{mirror.url} failed" in line]
    result.check(len(notes) == 1 and "digest" in notes[0], "one line: the mirror's layer did not match its digest",
                 repr(result.stderr))
    record = cli.store.record(RECORD) or {}
    result.check([layer["digest"] for layer in record.get("layers", [])] == [layer],
                 f"the layer {layer[:19]} from Docker Hub", cli.store.summary())


def test_a_corrupted_blob_from_the_mirror_stores_nothing(cli, mirror, tmp_path):
    _pull(cli, tmp_path / "first-client", **mirror.env()).expect_exit(0)  # now in the cache
    mirror.proxy.inject(Fault(f"/blobs/{cli.registry.base.digest}", "corrupt"))
    mirror.upstream.close()  # no fallback to save the pull
    result = expect_failure(_pull(cli, **mirror.env()), "digest")
    result.check(cli.store.records() == {} and cli.store.layers() == set() and cli.store.leftovers() == [],
                 "no record, no layer, nothing in tmp/", cli.store.summary())


def test_mirrors_from_the_config_file(cli, mirror, tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"registry-mirrors": [mirror.url]}))
    env = mirror.env(UDOCKER_CONFIG=str(config), UDOCKER_REGISTRY_MIRRORS="")  # empty: not set
    result = cli("pull", HUB_IMAGE, env=env).expect_exit(0)
    result.check(_requests(mirror.proxy, "/manifests/"), "the manifest asked of the mirror named in the file",
                 repr(mirror.proxy.log))


def test_a_plain_http_mirror_that_is_not_loopback_is_skipped(cli, mirror):
    # 192.0.2.1 is TEST-NET-1: never contacted, the setting is refused before any connection
    env = mirror.env(UDOCKER_REGISTRY_MIRRORS="http://192.0.2.1:5000")
    result = cli("pull", HUB_IMAGE, env=env).expect_exit(0)
    result.check("UDOCKER_INSECURE_REGISTRIES" in result.stderr, "a note naming UDOCKER_INSECURE_REGISTRIES",
                 repr(result.stderr))
    result.check(RECORD in cli.store.records(), f"the record {RECORD} (from Docker Hub)", cli.store.summary())
