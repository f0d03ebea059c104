"""Step 10: capabilities, as docker sets them: 14 kept by default, --cap-add, --cap-drop, --privileged.

Read on the host, in /proc/PID/status of the container's shell: CapBnd (bounding),
CapPrm (permitted), CapEff (effective), CapInh, CapAmb. Docker's default set is the
mask a80425fb: CHOWN, DAC_OVERRIDE, FSETID, FOWNER, MKNOD, NET_RAW, SETGID, SETUID,
SETFCAP, SETPCAP, NET_BIND_SERVICE, SYS_CHROOT, KILL, AUDIT_WRITE.
"""
import pytest

from imagesupport import ImageCli
from lockdownsupport import CAP, DOCKER_MASK, Running, expect_ok, expect_refused, mask_text, outcomes
from lockdownsupport import own_bounding_set

ZERO = mask_text(0)
MOUNT = "try mount busybox mount -t tmpfs tmpfs /tmp"


def test_a_root_container_keeps_dockers_14_capabilities(udocker, rootfs):
    with Running(udocker, rootfs) as box:
        status = box.status()
        box.finish()
    expected = {"CapBnd": mask_text(DOCKER_MASK), "CapPrm": mask_text(DOCKER_MASK), "CapEff": mask_text(DOCKER_MASK),
                "CapInh": ZERO, "CapAmb": ZERO}
    got = {k: status[k] for k in expected}
    box.check(got == expected, f"in /proc/{box.pid}/status: {expected} (docker's default set)", str(got))


def test_another_user_gets_no_capabilities_and_the_same_bounding_set(udocker, rootfs):
    """-u 1000: execve of a program without file capabilities empties the sets of a non-root user (as runc)."""
    with Running(udocker, "-u", "1000:1000", rootfs) as box:
        status = box.status()
        box.finish()
    box.check(status["Uid"] == "1000", "the shell to run as uid 1000", f"uid {status['Uid']}")
    expected = {"CapBnd": mask_text(DOCKER_MASK), "CapPrm": ZERO, "CapEff": ZERO, "Seccomp": "2"}
    got = {k: status[k] for k in expected}
    box.check(got == expected, f"in /proc/{box.pid}/status: {expected} (the bounding set caps what a setuid "
              "program could give back)", str(got))


def test_cap_add_sys_admin_gives_mount_back(udocker, rootfs):
    with Running(udocker, rootfs, script=MOUNT) as box:
        default = box.finish()
    expect_refused(default, outcomes(default), ["mount"], why=" (no CAP_SYS_ADMIN by default)")
    for spelling in ("SYS_ADMIN", "cap_sys_admin"):
        with Running(udocker, "--cap-add", spelling, rootfs, script=MOUNT) as box:
            status = box.status()
            result = box.finish()
        expect_ok(result, outcomes(result), ["mount"], f" with --cap-add {spelling}")
        wanted = mask_text(DOCKER_MASK | 1 << CAP["SYS_ADMIN"])
        result.check(status["CapEff"] == wanted == status["CapBnd"],
                     f"CapEff and CapBnd {wanted} (docker's set and SYS_ADMIN) in /proc/{box.pid}/status",
                     f"CapEff {status['CapEff']}, CapBnd {status['CapBnd']}")


CHOWN = "touch /tmp/owned; try chown busybox chown 1234:1234 /tmp/owned"


def test_cap_drop_all_takes_chown_away(udocker, private_rootfs):
    with Running(udocker, private_rootfs, script=CHOWN) as box:
        status = box.status()
        result = box.finish()
    expect_ok(result, outcomes(result), ["chown"], " (CAP_CHOWN is in docker's default set)")
    result.check(status["CapEff"] == mask_text(DOCKER_MASK), f"CapEff {mask_text(DOCKER_MASK)}", status["CapEff"])
    with Running(udocker, "--cap-drop", "ALL", private_rootfs, script=CHOWN) as box:
        status = box.status()
        result = box.finish()
    expect_refused(result, outcomes(result), ["chown"], why=" with --cap-drop ALL")
    got = {k: status[k] for k in ("CapBnd", "CapPrm", "CapEff")}
    result.check(set(got.values()) == {ZERO}, f"no capability left in /proc/{box.pid}/status", str(got))


