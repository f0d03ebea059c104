"""Does Docker Hub answer? Asked once per `workshop check` that has `network` checks to run."""

from __future__ import annotations

import os
import socket
import threading

DOCKER_HUB = ("registry-1.docker.io", 443)
#: HOST:PORT to ask instead (the tool's own tests point it at a port where nothing listens)
PROBE_ENV = "WORKSHOP_DOCKER_HUB_PROBE"


def docker_hub_problem(timeout: float = 3.0) -> str | None:
    """None when Docker Hub's registry accepts a connection within TIMEOUT seconds, else why not.

    In a thread, so that a name lookup that hangs (no DNS server) is bounded too.
    """
    host, port = DOCKER_HUB
    if os.environ.get(PROBE_ENV):
        host, _, number = os.environ[PROBE_ENV].rpartition(":")
        port = int(number)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                outcome.append(None)
        except OSError as error:
            outcome.append(f"{host}:{port} cannot be reached from this machine ({error})")

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout + 0.5)
    if not outcome:
        return f"{host}:{port} did not answer within {timeout:g} s"
    return outcome[0]
