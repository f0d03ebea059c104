"""Step 8: nothing the runtime itself opened reaches the container: not the pull's registry
connections, not the image store's lease, nothing a caller left open. Read from the host's
/proc/PID/fd of the container's command."""
import os

from workshop import testing
from workshop.testing import token

BUSYBOX = "workshop/busybox:latest"


def test_a_pulled_image_starts_with_descriptors_0_1_2_only(cli, tmp_path):
    """`run` of an image the store lacks pulls it first: its connections and files stay the runtime's."""
    leaked = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)  # as a careless caller might leave one
    tag = token("tag")
    try:
        with cli.popen("run", cli.ref(BUSYBOX), "sh", "-c", f"echo ready; read line; : {tag}",
                       pass_fds=(leaked,)) as container:
            container.wait_for("ready")
            pid = container.find_process("sh", tag)
            fds = testing.open_fds(pid)
            result = container.finish(input="\n")
    finally:
        os.close(leaked)
    result.expect_exit(0)
    result.check(fds == [0, 1, 2], f"descriptors 0, 1 and 2 only in /proc/{pid}/fd (after a pull, with a lease "
                 f"on the image, and descriptor {leaked} left open by the test)", repr(fds))