@pytest.fixture
def busybox_image(udocker, image_registry, shared_pull):
    name = "workshop/busybox:latest"
    cli = ImageCli(udocker, image_registry, shared_pull(name).store)
    return cli, cli.ref(name)


def test_chown_works_in_an_image(busybox_image):
    cli, image = busybox_image
    script = "try chown busybox chown 1234:1234 /etc/passwd; echo owner=$(busybox stat -c %u:%g /etc/passwd)"
    with Running(cli.udocker, image, script=script, env=cli.env) as box:
        status = box.status()
        result = box.finish()
    tried = outcomes(result)
    expect_ok(result, tried, ["chown"], " in the image's overlay")
    result.check(tried.get("owner") == "1234:1234", "/etc/passwd owned by 1234:1234 after chown", tried.get("owner"))
    result.check(status["CapEff"] == mask_text(DOCKER_MASK), f"CapEff {mask_text(DOCKER_MASK)} (the lockdown on)",
                 status["CapEff"])
    with Running(cli.udocker, "--cap-drop", "chown", image, script=script, env=cli.env) as box:
        status = box.status()
        result = box.finish()
    expect_refused(result, outcomes(result), ["chown"], why=" with --cap-drop chown")
    wanted = mask_text(DOCKER_MASK & ~(1 << CAP["CHOWN"]))
    result.check(status["CapEff"] == wanted, f"CapEff {wanted} (no CHOWN)", status["CapEff"])


def test_privileged_gives_every_power_back(udocker, rootfs):
    with Running(udocker, rootfs, script=MOUNT) as box:
        default = box.finish()
    expect_refused(default, outcomes(default), ["mount"], why=" by default")
    with Running(udocker, "--privileged", rootfs, script=MOUNT) as box:
        status = box.status()
        mounts = box.mounts()
        result = box.finish()
    expect_ok(result, outcomes(result), ["mount"], " with --privileged")
    everything = mask_text(own_bounding_set())
    result.check(status["CapEff"] == everything == status["CapBnd"],
                 f"CapEff and CapBnd {everything} (all the runtime has) with --privileged",
                 f"CapEff {status['CapEff']}, CapBnd {status['CapBnd']}")
    result.check(status["Seccomp"] == "0", "no seccomp filter with --privileged (Seccomp: 0)", status["Seccomp"])
    masked = [path for path in ("/proc/timer_list", "/proc/keys", "/proc/sys") if path in mounts]
    result.check(not masked, "no masked or read-only /proc path with --privileged", f"mounts on {masked}")
    sys_mount = mounts.get("/sys")
    result.check(sys_mount is None or "rw" in sys_mount.flags, "/sys writable with --privileged", str(sys_mount))


def test_bad_capabilities_and_security_options_are_refused(udocker, rootfs):
    for option, value, word in (("--cap-add", "FOO", "FOO"), ("--cap-drop", "SYS ADMIN", "SYS ADMIN"),
                                ("--cap-add", "CAP_", "CAP_"), ("--security-opt", "bogus", "bogus"),
                                ("--security-opt", "seccomp=/etc/profile.json", "seccomp"),
                                ("--security-opt", "no-new-privileges:maybe", "no-new-privileges"),
                                ("--security-opt", "apparmor=unconfined", "apparmor")):
        udocker.run("run", option, value, rootfs, "true").expect_error(125, word)
    # and a good one is applied
    with Running(udocker, "--cap-drop", "NET_RAW", "--cap-drop", "CAP_MKNOD", rootfs) as box:
        status = box.status()
        box.finish()
    wanted = mask_text(DOCKER_MASK & ~(1 << CAP["NET_RAW"] | 1 << CAP["MKNOD"]))
    box.check(status["CapEff"] == wanted, f"CapEff {wanted} (--cap-drop NET_RAW --cap-drop CAP_MKNOD)",
              status["CapEff"])
