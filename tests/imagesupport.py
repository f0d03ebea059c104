"""A registry for the tests of steps 7 and 8, with a token service and a fault-injecting proxy.

    udocker --> proxy (faults, request log) --> docker-registry (auth: silly)
        \\--> token service (scope log)  <-- the registry's 401 challenges point here

* docker-registry (Debian's package, CNCF distribution 2.8) runs on a free
  loopback port with `auth: silly`: every request without an Authorization
  header gets a Docker-Hub-style `401 WWW-Authenticate: Bearer realm=...,
  service=...,scope=...`, and any token is accepted.
* The token service answers GET /token with a fresh token and logs the
  service and scopes asked for.
* The proxy forwards to the registry and logs every request; a test can
  make it corrupt, truncate, stall or replace answers (Fault).

Everything is started once per pytest process (both step suites share it),
listens on 127.0.0.1 only, and is stopped when pytest exits; the registry is
also killed by the kernel if pytest dies (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import atexit
import ctypes
import http.client
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from workshop import images as builder
from workshop import scratch

REGISTRY_BINARY = "/usr/bin/docker-registry"
SERVICE = "workshop-registry"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up (a killed pull, a timeout) is part of the tests


def _serve(handler_class, **attributes) -> _Server:
    handler = type(handler_class.__name__, (handler_class,), attributes)
    server = _Server(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


# --------------------------------------------------------------------------- token service


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    log: list = None  # set per server

    def log_message(self, *args):
        pass

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(url.query)
        self.log.append({"path": url.path, "service": query.get("service", []),
                         "scope": query.get("scope", [])})
        body = json.dumps({"token": f"token-{len(self.log)}", "access_token": f"token-{len(self.log)}",
                           "expires_in": 300}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --------------------------------------------------------------------------- the proxy


@dataclass
class Fault:
    """What the proxy does to the next TIMES requests whose path contains MATCH.

    action: 'status' (answer STATUS with HEADERS and BODY instead of the registry),
    'corrupt' (flip one byte of the body), 'truncate' (announce the full length,
    send half, close), 'stall' (accept, then say nothing for SECONDS).
    """

    match: str
    action: str
    times: int = 1_000_000
    method: str | None = "GET"
    status: int = 500
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    seconds: float = 30.0
    hits: int = 0


HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: "Proxy" = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._handle("GET")

    def do_HEAD(self):
        self._handle("HEAD")

    def _handle(self, method):
        fault = self.proxy.fault_for(method, self.path)
        self.proxy.log.append((method, self.path, fault.action if fault else None))
        if fault and fault.action == "stall":
            self.proxy.stop_stalling.wait(fault.seconds)
            self.close_connection = True
            return
        if fault and fault.action == "status":
            self._answer(fault.status, fault.headers, fault.body, method)
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.proxy.registry_port, timeout=30)
        # header by header: a client may send Accept several times (Go's does), and each one counts
        upstream.putrequest(method, self.path, skip_host=True, skip_accept_encoding=True)
        for key, value in self.headers.items():
            if key.lower() not in HOP_BY_HOP:
                upstream.putheader(key, value)
        upstream.endheaders()
        response = upstream.getresponse()
        body = response.read()
        out_headers = {k: v for k, v in response.getheaders()
                       if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
        if method == "HEAD":  # no body, but the length of the one a GET would get (a mirror reads it)
            out_headers["Content-Length"] = response.getheader("Content-Length", "0")
        upstream.close()
        if fault and fault.action == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1:]
        if fault and fault.action == "truncate":
            self.send_response(response.status)
            for k, v in out_headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._answer(response.status, out_headers, body, method)

    def _answer(self, status, headers, body, method):
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(body)


class Proxy:
    def __init__(self, registry_port: int):
        self.registry_port = registry_port
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str | None]] = []
        self.lock = threading.Lock()
        self.stop_stalling = threading.Event()
        self.server = _serve(_ProxyHandler, proxy=self)
        self.port = self.server.server_address[1]

    def fault_for(self, method, path) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.match in path and (fault.method is None or fault.method == method) \
                        and fault.hits < fault.times:
                    fault.hits += 1
                    return fault
        return None

    def inject(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def reset(self):
        self.stop_stalling.set()
        self.faults.clear()
        self.log.clear()
        self.stop_stalling = threading.Event()

    def requests(self, method=None, containing=""):
        return [(m, p) for m, p, _ in self.log if (method is None or m == method) and containing in p]


# --------------------------------------------------------------------------- the registry


def _die_with_parent():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: no registry outlives pytest


def _stop_registry(proxy, process, logfile):
    """Stop a registry process (and the fault proxy in front of it, if any); close its log."""
    if proxy:
        proxy.stop_stalling.set()
        proxy.server.shutdown()
        proxy.server.server_close()
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    logfile.close()


class Registry:
    """docker-registry + token service + proxy, and the workshop's images pushed into it."""

    def __init__(self, rootfs: str):
        if not os.access(REGISTRY_BINARY, os.X_OK):
            raise RuntimeError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry "
                               "(setup.sh installs it)")
        self.dir = tempfile.mkdtemp(prefix="workshop-registry-")
        os.chmod(self.dir, 0o755)
        self.held = scratch.hold(self.dir)  # `workshop clean` removes it (and its registry) if we are killed
        self.token_log: list = []
        self.token_server = _serve(_TokenHandler, log=self.token_log)
        self.token_url = f"http://127.0.0.1:{self.token_server.server_address[1]}/token"
        self.port = free_port()
        config = os.path.join(self.dir, "registry.yml")
        with open(config, "w") as f:
            f.write(
                "version: 0.1\n"
                "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
                "storage:\n  inmemory: {}\n  delete:\n    enabled: true\n"  # the disk is slow; tests are small
                f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: workshop\n"
                f"auth:\n  silly:\n    realm: {self.token_url}\n    service: {SERVICE}\n"
            )
        self.logfile = open(os.path.join(self.dir, "registry.log"), "wb")
        self.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", config], stdout=self.logfile, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self._wait_ready()
        self.proxy = Proxy(self.port)
        self.direct = f"127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.proxy.port}"  # what the tests pull from
        self.outside = os.path.join(self.dir, "outside")  # what hostile layers aim at
        os.mkdir(self.outside)
        self.reset_outside()
        started = time.monotonic()
        self.base = builder.busybox_layer(str(rootfs))
        self.images = builder.workshop_images(self.base)
        self.images.update(builder.hostile_images(self.outside))
        self.images.update(extra_images(self.base))
        self.digests = builder.push_all(self.direct, self.images)
        self.push_seconds = time.monotonic() - started

    def _wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/v2/")
                status = conn.getresponse().status
                conn.close()
                if status in (200, 401):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        with open(os.path.join(self.dir, "registry.log"), "rb") as f:
            log = f.read().decode(errors="replace")[-2000:]
        raise RuntimeError(f"docker-registry did not start on 127.0.0.1:{self.port}: {log}")

    def reset_outside(self):
        """The files hostile layers try to reach: OUTSIDE/target and OUTSIDE/victim, known content."""
        for entry in os.listdir(self.outside):
            path = os.path.join(self.outside, entry)
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
        for name in ("target", "victim"):
            with open(os.path.join(self.outside, name), "w") as f:
                f.write(f"{name}: untouched\n")

    def reference(self, name: str) -> str:
        """'workshop/busybox:latest' -> '127.0.0.1:<proxy port>/workshop/busybox:latest'."""
        return f"{self.host}/{name}"

    def reset(self):
        self.proxy.reset()
        self.token_log.clear()

    def stop(self):
        self.token_server.shutdown()
        self.token_server.server_close()
        _stop_registry(getattr(self, "proxy", None), self.process, self.logfile)
        shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self.held)


