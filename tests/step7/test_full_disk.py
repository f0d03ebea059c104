"""Step 7: a full disk is named for what it is, and nothing half-stored stays.

The store is a small tmpfs mounted in a mount namespace of the test's own
(`unshare --mount --propagation private`): the pull meets a real ENOSPC, the
host never sees the tmpfs, and it vanishes with the namespace.
"""
import pytest

from imagesupport import expect_failure
from workshop.testing import Container

IMAGE = "workshop/busybox:latest"  # one layer: 1.0 MB to download, 2.0 MB unpacked
# the listing of the store after the pull, inside the namespace: what it kept
SCRIPT = ('mount -t tmpfs -o "size=$1,mode=700" tmpfs "$0" || exit 99; shift; '
          '"$@"; status=$?; cd "$0" && find . -mindepth 1 | sort; exit $status')


def _pull_into_a_small_store(cli, udocker, root, size):
    argv, shown, env, cwd = udocker.command(["pull", cli.ref(IMAGE)], as_user=False)
    env.update(cli.env, UDOCKER_ROOT=str(root))
    wrapper = ["unshare", "--mount", "--propagation", "private", "sh", "-c", SCRIPT, str(root), size]
    with Container(wrapper + argv, f"unshare --mount --propagation private sh -c '{SCRIPT}' {root} {size} "
                   f"UDOCKER_ROOT={root} {shown}", env, cwd) as container:
        return container.finish(timeout=30)


@pytest.mark.parametrize("size", ["600k", "1600k"], ids=["while-downloading", "while-unpacking"])
def test_a_full_disk_names_the_store_the_layer_and_its_size(cli, udocker, tmp_path, size):
    root = tmp_path / "small-store"
    root.mkdir()
    layer = cli.registry.images[IMAGE].layers[0]
    short = layer.digest.split(":")[1][:12]
    result = expect_failure(_pull_into_a_small_store(cli, udocker, root, size),
                            "no space", str(root), short, "1.0MB", "UDOCKER_ROOT")
    kept = result.stdout.split()
    half = [path for path in kept if path.startswith(("./images/", "./layers/", "./tmp/"))]
    result.check(half == [], "no image record, no layer and nothing in tmp/ on the full store",
                 repr(half))
