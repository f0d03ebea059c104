"""Step 7: when the registry or the network fails, pull says why in one line, exits 125, stores nothing.

A proxy between udocker and the registry injects the faults (imagesupport.Fault).
"""
import time

from imagesupport import Fault, expect_failure

IMAGE = "workshop/busybox:latest"
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="{realm}",service="workshop-registry",'
                                 'scope="repository:workshop/busybox:pull"'}


def _nothing_stored(result, cli):
    result.check(cli.store.records() == {} and cli.store.layers() == set() and cli.store.leftovers() == [],
                 "no record, no layer, nothing in tmp/", cli.store.summary())


def _asked(result, cli, path_part):
    seen = [p for _, p in cli.registry.proxy.requests()]
    result.check(any(path_part in p for p in seen), f"a request for {path_part!r} at the registry", repr(seen))


def test_unknown_repository_is_not_found(cli):
    result = expect_failure(cli.pull("workshop/no-such-image:latest"), "not found")
    _asked(result, cli, "/v2/workshop/no-such-image/manifests/latest")


def test_unknown_tag_is_not_found(cli):
    expect_failure(cli.pull("workshop/busybox:no-such-tag"), "not found", "no-such-tag")


def test_404_on_a_blob_is_explained(cli):
    cli.registry.proxy.inject(Fault("/blobs/", "status", status=404))
    result = expect_failure(cli.pull(IMAGE), "not found")
    _nothing_stored(result, cli)


def test_401_without_challenge_is_refused(cli):
    cli.registry.proxy.inject(Fault("/manifests/", "status", status=401, body=b'{"errors":[]}'))
    result = expect_failure(cli.pull(IMAGE), "401")
    _asked(result, cli, "/manifests/latest")
    _nothing_stored(result, cli)


def test_401_after_the_token_is_access_refused(cli):
    challenge = {k: v.format(realm=cli.registry.token_url) for k, v in CHALLENGE.items()}
    challenge["WWW-Authenticate"] += ',error="insufficient_scope"'
    cli.registry.proxy.inject(Fault("/manifests/", "status", status=401, headers=challenge))
    result = expect_failure(cli.pull(IMAGE), "refused", "insufficient_scope")
    manifests = cli.registry.proxy.requests("GET", "/manifests/")
    result.check(len(manifests) == 2 and len(cli.registry.token_log) == 1,
                 "the manifest asked for twice: without a token, then with one (refused too)",
                 f"{len(manifests)} requests, {len(cli.registry.token_log)} token(s)")


def test_token_is_fetched_again_after_a_401(cli):
    challenge = {k: v.format(realm=cli.registry.token_url) for k, v in CHALLENGE.items()}
    # the first blob request, already sent with a token, is refused once: as if the token expired
    cli.registry.proxy.inject(Fault("/blobs/", "status", status=401, headers=challenge, times=1))
    result = cli.pull(IMAGE).expect_exit(0)
    result.check(len(cli.registry.token_log) == 2, "2 token requests (the second after the 401)",
                 repr(cli.registry.token_log))


def test_429_shows_the_rate_limit_and_advice(cli):
    headers = {"ratelimit-limit": "100;w=21600", "ratelimit-remaining": "0;w=21600", "Retry-After": "3600"}
    body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}'
    cli.registry.proxy.inject(Fault("/manifests/", "status", status=429, headers=headers, body=body))
    result = expect_failure(cli.pull(IMAGE), "too many requests", "0;w=21600", "100;w=21600")
    _nothing_stored(result, cli)


def test_500_is_retried(cli):
    cli.registry.proxy.inject(Fault("/blobs/", "status", status=500, times=1))
    result = cli.pull(IMAGE).expect_exit(0)
    blobs = cli.registry.proxy.requests("GET", "/blobs/")
    result.check(len(blobs) == 3, "3 blob requests: config, layer refused with 500, layer again",
                 repr(blobs))


def test_503_that_does_not_end_fails_after_retries(cli):
    cli.registry.proxy.inject(Fault("/manifests/", "status", status=503, method=None))
    started = time.monotonic()
    result = expect_failure(cli.pull(IMAGE), "503")
    tries = len(cli.registry.proxy.requests(containing="/manifests/"))
    result.check(3 <= tries <= 6, "a few attempts", f"{tries}")
    result.check(time.monotonic() - started < 8, "giving up within 8 s", f"{time.monotonic() - started:.1f} s")


def test_stalled_registry_times_out(cli):
    cli.registry.proxy.inject(Fault("/blobs/", "stall", seconds=20))
    started = time.monotonic()
    result = expect_failure(cli.pull(IMAGE, timeout=15, env={"UDOCKER_HTTP_TIMEOUT": "1"}), "UDOCKER_HTTP_TIMEOUT")
    took = time.monotonic() - started
    result.check(took < 8, "giving up soon after UDOCKER_HTTP_TIMEOUT=1 s", f"{took:.1f} s")
    _nothing_stored(result, cli)


def test_corrupted_layer_fails_and_stores_nothing(cli):
    layer = cli.registry.base.digest
    cli.registry.proxy.inject(Fault(f"/blobs/{layer}", "corrupt"))
    result = expect_failure(cli.pull(IMAGE), "digest")
    _nothing_stored(result, cli)


def test_corrupted_config_fails_and_stores_nothing(cli):
    config = cli.registry.images[IMAGE].config_digest
    cli.registry.proxy.inject(Fault(f"/blobs/{config}", "corrupt"))
    result = expect_failure(cli.pull(IMAGE), "digest")
    result.check(config not in cli.store.blobs(), "the corrupted config not stored", cli.store.summary())
    _nothing_stored(result, cli)


def test_corrupted_manifest_by_tag_fails(cli):
    cli.registry.proxy.inject(Fault("/manifests/latest", "corrupt"))
    result = expect_failure(cli.pull(IMAGE), "digest")
    _nothing_stored(result, cli)


def test_corrupted_platform_manifest_fails(cli):
    ours = cli.registry.images["workshop/multi:latest"].images[1]
    cli.registry.proxy.inject(Fault(f"/manifests/{ours.digest}", "corrupt"))
    result = expect_failure(cli.pull("workshop/multi:latest"), "digest")
    result.check(ours.digest not in cli.store.blobs(), "the corrupted manifest not stored", cli.store.summary())


def test_truncated_layer_fails_and_the_next_pull_finishes(cli):
    layer = cli.registry.base.digest
    cli.registry.proxy.inject(Fault(f"/blobs/{layer}", "truncate", times=1))
    result = cli.pull(IMAGE).expect_exit(125)
    _nothing_stored(result, cli)
    cli.pulled(IMAGE)


def test_diff_id_that_does_not_match_the_layer_fails(cli):
    result = expect_failure(cli.pull("workshop/bad-diffid:latest"), "diff_id")
    _nothing_stored(result, cli)