_registry: Registry | None = None
_failure: str | None = None


def extra_images(base) -> dict:
    """Images only the tests need: Docker Hub names (for UDOCKER_DOCKER_HUB), a lying config."""
    busybox = builder.busybox_image(base)
    lying = builder.busybox_image(base)
    lying.config_blob = lambda: builder.canonical_json({  # diff_ids that are not the layer's
        "architecture": builder.host_architecture(), "os": "linux", "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    return {
        "library/busybox:latest": busybox,
        "library/busybox:1.36": busybox,
        "workshop/bad-diffid:latest": lying,
    }


def registry(rootfs) -> Registry:
    """The process-wide test registry, started on first use."""
    global _registry, _failure
    if _failure:
        raise RuntimeError(_failure)
    if _registry is None:
        try:
            _registry = Registry(rootfs)
        except Exception as error:  # remembered: every test says the same, quickly
            _failure = f"cannot start the test registry: {error}"
            raise RuntimeError(_failure) from None
        atexit.register(_registry.stop)
    return _registry


# --------------------------------------------------------------------------- gates and mirrors


class Gate:
    """A TCP relay on a loopback port that can be shut (connection refused) and opened again.

    It plays a machine that goes down: close() stops listening and cuts the
    open connections; open() listens on the same port again.
    """

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.port = free_port()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        self.listener = None
        self.open()

    def open(self):
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source, destination):
        try:
            while data := source.recv(1 << 16):
                destination.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, destination):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        if self.listener is not None:
            try:  # wakes the accept() of the other thread: a close() alone would leave it accepting
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        with self.lock:
            for sock in self.connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self.connections.clear()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


