"""Step 7: `udocker pull` stores images: layers unpacked by diff_id, records by reference."""
import os

from imagesupport import expect_failure
from workshop.images import host_architecture


def test_pull_exits_0_and_stores_the_image(shared_pull, image_registry):
    pulled = shared_pull("workshop/busybox:latest")
    image = image_registry.images["workshop/busybox:latest"]
    layer = pulled.store.layer(image.layers[0].diff_id)
    pulled.result.check((layer / "bin" / "busybox").is_file(), f"{layer}/bin/busybox", pulled.store.summary())
    pulled.result.check(pulled.record["config"] == image.config_digest, f"config {image.config_digest}",
                        pulled.record["config"])


def test_pull_prints_nothing_on_stdout(shared_pull):
    shared_pull("workshop/busybox:latest").result.expect_stdout("")


def test_progress_is_one_line_per_layer_when_stderr_is_not_a_terminal(shared_pull, image_registry):
    result = shared_pull("workshop/layers:latest").result
    for layer in image_registry.images["workshop/layers:latest"].layers:
        short = layer.digest.split(":")[1][:12]
        lines = [line for line in result.stderr.splitlines() if short in line]
        result.check(len(lines) == 1, f"one line naming layer {short} on stderr", f"{len(lines)}")


def test_token_flow_asks_for_pull_scope_once(shared_pull):
    pulled = shared_pull("workshop/busybox:latest")
    expected = [{"path": "/token", "service": ["workshop-registry"],
                 "scope": ["repository:workshop/busybox:pull"]}]
    pulled.result.check(pulled.tokens == expected, f"one token request {expected} (the token is reused)",
                        repr(pulled.tokens))


def test_second_pull_downloads_no_blob(cli):
    cli.pulled("workshop/busybox:latest")
    cli.registry.proxy.log.clear()
    result = cli.pull("workshop/busybox:latest").expect_exit(0)
    gets = cli.registry.proxy.requests("GET", "/blobs/")
    result.check(gets == [], "no blob downloaded", repr(gets))


def test_layers_are_shared_between_images(cli):
    cli.pulled("workshop/busybox:latest")
    cli.registry.proxy.log.clear()
    cli.pulled("workshop/config:latest")  # same busybox layer, another config
    base = cli.registry.base.digest
    gets = cli.registry.proxy.requests("GET", base)
    cli.last.check(gets == [], f"no download of the shared layer {base[:19]}", repr(gets))
    cli.last.check(len(cli.store.layers()) == 1, "1 unpacked layer", cli.store.summary())


def test_oci_index_resolves_to_this_machines_platform(shared_pull, image_registry):
    pulled = shared_pull("workshop/multi:latest")
    record, result = pulled.record, pulled.result
    index = image_registry.images["workshop/multi:latest"]
    wrong, ours = index.images
    result.check(record["digest"] == index.digest, f"the index's digest {index.digest}", record["digest"])
    result.check(record["manifest"] == ours.digest, f"the linux/{host_architecture()} manifest", record["manifest"])
    marker = pulled.store.layer(ours.layers[1].diff_id) / "PLATFORM"
    result.check(marker.is_file() and marker.read_text() == f"linux/{host_architecture()}\n",
                 f"{marker} from the linux/{host_architecture()} image", pulled.store.summary())
    fetched = [p for _, p in pulled.requests if wrong.digest in p or wrong.layers[0].digest in p]
    result.check(fetched == [], "nothing of the other platform fetched", repr(fetched))


def test_docker_schema2_manifest(shared_pull, image_registry):
    pulled = shared_pull("workshop/docker:latest")
    image = image_registry.images["workshop/docker:latest"]
    pulled.result.check(pulled.record["manifest"] == image.digest, f"manifest {image.digest}",
                        pulled.record["manifest"])


def test_docker_manifest_list(shared_pull, image_registry):
    pulled = shared_pull("workshop/docker:list")
    ours = image_registry.images["workshop/docker:list"].images[1]
    pulled.result.check(pulled.record["manifest"] == ours.digest, f"the manifest for this machine {ours.digest}",
                        pulled.record["manifest"])


def test_gzip_and_plain_tar_layers(shared_pull, image_registry):
    pulled = shared_pull("workshop/layers:latest")
    record, result = pulled.record, pulled.result
    image = image_registry.images["workshop/layers:latest"]
    result.check([layer.compress for layer in image.layers] == [True, True, True, False],
                 "a test image with gzip layers and a plain tar layer", "another image")
    for layer in image.layers:
        result.check(pulled.store.layer(layer.diff_id).is_dir(), f"layer {layer.diff_id[:19]} unpacked",
                     pulled.store.summary())
    result.check([layer["diff_id"] for layer in record["layers"]] == [layer.diff_id for layer in image.layers],
                 "the record's layers in order, lowest first", repr(record["layers"]))


def test_images_lists_reference_digest_and_size(cli):
    cli.pulled("workshop/busybox:latest")
    result = cli("images").expect_exit(0)
    rows = [line.split() for line in result.stdout_lines()[1:]]
    expected = [cli.ref("workshop/busybox:latest"), cli.registry.digests["workshop/busybox:latest"]]
    result.check(len(rows) == 1 and rows[0][:2] == expected and rows[0][2].endswith("B"),
                 f"one row {expected} + a size", repr(rows))


def test_rmi_removes_the_image_and_its_unshared_layers(cli):
    cli.pulled("workshop/busybox:latest")
    cli.pulled("workshop/multi:latest")
    result = cli("rmi", cli.ref("workshop/multi:latest")).expect_exit(0)
    base = cli.registry.base.diff_id
    marker = cli.registry.images["workshop/multi:latest"].images[1].layers[1].diff_id
    result.check(cli.store.layers() == {base}, "only the busybox layer left (workshop/busybox uses it)",
                 cli.store.summary())
    result.check(list(cli.store.records()) == [cli.ref("workshop/busybox:latest")],
                 "only workshop/busybox left", cli.store.summary())
    result.check(marker not in cli.store.layers(), "the multi image's own layer removed", cli.store.summary())


def test_rmi_of_an_unknown_image_exits_125(cli):
    expect_failure(cli("rmi", cli.ref("workshop/nothing:here")), "no such image")


def test_pull_as_nobody_uses_the_home_store(cli, udocker):
    result = udocker.run("pull", cli.ref("workshop/layers:latest"), as_user=True,
                         env={"UDOCKER_HTTP_TIMEOUT": "2"}).expect_exit(0)
    store = udocker.home / ".local" / "share" / "udocker"
    try:
        records = list((store / "images").glob("*.json"))
        result.check(len(records) == 1, f"1 record in {store}/images", repr(records))
        whiteout = next(store.glob("layers/sha256/*/root/etc/motd"), None)
        result.check(whiteout is not None and os.stat(whiteout).st_rdev == 0,
                     "the whiteout etc/motd as a 0/0 device", repr(whiteout))
    finally:
        import shutil
        shutil.rmtree(store, ignore_errors=True)
