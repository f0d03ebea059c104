"""Step 7: the real Docker Hub (marked `network`).

`workshop check` leaves this check out when Docker Hub does not answer (and
says so); plain pytest runs it: no silent skip, it fails and says why.
"""
import pytest

from workshop.harness.network import docker_hub_problem

pytestmark = pytest.mark.network


def test_pull_busybox_from_docker_hub(cli):
    problem = docker_hub_problem(timeout=5)
    if problem:
        pytest.fail(f"{problem}; this check needs Docker Hub: run it where there is internet "
                    "(`workshop check` leaves it out by itself when Docker Hub does not answer; "
                    "pytest: -m 'not network')", pytrace=False)
    cli("pull", "busybox", timeout=120, env={"UDOCKER_HTTP_TIMEOUT": "30"}).expect_exit(0)
    cli.last.check("docker.io/library/busybox:latest" in cli.store.records(),
                   "a record for docker.io/library/busybox:latest", cli.store.summary())