class Mirror:
    r"""A pull-through cache (docker-registry in proxy mode) in front of the test registry, which plays Docker Hub.

        udocker -> front (Gate) -> proxy (Fault, log) -> docker-registry, proxy mode
                                                            \-> upstream (Gate) -> the test registry's proxy
        udocker's "Docker Hub" (UDOCKER_DOCKER_HUB) is the upstream gate too.

    Close front to take the mirror down, upstream to take "Docker Hub" down;
    the test registry's proxy log shows what reached the upstream, the
    mirror's own proxy log what reached the mirror.
    """

    def __init__(self, registry: Registry, directory: Path):
        self.registry = registry
        self.dir = Path(directory)
        self.upstream = Gate(registry.proxy.port)
        self.port = free_port()
        config = self.dir / "mirror.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'data'}\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n  secret: workshop\n"
            f"proxy:\n  remoteurl: http://{self.upstream.address}\n")
        self.logfile = open(self.dir / "mirror.log", "wb")
        self.process = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config)], stdout=self.logfile, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        try:
            _wait_for_registry(self.process, self.port, self.dir / "mirror.log")
        except RuntimeError:
            self.stop()
            raise
        self.proxy = Proxy(self.port)
        self.front = Gate(self.proxy.port)

    @property
    def url(self) -> str:
        return f"http://{self.front.address}"

    def env(self, **extra) -> dict:
        """udocker's environment: this mirror for Docker Hub, and the upstream playing Docker Hub."""
        return {"UDOCKER_REGISTRY_MIRRORS": self.url, "UDOCKER_DOCKER_HUB": self.upstream.address,
                "UDOCKER_CONFIG": str(self.dir / "no-config.json"), **extra}

    def stop(self):
        for gate in ("front", "upstream"):
            if getattr(self, gate, None):
                getattr(self, gate).close()
        _stop_registry(getattr(self, "proxy", None), self.process, self.logfile)


def _wait_for_registry(process, port, logfile):
    """Wait until a docker-registry answers /v2/ on PORT; RuntimeError with its log if it does not."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/v2/")
            status = conn.getresponse().status
            conn.close()
            if status in (200, 401):
                return
        except OSError:
            time.sleep(0.02)
    log = Path(logfile).read_bytes().decode(errors="replace")[-2000:] if Path(logfile).exists() else ""
    raise RuntimeError(f"docker-registry did not start on 127.0.0.1:{port}: {log}")


@pytest.fixture
def mirror(image_registry, tmp_path_factory):
    """A fresh pull-through cache of the test registry (nothing cached yet), stopped after the test."""
    try:
        cache = Mirror(image_registry, tmp_path_factory.mktemp("mirror"))
    except RuntimeError as error:
        pytest.fail(f"cannot start the mirror: {error}", pytrace=False)
    yield cache
    cache.stop()


# --------------------------------------------------------------------------- what tests look at


class StoreView:
    """The image store (UDOCKER_ROOT) as the host sees it; the layout is store.py's."""

    def __init__(self, root):
        self.root = Path(root)

    def records(self) -> dict:
        """reference -> image record, for every images/*.json."""
        found = {}
        for path in sorted((self.root / "images").glob("*.json")):
            record = json.loads(path.read_text())
            found[record["reference"]] = record
        return found

    def record(self, reference: str) -> dict | None:
        return self.records().get(reference)

    def layer(self, diff_id: str) -> Path:
        """The unpacked files of a layer."""
        return self.root / "layers" / "sha256" / diff_id.split(":", 1)[1] / "root"

    def layers(self) -> set[str]:
        """diff_ids of the complete layers."""
        base = self.root / "layers" / "sha256"
        return {f"sha256:{p.name}" for p in base.iterdir() if (p / "layer.json").is_file()} if base.is_dir() else set()

    def blobs(self) -> set[str]:
        base = self.root / "blobs" / "sha256"
        return {f"sha256:{p.name}" for p in base.iterdir()} if base.is_dir() else set()

    def leases(self) -> list[str]:
        """Names of the files in leases/: one per running container (step 8)."""
        base = self.root / "leases"
        return sorted(p.name for p in base.iterdir()) if base.is_dir() else []

    def leftovers(self) -> list[str]:
        """Work in progress that nothing finished: entries of tmp/."""
        base = self.root / "tmp"
        return sorted(p.name for p in base.iterdir()) if base.is_dir() else []

    def summary(self) -> str:
        return (f"records {sorted(self.records())}, {len(self.layers())} layers, "
                f"{len(self.blobs())} blobs, tmp {self.leftovers()}")


