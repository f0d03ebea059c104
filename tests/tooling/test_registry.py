"""`workshop registry start|stop|status` (workshop/registry.py), for real, on loopback ports of their own.

Each test runs the command in a subprocess with its own --dir (under /tmp,
traversable: the registry runs as the docker-registry user) and a free port,
and stops it afterwards; the last check of each is that nothing of it runs.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from workshop import registry  # noqa: E402

LAYER_PATH = "/v2/workshop/busybox/manifests/latest"


def workshop(*args, timeout=120, env=None):
    argv = [sys.executable, "-m", "workshop.cli", "registry", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                            env={**os.environ, **(env or {})})
    result.shown = "$ workshop registry " + " ".join(args)
    return result


def described(result) -> str:
    return f"{result.shown}\nexit {result.returncode}\nstdout {result.stdout!r}\nstderr {result.stderr!r}"


def processes_naming(text: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline.strip()}")
    return found


class Instance:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="workshop-registry-test-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = registry.free_port()
        self.listen = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.listen}"

    def start(self, *options):
        return workshop("start", "--dir", self.dir, "--listen", self.listen, *options)

    def status(self):
        result = workshop("status", "--dir", self.dir, "--json")
        return result, json.loads(result.stdout or "{}")


@pytest.fixture
def instance():
    if os.geteuid() != 0:
        pytest.fail("these tests start docker-registry as its own user: run them as root (CI does)")
    if not os.access(registry.REGISTRY_BINARY, os.X_OK):
        pytest.fail(f"{registry.REGISTRY_BINARY} is missing: apt-get install docker-registry (setup.sh does)")
    created = Instance()
    yield created
    workshop("stop", "--dir", created.dir)
    left = processes_naming(created.dir)
    shutil.rmtree(created.dir, ignore_errors=True)
    assert left == [], f"expected no process of the registry after stop, got {left}"


def test_start_status_idempotent_start_stop(instance):
    started = instance.start()
    assert started.returncode == 0 and "registry started" in started.stdout, described(started)
    result, info = instance.status()
    assert result.returncode == 0 and info["running"] and info["answers"] == 200, described(result)
    assert "workshop/busybox:latest" in info["images"], f"expected workshop/busybox:latest pushed, got {info}"
    again = instance.start()
    assert again.returncode == 0 and f"already running (pid {info['pid']})" in again.stdout, described(again)
    stopped = workshop("stop", "--dir", instance.dir)
    assert stopped.returncode == 0 and "registry stopped" in stopped.stdout, described(stopped)
    assert processes_naming(instance.dir) == [], "expected no process left after stop"
    assert registry.answers(instance.url) is None, f"expected nothing on {instance.listen} after stop"
    result, info = instance.status()
    assert result.returncode == 3 and not info["running"], described(result)


def test_a_second_start_on_a_busy_port_says_so(instance):
    assert instance.start().returncode == 0
    other = tempfile.mkdtemp(prefix="workshop-registry-test-", dir="/tmp")
    try:
        result = workshop("start", "--dir", other, "--listen", instance.listen)
        assert result.returncode == 1 and f"port {instance.port} is in use" in result.stderr, described(result)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_it_listens_on_loopback_only(instance):
    result = workshop("start", "--dir", instance.dir, "--listen", f"0.0.0.0:{instance.port}")
    assert result.returncode == 1 and "loopback only" in result.stderr, described(result)


def test_udocker_pulls_from_it(instance, tmp_path):
    assert instance.start().returncode == 0
    env = {**os.environ, "PYTHONPATH": str(REPO / "solutions" / "step8"), "UDOCKER_ROOT": str(tmp_path / "store")}
    pull = subprocess.run([sys.executable, "-m", "udocker", "pull", f"{instance.listen}/workshop/busybox"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert pull.returncode == 0 and "Downloaded" in pull.stderr, pull.stderr


def test_token_mode_answers_with_a_bearer_challenge(instance, tmp_path):
    token_port = registry.free_port()
    started = instance.start("--auth", "token", "--token-port", str(token_port))
    assert started.returncode == 0, described(started)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{instance.url}{LAYER_PATH}", timeout=5)
    challenge = refused.value.headers.get("WWW-Authenticate", "")
    assert refused.value.code == 401 and challenge.startswith(f'Bearer realm="http://127.0.0.1:{token_port}/token"'), \
        f"expected 401 with a Bearer challenge naming the token service, got {refused.value.code} {challenge!r}"
    with urllib.request.urlopen(f"http://127.0.0.1:{token_port}/token?service=workshop-registry", timeout=5) as answer:
        assert json.load(answer).get("token"), "expected a token from the token service"
    env = {**os.environ, "PYTHONPATH": str(REPO / "solutions" / "step8"), "UDOCKER_ROOT": str(tmp_path / "store")}
    pull = subprocess.run([sys.executable, "-m", "udocker", "pull", f"{instance.listen}/workshop/busybox"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert pull.returncode == 0, pull.stderr


def test_throttled_mode_slows_a_download(instance):
    started = instance.start("--rate", "256k")
    assert started.returncode == 0 and "throttled" in started.stdout, described(started)
    with urllib.request.urlopen(urllib.request.Request(
            f"{instance.url}{LAYER_PATH}", headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}),
            timeout=10) as answer:
        layer = json.load(answer)["layers"][0]
    begin = time.monotonic()
    with urllib.request.urlopen(f"{instance.url}/v2/workshop/busybox/blobs/{layer['digest']}", timeout=30) as answer:
        size = len(answer.read())
    took = time.monotonic() - begin
    expected = layer["size"] / (256 * 1024)
    assert size == layer["size"] and took > expected * 0.6, \
        f"expected {layer['size']} bytes in about {expected:.1f} s (256 KiB/s), got {size} bytes in {took:.1f} s"


def test_doctor_reports_whether_the_registry_and_a_mirror_answer(instance, monkeypatch):
    monkeypatch.setenv("UDOCKER_REGISTRY_MIRRORS", instance.url)
    down = registry.doctor_checks(instance.listen)
    assert down[0].ok is None and "workshop registry start" in down[0].fix, down
    assert down[1].ok is None and instance.url in down[1].detail, down
    assert instance.start().returncode == 0
    up = registry.doctor_checks(instance.listen)
    assert up[0].ok is True and "answers" in up[0].detail, up
    assert up[1].ok is True and instance.url in up[1].detail and "answers" in up[1].detail, up


def test_demo_pulls_and_runs_an_image_from_a_throwaway_registry(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("the demo runs containers with cgroup limits: run it as root (CI does)")
    result = subprocess.run([sys.executable, "-m", "workshop.cli", "demo"], capture_output=True, text=True,
                            timeout=300, cwd=REPO, env={**os.environ, "COLUMNS": "200",
                                                        "WORKSHOP_ROOTFS": str(tmp_path / "busybox")})
    assert result.returncode == 0 and "demo runs behaved" in result.stdout, result.stdout + result.stderr
    # the newest solution's scenes too: its network (step 9) and its lockdown (step 10)
    for expected in ("udocker pull 127.0.0.1:", "hello from /srv/app", "gone", "only lo", "may not mount"):
        assert expected in result.stdout, f"expected {expected!r} in the demo's output, got {result.stdout}"
    left = processes_naming("workshop-demo-")
    assert left == [], f"expected nothing of the demo's registry left running, got {left}"


def test_https_with_a_classroom_ca_that_udocker_trusts(instance, tmp_path):
    """--tls-cert/--tls-key (a classroom cache's HTTPS), and udocker trusting its CA through REQUESTS_CA_BUNDLE."""
    if not shutil.which("openssl"):
        pytest.fail("openssl is missing: apt-get install openssl")
    run = lambda *argv: subprocess.run(argv, capture_output=True, check=True, cwd=tmp_path, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=workshop-test-ca",
        "-keyout", "ca.key", "-out", "ca.crt")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "cache.key",
        "-out", "cache.csr")
    (tmp_path / "san").write_text("subjectAltName=IP:127.0.0.1\n")
    run("openssl", "x509", "-req", "-in", "cache.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-days", "2", "-extfile", "san", "-out", "cache.crt")
    started = instance.start("--tls-cert", str(tmp_path / "cache.crt"), "--tls-key", str(tmp_path / "cache.key"))
    assert started.returncode == 0, described(started)
    env = {**os.environ, "PYTHONPATH": str(REPO / "solutions" / "step8"), "UDOCKER_ROOT": str(tmp_path / "store"),
           "UDOCKER_REGISTRY_MIRRORS": f"https://{instance.listen}", "UDOCKER_DOCKER_HUB": "127.0.0.1:9",
           "UDOCKER_CONFIG": str(tmp_path / "none.json"), "REQUESTS_CA_BUNDLE": str(tmp_path / "ca.crt")}
    pull = subprocess.run([sys.executable, "-m", "udocker", "pull", "busybox"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert pull.returncode == 0 and f"from mirror https://{instance.listen}" in pull.stderr \
        and "failed" not in pull.stderr, pull.stderr
    untrusted = subprocess.run([sys.executable, "-m", "udocker", "pull", "busybox:1.36"], capture_output=True,
                               text=True, timeout=60, env={**env, "REQUESTS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"})
    assert untrusted.returncode == 125 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, \
        f"expected a certificate error without the CA, got {untrusted.returncode}: {untrusted.stderr}"


def test_a_pull_through_cache_warmed_then_serving_with_its_upstream_down(instance, tmp_path):
    """--proxy (setup.sh --classroom-cache's mode) with --credentials, `warm`, then udocker served from the cache."""
    upstream = Instance()
    try:
        assert upstream.start("--all").returncode == 0
        credentials = tmp_path / "hub-credentials"
        credentials.write_text("someone\nan-access-token\n")
        started = instance.start("--proxy", upstream.url, "--credentials", str(credentials))
        assert started.returncode == 0 and f"pull-through cache of {upstream.url}" in started.stdout, described(started)
        config = Path(instance.dir, "config.yml")
        assert "username: \"someone\"" in config.read_text() and config.stat().st_mode & 0o077 == 0o040, \
            f"expected the credentials in {config}, readable by root and the registry's group only"
        warmed = workshop("warm", instance.url, "library/busybox:latest")
        assert warmed.returncode == 0 and "warmed library/busybox:latest" in warmed.stdout, described(warmed)
    finally:
        workshop("stop", "--dir", upstream.dir)
        shutil.rmtree(upstream.dir, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "solutions" / "step8"), "UDOCKER_ROOT": str(tmp_path / "store"),
           "UDOCKER_REGISTRY_MIRRORS": instance.url, "UDOCKER_DOCKER_HUB": "127.0.0.1:9",
           "UDOCKER_CONFIG": str(tmp_path / "none.json")}
    pull = subprocess.run([sys.executable, "-m", "udocker", "pull", "busybox"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert pull.returncode == 0 and "failed" not in pull.stderr, \
        f"expected the warmed cache to serve busybox with its upstream stopped, got {pull.stderr}"
