"""Step 8: `udocker rmi` and running containers, as docker has them.

A running container holds a lease on its image: UDOCKER_ROOT/leases/<container
id>.json, locked (flock) by its runtime for as long as it runs. `rmi` refuses
to remove an image a running container uses (exit 1, naming the container);
`rmi -f` only untags it, and its layers stay until the container ends. The
kernel drops the lock of a runtime killed with -9: nothing blocks forever.
"""
import os
import signal
import time

from workshop import testing
from workshop.harness import leaks

BUSYBOX = "workshop/busybox:latest"
# prints the container id (its hostname), then waits; after a line on stdin, uses its layers again
SCRIPT = "hostname; echo ready; read line; cat /etc/passwd >/dev/null && echo still-there"


def test_rmi_refuses_an_image_a_running_container_uses(cli):
    cli.pulled(BUSYBOX)
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        container_id = container.stdout.split()[0]
        refused = cli("rmi", cli.ref(BUSYBOX)).expect_error(1, "must force", container_id)
        refused.check(cli.ref(BUSYBOX) in cli.store.records() and cli.registry.base.diff_id in cli.store.layers(),
                      "the image and its layer still stored", cli.store.summary())
        container.finish(input="\n").expect_exit(0).expect_stdout(f"{container_id}\nready\nstill-there\n")
    cli("rmi", cli.ref(BUSYBOX)).expect_exit(0)
    cli.last.check(cli.store.records() == {} and cli.store.layers() == set(),
                   "once the container has ended, rmi removes the image and its layer", cli.store.summary())


def test_rmi_force_untags_but_the_layers_stay_while_the_container_runs(cli):
    cli.pulled(BUSYBOX)
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        result = cli("rmi", "-f", cli.ref(BUSYBOX)).expect_exit(0).expect_in_stdout("Untagged:")
        result.check(cli.store.records() == {}, "the record removed", cli.store.summary())
        result.check(cli.registry.base.diff_id in cli.store.layers(), "the running container's layer kept",
                     cli.store.summary())
        container.finish(input="\n").expect_exit(0).expect_in_stdout("still-there")


def test_another_tag_of_the_same_image_is_untagged_freely(cli):
    cli.pulled(BUSYBOX)
    cli.pulled("library/busybox:latest")  # the same image under another name
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        cli("rmi", cli.ref(BUSYBOX)).expect_exit(0).expect_in_stdout("Untagged:")
        cli.last.check(list(cli.store.records()) == [cli.ref("library/busybox:latest")]
                       and cli.registry.base.diff_id in cli.store.layers(),
                       "only the other name left, with the layer", cli.store.summary())
        container.finish(input="\n").expect_exit(0)


def test_the_lease_exists_while_the_container_runs_and_goes_with_it(cli):
    cli.pulled(BUSYBOX)
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        container_id = container.stdout.split()[0]
        leases = cli.store.leases()
        container.result().check(leases == [f"{container_id}.json"], f"leases/{container_id}.json in the store",
                                 repr(leases))
        container.finish(input="\n").expect_exit(0)
    cli.last = container.result()
    cli.last.check(cli.store.leases() == [], "no lease left once the container has ended", repr(cli.store.leases()))


def test_the_container_does_not_inherit_the_lease(cli):
    """The runtime holds the lease's descriptor; the container's command must not (close-on-exec)."""
    cli.pulled(BUSYBOX)
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        shell = container.find_process("sh", "ready")
        opened = {}
        for fd in os.listdir(f"/proc/{shell}/fd"):
            try:
                opened[fd] = os.readlink(f"/proc/{shell}/fd/{fd}")
            except OSError:
                pass
        store = str(cli.store.root)
        ours = {fd: target for fd, target in opened.items() if target.startswith(store)}
        container.result().check(ours == {}, f"no descriptor of the container's command into {store}",
                                 repr(ours))
        container.finish(input="\n").expect_exit(0)


def test_a_runtime_killed_with_9_leaves_no_lease_that_blocks_rmi(cli):
    cli.pulled(BUSYBOX)
    cgroups_before = leaks.udocker_cgroups()
    with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", SCRIPT) as container:
        container.wait_for("ready")
        below = testing.descendants(container.pid)
        container.kill_process(container.pid, signal.SIGKILL)
        for pid in below:  # the container outlives its runtime: end it too
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        result = container.finish()
    _remove_cgroups_of_the_killed_runtime(cgroups_before)
    cli.last = result
    result.check(len(cli.store.leases()) == 1, "the killed runtime's lease file still there (stale)",
                 repr(cli.store.leases()))
    cli("rmi", cli.ref(BUSYBOX)).expect_exit(0)
    cli.last.check(cli.store.leases() == [] and cli.store.records() == {},
                   "rmi removed the image and the stale lease", f"leases {cli.store.leases()}, {cli.store.summary()}")


def _remove_cgroups_of_the_killed_runtime(before):
    """A runtime killed with -9 cannot remove its cgroup (step 6): do it once its processes are gone."""
    deadline = time.monotonic() + 5
    for directory in sorted(leaks.udocker_cgroups() - before, key=len, reverse=True):
        while True:
            try:
                os.rmdir(directory)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
