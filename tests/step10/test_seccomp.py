"""Step 10: the seccomp filter and no_new_privs, seen from the host, and the calls they close.

/proc/PID/status says `Seccomp: 2` for a process under a filter and `NoNewPrivs: 1`
when PR_SET_NO_NEW_PRIVS is set. Inside, the calls that reconfigure the kernel or
leave the container's namespaces fail with EPERM: mount, umount, unshare (a user or
mount namespace), setns, pivot_root. The BPF program itself is checked instruction by
instruction, for x86_64 and aarch64, in tests/tooling/test_lockdown_blocks.py.
"""
import pytest

from lockdownsupport import DOCKER_MASK, Running, expect_ok, expect_refused, mask_text, outcomes

DOORS = (
    "try mount busybox mount -t tmpfs tmpfs /tmp\n"
    "try umount busybox umount /proc\n"  # its own /proc: harmless if it works
    "try unshare_user busybox unshare -U true\n"
    "try unshare_mount busybox unshare -m true\n"
    "try setns busybox nsenter -t 1 -u true\n"  # its own UTS namespace: harmless if it works
    "try pivot_root busybox pivot_root /nonexistent /nonexistent\n"  # ENOENT unless refused first
)


def test_seccomp_filter_is_on_and_no_new_privs_as_asked(udocker, rootfs):
    cases = [((), "0"), (("--security-opt", "no-new-privileges"), "1"),
             (("--security-opt", "no-new-privileges:true", "-u", "1000"), "1"),  # the filter after the switch
             (("--security-opt", "no-new-privileges=false"), "0")]
    for options, nnp in cases:
        with Running(udocker, *options, rootfs) as box:
            status = box.status()
            box.finish()
        got = {k: status[k] for k in ("Seccomp", "NoNewPrivs")}
        box.check(got == {"Seccomp": "2", "NoNewPrivs": nnp},
                  f"Seccomp 2 and NoNewPrivs {nnp} in /proc/{box.pid}/status with {' '.join(options) or 'no option'}",
                  str(got))


@pytest.mark.parametrize("as_user", [False, True], ids=["root", "rootless"])
def test_calls_that_reconfigure_the_kernel_fail_with_eperm(udocker, rootfs, as_user):
    with Running(udocker, rootfs, script=DOORS, as_user=as_user) as box:
        result = box.finish()
    expect_refused(result, outcomes(result),
                   ["mount", "umount", "unshare_user", "unshare_mount", "setns", "pivot_root"])


def test_seccomp_unconfined_lets_unshare_through(udocker, rootfs):
    script = "try unshare_user busybox unshare -U true"
    with Running(udocker, rootfs, script=script) as box:
        default = box.finish()
    expect_refused(default, outcomes(default), ["unshare_user"], why=" (the filter refuses unshare)")
    with Running(udocker, "--security-opt", "seccomp=unconfined", rootfs, script=script) as box:
        status = box.status()
        result = box.finish()
    expect_ok(result, outcomes(result), ["unshare_user"],
              " with seccomp=unconfined (a user namespace needs no capability)")
    got = {k: status[k] for k in ("Seccomp", "CapEff")}
    wanted = {"Seccomp": "0", "CapEff": mask_text(DOCKER_MASK)}
    result.check(got == wanted, f"{wanted} in /proc/{box.pid}/status: no filter, the capabilities still dropped",
                 str(got))
