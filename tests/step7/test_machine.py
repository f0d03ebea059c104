"""Step 7: what the machine needs for the image tests (guards: they check the machine, not your code)."""
import os
import subprocess

import pytest


@pytest.mark.guard
def test_docker_registry_is_installed():
    assert os.access("/usr/bin/docker-registry", os.X_OK), \
        "expected /usr/bin/docker-registry (the tests' registry), got nothing: apt-get install docker-registry"


@pytest.mark.guard
def test_system_python_has_requests():
    """Rootless runs use /usr/bin/python3 (pyenv's lives under /root): it needs requests to pull."""
    out = subprocess.run(["/usr/bin/python3", "-c", "import requests"], capture_output=True, text=True)
    assert out.returncode == 0, \
        f"expected /usr/bin/python3 to import requests, got {out.stderr.strip()!r}: apt-get install python3-requests"


@pytest.mark.guard
def test_test_registry_starts(registry_service):
    assert registry_service.process.poll() is None, "expected the test registry to run, got it stopped"
