"""Step 7: the real Docker Hub (marked `network`: leave it out with -m 'not network' when offline).

No silent skip: when registry-1.docker.io cannot be reached, the test fails and says so.
"""
import socket

import pytest

pytestmark = pytest.mark.network


def _reachable(host="registry-1.docker.io", port=443):
    try:
        with socket.create_connection((host, port), timeout=5):
            return None
    except OSError as error:
        return f"{host}:{port} cannot be reached from this machine ({error}); " \
               "this test needs Docker Hub: run it where there is internet, or deselect it with -m 'not network'"


def test_pull_busybox_from_docker_hub(cli):
    problem = _reachable()
    if problem:
        pytest.fail(problem, pytrace=False)
    cli("pull", "busybox", timeout=120, env={"UDOCKER_HTTP_TIMEOUT": "30"}).expect_exit(0)
    cli.last.check("docker.io/library/busybox:latest" in cli.store.records(),
                        "a record for docker.io/library/busybox:latest", cli.store.summary())