def expect_failure(result, *words):
    """Exit 125, and the last line on stderr is the one 'udocker: ...' line, naming WORDS.

    (Progress lines may come before it: a pull reports each layer on stderr.)
    """
    result.expect_exit(125)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    ours = [line for line in lines if line.startswith("udocker: ")]
    result.check(len(ours) == 1 and lines[-1] == ours[0], "one line 'udocker: <problem>' on stderr, last",
                 f"{len(ours)} such line(s)")
    for word in words:
        result.check(word.lower() in ours[0].lower(), f"the message to name {word!r}", repr(ours[0]))
    return result


class ImageCli:
    """The udocker fixture, with UDOCKER_ROOT set to the test's store and a short HTTP timeout."""

    # short, so that the stalled-registry test is quick; longer where everything is slow (the VM lane)
    TIMEOUT = str(max(2.0, float(os.environ.get("WORKSHOP_TEST_TIMEOUT", "10")) / 3))

    def __init__(self, udocker, registry: Registry, store: StoreView):
        self.udocker, self.registry, self.store = udocker, registry, store
        # no mirror configured on this machine (UDOCKER_REGISTRY_MIRRORS, /etc/udocker/config.json) may interfere
        self.env = {"UDOCKER_ROOT": str(store.root), "UDOCKER_HTTP_TIMEOUT": self.TIMEOUT,
                    "UDOCKER_REGISTRY_MIRRORS": "", "UDOCKER_CONFIG": "/nonexistent/udocker-config.json"}
        self.last = None  # the last Result: its .check() puts the command in a failure message

    def __call__(self, *args, env: dict | None = None, **kw):
        self.last = self.udocker.run(*args, env={**self.env, **(env or {})}, **kw)
        return self.last

    def popen(self, *args, env: dict | None = None, **kw):
        return self.udocker.popen(*args, env={**self.env, **(env or {})}, **kw)

    def ref(self, name: str) -> str:
        return self.registry.reference(name)

    def pull(self, name: str, **kw):
        return self("pull", self.ref(name), **kw)

    def pulled(self, name: str, **kw):
        """Pull NAME, which must work; return its image record."""
        result = self.pull(name, **kw).expect_exit(0)
        record = self.store.record(self.ref(name))
        result.check(record is not None, f"an image record for {self.ref(name)} in {self.store.root}/images",
                     self.store.summary())
        return record


# --------------------------------------------------------------------------- fixtures (conftests import these)


@pytest.fixture(scope="session")
def registry_service(rootfs):
    try:
        return registry(rootfs)
    except RuntimeError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def image_registry(registry_service):
    """The test registry with no faults, empty logs, and the hostile layers' targets as new."""
    registry_service.reset()
    registry_service.reset_outside()
    yield registry_service
    registry_service.proxy.reset()  # ends stalled connections


@pytest.fixture
def store(tmp_path) -> StoreView:
    return StoreView(tmp_path / "store")


@pytest.fixture
def cli(udocker, image_registry, store) -> ImageCli:
    return ImageCli(udocker, image_registry, store)


@dataclass
class Pulled:
    """A pull done once per implementation and image, shared by the tests that only look at it."""

    result: object  # the Result of `udocker pull`
    record: dict
    store: StoreView
    requests: list  # (method, path) the registry saw
    tokens: list  # the token service's log


_pulls: dict = {}


@pytest.fixture
def shared_pull(udocker, image_registry, tmp_path_factory):
    """shared_pull(NAME) -> Pulled: NAME pulled into a store of its own, once per implementation."""

    def get(name: str) -> Pulled:
        key = (str(udocker.impl), name)
        if key not in _pulls:
            store = StoreView(tmp_path_factory.mktemp("shared-store"))
            cli = ImageCli(udocker, image_registry, store)
            image_registry.reset()
            result = cli.pull(name)
            _pulls[key] = Pulled(result, store.record(cli.ref(name)), store,
                                 image_registry.proxy.requests(), list(image_registry.token_log))
            image_registry.reset()
        pulled = _pulls[key]
        pulled.result.expect_exit(0)
        pulled.result.check(pulled.record is not None, f"an image record for {name}", pulled.store.summary())
        return pulled

    return get
