"""Step 8: `udocker run IMAGE [COMMAND [ARG...]]` runs a pulled image.

IMAGE is an image reference (pulled first when it is not stored); the image
config gives the environment, the working directory, the command and the
user; every run gets its own writable overlayfs layer, thrown away at exit.

The images (workshop.images):
  workshop/busybox  busybox, Cmd ["/bin/sh"]
  workshop/config   Env GREETING=hello WHO=image, WorkingDir /srv/app (not in the rootfs),
                    Entrypoint ["/bin/sh", "-c"], Cmd ["echo $GREETING from $(pwd)"]
  workshop/user     User nobody, Cmd ["id"]
  workshop/layers   whiteouts: no /etc/motd, /root holds only `new`
"""
import os
import re

import pytest

from imagesupport import ImageCli, expect_failure

BUSYBOX = "workshop/busybox:latest"
CONFIG = "workshop/config:latest"


@pytest.fixture
def stored(udocker, image_registry, shared_pull):
    """stored(NAME) -> an ImageCli whose store already holds NAME (shared by the tests of this implementation)."""

    def get(name):
        return ImageCli(udocker, image_registry, shared_pull(name).store)

    return get


def _tree(path):
    """A fingerprint of a directory tree: path -> (mode, size, mtime) of every entry."""
    found = {}
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            found[os.path.join(directory, name)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return found


# --- the image is pulled when needed -------------------------------------------------------------


def test_run_pulls_an_image_that_is_not_stored(cli):
    cli("run", cli.ref(BUSYBOX), "echo", "hi").expect_exit(0).expect_stdout("hi\n")
    cli.last.check(cli.ref(BUSYBOX) in cli.store.records(), f"a record for {cli.ref(BUSYBOX)}",
                   cli.store.summary())


def test_run_of_a_stored_image_does_not_ask_the_registry(stored):
    cli = stored(BUSYBOX)
    cli.registry.reset()
    cli("run", cli.ref(BUSYBOX), "true").expect_exit(0)
    cli.last.check(cli.registry.proxy.log == [], "no request to the registry", repr(cli.registry.proxy.log))


def test_run_of_an_unknown_image_fails_with_the_pull_error(cli):
    expect_failure(cli("run", cli.ref("workshop/no-such-image:latest"), "true"), "not found")


# --- the image config ----------------------------------------------------------------------------------


def test_default_command_is_entrypoint_plus_cmd(stored):
    cli = stored(CONFIG)
    cli("run", cli.ref(CONFIG)).expect_exit(0).expect_stdout("hello from /srv/app\n")


def test_command_replaces_cmd_and_keeps_entrypoint(stored):
    cli = stored(CONFIG)
    cli("run", cli.ref(CONFIG), "echo $WHO").expect_exit(0).expect_stdout("image\n")


def test_env_options_come_after_the_images_env(stored):
    cli = stored(CONFIG)
    cli("run", "-e", "WHO=cli", "--env", "NEW=1", cli.ref(CONFIG), "echo $GREETING $WHO $NEW") \
        .expect_exit(0).expect_stdout("hello cli 1\n")


def test_working_dir_is_created_when_missing(stored):
    cli = stored(CONFIG)
    cli("run", cli.ref(CONFIG), "pwd").expect_exit(0).expect_stdout("/srv/app\n")


def test_workdir_option_replaces_the_images(stored):
    cli = stored(CONFIG)
    cli("run", "-w", "/data/new", cli.ref(CONFIG), "pwd").expect_exit(0).expect_stdout("/data/new\n")


def test_entrypoint_option_replaces_entrypoint_and_drops_cmd(stored):
    cli = stored(CONFIG)
    cli("run", "--entrypoint", "/bin/pwd", cli.ref(CONFIG)).expect_exit(0).expect_stdout("/srv/app\n")


def test_entrypoint_option_with_a_command(stored):
    cli = stored(CONFIG)
    cli("run", "--entrypoint", "/bin/echo", cli.ref(CONFIG), "one", "two").expect_exit(0).expect_stdout("one two\n")


def test_image_user_is_used(stored):
    cli = stored("workshop/user:latest")
    result = cli("run", cli.ref("workshop/user:latest")).expect_exit(0)
    result.check(result.stdout.startswith("uid=65534(nobody) gid=65534(nobody)"), "uid=65534(nobody) gid=65534(nobody)",
                 repr(result.stdout))


def test_workdir_is_created_before_switching_user(stored):
    """Like docker, the working directory is made as root: the image's user may not be allowed to."""
    cli = stored("workshop/user:latest")
    cli("run", "-w", "/srv/made", cli.ref("workshop/user:latest"), "sh", "-c", "pwd; id -u") \
        .expect_exit(0).expect_stdout("/srv/made\n65534\n")


def test_entrypoint_option_with_a_directory_image(udocker, rootfs):
    udocker.run("run", "--entrypoint", "/bin/echo", rootfs, "from", "a", "directory") \
        .expect_exit(0).expect_stdout("from a directory\n")


# --- one writable layer per run ------------------------------------------------------------------------


def test_a_file_written_in_one_run_is_gone_in_the_next(stored):
    cli = stored(BUSYBOX)
    cli("run", cli.ref(BUSYBOX), "sh", "-c", "echo x > /etc/written && cat /etc/written") \
        .expect_exit(0).expect_stdout("x\n")
    cli("run", cli.ref(BUSYBOX), "sh", "-c", "test -e /etc/written && echo present || echo absent") \
        .expect_exit(0).expect_stdout("absent\n")


def test_layers_are_never_modified(stored, image_registry):
    cli = stored(BUSYBOX)
    layer = cli.store.layer(image_registry.base.diff_id)
    before = _tree(layer)
    cli("run", cli.ref(BUSYBOX), "sh", "-c", "rm /etc/passwd && echo new > /bin/new && chmod 700 /tmp") \
        .expect_exit(0)
    cli.last.check(_tree(layer) == before, f"{layer} unchanged", "changes")


def test_a_deleted_file_is_back_in_the_next_run(stored):
    cli = stored(BUSYBOX)
    cli("run", cli.ref(BUSYBOX), "rm", "/etc/passwd").expect_exit(0)
    cli("run", cli.ref(BUSYBOX), "cat", "/etc/passwd").expect_exit(0).expect_in_stdout("root:x:0:0")


def test_a_run_leaves_the_store_as_it_was(stored):
    """The writable layer and its work directory vanish with the container."""
    cli = stored(BUSYBOX)
    cli("run", cli.ref(BUSYBOX), "true").expect_exit(0)  # a first run may create fixed directories

    def tree():
        return sorted(str(p.relative_to(cli.store.root)) for p in cli.store.root.rglob("*"))

    before = tree()
    cli("run", cli.ref(BUSYBOX), "sh", "-c", "echo data > /written; mkdir /made").expect_exit(0)
    after = tree()
    added = sorted(set(after) - set(before))
    cli.last.check(added == [], "no new file or directory in the store after the run", repr(added[:10]))


def test_whiteouts_hide_lower_files(stored):
    cli = stored("workshop/layers:latest")
    cli("run", cli.ref("workshop/layers:latest"), "sh", "-c", "ls /root; test -e /etc/motd || echo no-motd; cat /etc/issue") \
        .expect_exit(0).expect_stdout("new\nno-motd\nversion 2\n")


# --- steps 2-6 hold for images ----------------------------------------------------------------------


def test_command_is_pid_1_with_the_container_id_as_hostname(stored):
    cli = stored(BUSYBOX)
    result = cli("run", cli.ref(BUSYBOX), "sh", "-c", "echo $$; hostname").expect_exit(0)
    lines = result.stdout_lines()
    result.check(len(lines) == 2 and lines[0] == "1" and re.fullmatch(r"[0-9a-f]{12}", lines[1]),
                 "pid 1 and a 12-hex-digit hostname", repr(result.stdout))


def test_exit_status_is_the_commands(stored):
    cli = stored(BUSYBOX)
    cli("run", cli.ref(BUSYBOX), "sh", "-c", "exit 7").expect_exit(7)


def test_rootless_run_of_an_image(cli, udocker):
    env = {"UDOCKER_HTTP_TIMEOUT": "2"}
    script = "echo hi > /tmp/x && cat /tmp/x && id -u"
    result = udocker.run("run", cli.ref(BUSYBOX), "sh", "-c", script, as_user=True, env=env, timeout=20)
    try:
        result.expect_exit(0).expect_stdout("hi\n0\n")
        udocker.run("run", cli.ref(BUSYBOX), "sh", "-c", "test -e /tmp/x && echo present || echo absent",
                    as_user=True, env=env).expect_exit(0).expect_stdout("absent\n")
    finally:
        import shutil
        shutil.rmtree(udocker.home / ".local" / "share" / "udocker", ignore_errors=True)


def test_rootless_run_applies_whiteouts_and_opaque_directories(cli, udocker):
    """Rootless, overlayfs reads user.overlay.* xattrs only when mounted with the userxattr option."""
    image = cli.ref("workshop/layers:latest")
    script = "ls /root; test -e /etc/motd || echo no-motd"
    try:
        udocker.run("run", image, "sh", "-c", script, as_user=True, env={"UDOCKER_HTTP_TIMEOUT": "2"}, timeout=20) \
            .expect_exit(0).expect_stdout("new\nno-motd\n")
    finally:
        import shutil
        shutil.rmtree(udocker.home / ".local" / "share" / "udocker", ignore_errors=True)


# --- step 6's cgroup limits hold for images --------------------------------------------------------


def test_memory_limit_holds_for_images(stored):
    cli = stored(BUSYBOX)
    result = cli("run", "-m", "32m", cli.ref(BUSYBOX), "dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1")
    result.expect_exit(137)
    result.check("memory" in result.stderr.lower(), "udocker to say the container ran out of memory",
                 repr(result.stderr))


def test_pids_limit_holds_for_images(stored):
    cli = stored(BUSYBOX)
    result = cli("run", "--pids-limit", "8", cli.ref(BUSYBOX), "sh", "-c", "for i in $(seq 20); do sleep 1 & done")
    result.check(result.returncode != 0 and "fork" in result.stderr,
                 "the shell to fail to fork its 8th process (\"can't fork\") and exit non-zero",
                 f"exit {result.returncode}, stderr {result.stderr!r}")
