"""Step 7: a layer cannot create or change anything outside its directory.

Each workshop/evil:* image (workshop.images.hostile_images) aims at the
registry's `outside` directory, which holds `target` and `victim` with known
content. The pull must fail with a message naming the member, store nothing,
and leave `outside` as it was.
"""
import os

import pytest

from imagesupport import expect_failure

ATTACKS = ["dotdot", "absolute", "symlink-dir", "symlink-relative", "hardlink", "hardlink-dotdot",
           "whiteout-dotdot"]
# keep/file, then keep/.wh.. or keep/.wh...: a whiteout naming '.' or '..' would delete keep/ itself, or
# the directory above it (unguarded code does: tried in a scratch store)
DOT_WHITEOUTS = ["whiteout-of-dot", "whiteout-of-dotdot"]


def _outside_untouched(result, cli):
    outside = cli.registry.outside
    entries = sorted(os.listdir(outside))
    result.check(entries == ["target", "victim"], f"only target and victim in {outside}", repr(entries))
    for name in entries:
        path = os.path.join(outside, name)
        st = os.lstat(path)
        with open(path) as f:
            text = f.read()
        result.check(text == f"{name}: untouched\n" and st.st_nlink == 1,
                     f"{path} unchanged and not linked from anywhere", f"{text!r}, {st.st_nlink} links")


@pytest.mark.parametrize("attack", ATTACKS)
def test_hostile_layer_is_refused(cli, attack):
    result = expect_failure(cli.pull(f"workshop/evil:{attack}"), "refused")
    _outside_untouched(result, cli)
    result.check(cli.store.records() == {} and cli.store.layers() == set() and cli.store.leftovers() == [],
                 "nothing stored", cli.store.summary())


def test_a_file_replaces_a_symlink_without_following_it(cli):
    image = cli.registry.images["workshop/evil:replace-symlink"]
    result = cli.pull("workshop/evil:replace-symlink").expect_exit(0)
    _outside_untouched(result, cli)
    victim = cli.store.layer(image.layers[0].diff_id) / "victim"
    result.check(victim.is_file() and not victim.is_symlink() and victim.read_text() == "replaced inside the layer\n",
                 f"{victim}: the layer's own regular file", "something else")


@pytest.mark.parametrize("attack", DOT_WHITEOUTS)
def test_whiteout_of_dot_or_dotdot_is_refused(cli, attack):
    result = expect_failure(cli.pull(f"workshop/evil:{attack}"), "refused", ".wh.")
    result.check(cli.store.records() == {} and cli.store.layers() == set() and cli.store.leftovers() == [],
                 "nothing stored", cli.store.summary())
