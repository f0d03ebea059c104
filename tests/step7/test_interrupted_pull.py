"""Step 7: an interrupted pull leaves nothing that looks complete, and the next pull finishes the job."""
import signal
import time

from imagesupport import Fault

IMAGE = "workshop/layers:latest"


def _stalled_on_a_layer(cli, process):
    """Wait until the pull is stuck downloading the last layer (the proxy stalls it)."""
    last = cli.registry.images[IMAGE].layers[-1].digest
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline and not cli.registry.proxy.requests("GET", last):
        time.sleep(0.02)
    time.sleep(0.2)
    if not cli.registry.proxy.requests("GET", last):
        process.kill()
        process.result().fail(f"expected the pull to ask for layer {last[:19]}, got {cli.registry.proxy.log}")


def _incomplete(cli, result):
    image = cli.registry.images[IMAGE]
    result.check(cli.ref(IMAGE) not in cli.store.records(), "no image record", cli.store.summary())
    result.check(image.layers[-1].diff_id not in cli.store.layers(), "the interrupted layer not stored",
                 cli.store.summary())


def test_kill_9_then_pull_again_finishes(cli):
    cli.registry.proxy.inject(Fault(cli.registry.images[IMAGE].layers[-1].digest, "stall", times=1))
    with cli.popen("pull", cli.ref(IMAGE), env={"UDOCKER_HTTP_TIMEOUT": "30"}) as process:
        _stalled_on_a_layer(cli, process)
        process.kill_process(process.pid, signal.SIGKILL)
        result = process.finish()
    _incomplete(cli, result)
    cli.pulled(IMAGE)
    result.check(cli.store.leftovers() == [], "the next pull cleans what the killed one left in tmp/",
                 cli.store.summary())


def test_ctrl_c_leaves_nothing_behind(cli):
    cli.registry.proxy.inject(Fault(cli.registry.images[IMAGE].layers[-1].digest, "stall", times=1))
    with cli.popen("pull", cli.ref(IMAGE), env={"UDOCKER_HTTP_TIMEOUT": "30"}) as process:
        _stalled_on_a_layer(cli, process)
        process.signal(signal.SIGINT)
        result = process.finish().expect_exit(130)
    _incomplete(cli, result)
    result.check(cli.store.leftovers() == [], "nothing left in tmp/", cli.store.summary())
    result.check(len(result.stderr.strip().splitlines()[-1:]) == 1
                 and result.stderr.strip().splitlines()[-1].startswith("udocker: "),
                 "a last line 'udocker: ...' on stderr", repr(result.stderr))
