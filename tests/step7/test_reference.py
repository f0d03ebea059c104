"""Step 7: image references are read the way `docker pull` reads them.

Docker Hub names are tested offline: UDOCKER_DOCKER_HUB (a test-only
setting) makes the test registry, which holds library/busybox, answer for
docker.io, and the proxy's log shows which repository and tag were asked for.
"""
import pytest

from imagesupport import expect_failure

MALFORMED = [
    "Busybox",  # repository names are lowercase
    "busybox:",  # empty tag
    "busybox:bad/tag",  # '/' after the tag's ':'
    "busybox@sha256:1234",  # a digest has 64 hex digits
    "busybox-",  # components end with a letter or digit
    "127.0.0.1:99999/workshop/busybox",  # a port is 1 to 65535
    "localhost:0/busybox",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_reference_exits_125(cli, text):
    expect_failure(cli("pull", text), "invalid reference format")


def _mirrored(cli, name):
    """Pull NAME with the test registry playing Docker Hub; return the manifest paths asked for."""
    result = cli("pull", name, env={"UDOCKER_DOCKER_HUB": cli.registry.host}).expect_exit(0)
    return result, [p for _, p in cli.registry.proxy.requests(containing="/manifests/")]


@pytest.mark.parametrize("name", ["busybox", "library/busybox", "docker.io/library/busybox:latest",
                                  "index.docker.io/library/busybox"])
def test_docker_hub_names_mean_library_busybox_latest(cli, name):
    result, paths = _mirrored(cli, name)
    result.check(paths and all(p == "/v2/library/busybox/manifests/latest" for p in paths),
                 "GET /v2/library/busybox/manifests/latest", repr(paths))
    result.check("docker.io/library/busybox:latest" in cli.store.records(),
                 "the record docker.io/library/busybox:latest", cli.store.summary())


def test_tag_is_kept(cli):
    result, paths = _mirrored(cli, "busybox:1.36")
    result.check(paths and all(p == "/v2/library/busybox/manifests/1.36" for p in paths),
                 "GET /v2/library/busybox/manifests/1.36", repr(paths))


def test_images_shows_docker_hub_names_short(cli):
    _mirrored(cli, "busybox")
    listing = cli("images").expect_exit(0)
    rows = [line.split()[0] for line in listing.stdout_lines()[1:]]
    listing.check(rows == ["busybox:latest"], "one row 'busybox:latest'", repr(rows))


def test_host_port_namespace_name_tag(cli):
    record = cli.pulled("workshop/busybox:latest")
    expected = cli.registry.digests["workshop/busybox:latest"]
    cli.last.check(record["digest"] == expected, f"digest {expected}", record["digest"])


def test_name_at_digest_pulls_that_manifest(cli):
    digest = cli.registry.digests["workshop/busybox:latest"]
    reference = cli.ref(f"workshop/busybox@{digest}")
    result = cli("pull", reference).expect_exit(0)
    paths = [p for _, p in cli.registry.proxy.requests(containing="/manifests/")]
    result.check(paths and all(p.endswith(f"/manifests/{digest}") for p in paths),
                 f"the manifest asked for by digest {digest}", repr(paths))
    result.check(reference in cli.store.records(), f"a record for {reference}", cli.store.summary())


def test_localhost_registry_is_plain_http(cli):
    reference = f"localhost:{cli.registry.proxy.port}/workshop/busybox:latest"
    result = cli("pull", reference).expect_exit(0)
    result.check(reference in cli.store.records(), f"a record for {reference}", cli.store.summary())
