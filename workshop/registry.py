"""`workshop registry start|stop|status`: the workshop's local registry, on any machine.

    sudo workshop registry start                # 127.0.0.1:5000, workshop/busybox:latest pushed
    sudo workshop registry start --auth token   # + Docker-Hub-style 401 challenges, a token service on :5001
    sudo workshop registry start --rate 200k    # + at most 200 KiB/s per connection: time to interrupt a pull
    sudo workshop registry status | stop

What runs: Debian's docker-registry (CNCF distribution 2.8) on loopback only,
with its data under /var/lib/container-workshop/registry/data, started by a
small supervisor (`python3 -m workshop.registry serve`), a daemon with a pid
file, which also runs the token service (`--auth token`: the registry's
`auth: silly` sends the challenges, the token service hands out tokens) and
the throttle (`--rate`: a TCP relay in front, the registry moves to a private
port). No systemd needed; `setup.sh --vm` runs this same command, wrapped in
a systemd unit (Type=forking) where there is systemd. `start` is idempotent:
running already with the same settings, it only pushes what is missing.

The classroom cache (`setup.sh --classroom-cache`) is the same code with
`--proxy URL` (docker-registry in pull-through mode) and `--listen ADDRESS`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

REGISTRY_BINARY = "/usr/bin/docker-registry"
DEFAULT_DIR = Path(os.environ.get("WORKSHOP_REGISTRY_DIR") or "/var/lib/container-workshop/registry")
DEFAULT_ADDRESS = "127.0.0.1:5000"
SERVICE = "workshop-registry"  # the token service's name, as in the tests' registry
WORKSHOP_IMAGES = ("workshop/busybox:latest", "library/busybox:latest")
RUN_AS = "docker-registry"  # Debian's package makes this user; the registry runs as it when we are root
MIRROR_IMAGES = ("library/busybox:latest",)  # what `warm` fetches through a classroom cache


class RegistryError(Exception):
    """Something the user can fix; the message says what."""


# --------------------------------------------------------------------------- settings


@dataclass
class Settings:
    """What a registry instance is: where it listens, in which mode, where it keeps its files."""

    dir: str = str(DEFAULT_DIR)
    listen: str = DEFAULT_ADDRESS
    auth: str = "none"  # or "token"
    rate: int | None = None  # bytes per second per connection, or None
    token_port: int | None = None  # default: the port after listen's
    proxy: str | None = None  # a remote URL: pull-through cache mode
    credentials: str | None = None  # a file "username\npassword\n" for the proxy's remote
    tls_cert: str | None = None
    tls_key: str | None = None
    all_images: bool = False  # push every test image too (workshop.images)
    classroom: bool = False  # serves the room: may listen on another address than loopback
    internal_port: int | None = field(default=None, compare=False)  # set at start: the registry behind a throttle

    @property
    def host(self) -> str:
        return self.listen.rsplit(":", 1)[0]

    @property
    def port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert else "http"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"{self.scheme}://{host}:{self.port}"

    def path(self, *parts) -> Path:
        return Path(self.dir, *parts)

    def describe(self) -> str:
        mode = [f"pull-through cache of {self.proxy}"] if self.proxy else []
        if self.auth == "token":
            mode.append(f"token auth (token service on 127.0.0.1:{self.token_port})")
        if self.rate:
            mode.append(f"throttled to {human_rate(self.rate)} per connection")
        return f"{self.listen}" + (f" ({', '.join(mode)})" if mode else "")


def parse_rate(text: str | None) -> int | None:
    """'200k' -> 204800 bytes per second; '1m', '500000'; None or '' -> None."""
    if not text:
        return None
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}
    number, unit = (text[:-1], text[-1].lower()) if text[-1].lower() in units else (text, "")
    try:
        rate = int(float(number) * units.get(unit, 1))
    except ValueError:
        raise RegistryError(f"--rate {text!r}: give bytes per second, with k or m (200k, 1m)") from None
    if rate < 1024:
        raise RegistryError(f"--rate {text!r}: at least 1k (1024 bytes per second)")
    return rate


def human_rate(rate: int) -> str:
    return f"{rate / 1024 ** 2:g} MiB/s" if rate >= 1024 ** 2 else f"{rate / 1024:g} KiB/s"


def check_address(listen: str, loopback_only: bool) -> None:
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RegistryError(f"--listen {listen!r}: give HOST:PORT, e.g. 127.0.0.1:5000")
    if loopback_only and not host.startswith("127."):
        raise RegistryError(f"--listen {listen!r}: the workshop's registry listens on loopback only "
                            "(127.x.x.x); one that serves a classroom (--classroom) may listen elsewhere")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1" if host in ("0.0.0.0", "") else host, port)) == 0


def answers(url: str, timeout: float = 2.0) -> int | None:
    """The HTTP status of GET URL/v2/ (200 plain, 401 with token auth), or None when nothing answers."""
    import ssl
    import urllib.error
    import urllib.request

    context = ssl._create_unverified_context() if url.startswith("https") else None  # a check, not a pull
    try:
        with urllib.request.urlopen(f"{url}/v2/", timeout=timeout, context=context) as answer:
            return answer.status
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------- what the supervisor runs


def registry_config(settings: Settings, port: int, secret: str) -> str:
    """docker-registry's configuration (YAML, written by hand: every value is ours)."""
    host = settings.host if not settings.rate else "127.0.0.1"
    lines = ["# written by workshop registry start: do not edit, run it again with other options",
             "version: 0.1", "log:", "  level: warn", "storage:", "  filesystem:",
             f"    rootdirectory: {settings.path('data')}", "  delete:", "    enabled: true",
             "http:", f"  addr: {host}:{port}", f"  secret: {secret}"]
    if settings.tls_cert:  # copies made by write_config
        lines += ["  tls:", f"    certificate: {settings.path('tls.crt')}", f"    key: {settings.path('tls.key')}"]
    if settings.auth == "token":
        lines += ["auth:", "  silly:", f"    realm: http://127.0.0.1:{settings.token_port}/token",
                  f"    service: {SERVICE}"]
    if settings.proxy:
        lines += ["proxy:", f"  remoteurl: {settings.proxy}"]
        if settings.credentials:
            username, password = read_credentials(settings.credentials)
            lines += [f"  username: {json.dumps(username)}", f"  password: {json.dumps(password)}"]
    return "\n".join(lines) + "\n"


def write_config(settings: Settings) -> None:
    """The directory's files: config.yml (readable by the registry's user, with a fresh secret), data/."""
    directory = Path(settings.dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    (directory / "data").mkdir(exist_ok=True)
    owner = _run_as()
    if settings.tls_cert:  # copied: the registry's user may not reach the originals (a home directory)
        import shutil

        for source, name in ((settings.tls_cert, "tls.crt"), (settings.tls_key, "tls.key")):
            shutil.copyfile(source, directory / name)
            os.chmod(directory / name, 0o640)
            if owner:
                os.chown(directory / name, 0, owner[1])
    config = directory / "config.yml"
    config.write_text(registry_config(settings, settings.internal_port or settings.port, os.urandom(16).hex()))
    os.chmod(config, 0o640 if settings.credentials else 0o644)
    if owner:
        os.chown(config, 0, owner[1])  # group-readable by the registry's user: credentials may be in it
        for dirpath, dirnames, filenames in os.walk(directory / "data"):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, *owner)


def read_credentials(path: str) -> tuple[str, str]:
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as error:
        raise RegistryError(f"cannot read the credentials file {path}: {error.strerror}") from None
    if len(lines) < 2 or not lines[0].strip() or not lines[1].strip():
        raise RegistryError(f"{path}: put the Docker Hub user on the first line and an access token on the second")
    return lines[0].strip(), lines[1].strip()


class TokenService:
    """GET /token?service=...&scope=... -> {"token": ...}: what a Bearer challenge's realm answers.

    The registry's `auth: silly` accepts any token, so this one only has to
    exist and answer like Docker Hub's auth.docker.io; it logs each request.
    """

    def __init__(self, port: int):
        import http.server

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"token": "workshop", "access_token": "workshop", "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):
                print(f"token service: {self.command} {self.path}", flush=True)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Throttle:
    """A TCP relay from LISTEN to 127.0.0.1:TARGET that sends at most RATE bytes/s per connection back."""

    def __init__(self, host: str, port: int, target: int, rate: int):
        self.target, self.rate = target, rate
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(64)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.rate), daemon=True).start()

    @staticmethod
    def _pump(source, destination, rate):
        chunk = max(1024, rate // 20) if rate else 1 << 16  # twenty sends a second
        try:
            while data := source.recv(chunk):
                destination.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for sock in (source, destination):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        try:  # wakes the thread blocked in accept()
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()


def _die_with_parent():
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Services:
    """The registry and its helpers, in this process: the supervisor's work (and the demo's)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.token = self.throttle = self.process = None

    def start(self, log=None) -> None:
        s = self.settings
        if not os.access(REGISTRY_BINARY, os.X_OK):
            raise RegistryError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry (setup.sh does)")
        registry_port = s.internal_port or s.port
        config = s.path("config.yml")  # written by write_config, as root, before the supervisor starts
        if s.auth == "token":
            self.token = TokenService(s.token_port)
        self.process = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT if log else None,
                                        preexec_fn=_die_with_parent)
        wait_until_answering(f"{s.scheme}://127.0.0.1:{registry_port}", self.process, s.path("registry.log"))
        if s.rate:
            self.throttle = Throttle(s.host, s.port, registry_port, s.rate)

    def stop(self) -> None:
        if self.throttle:
            self.throttle.stop()
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.token:
            self.token.stop()


def wait_until_answering(url: str, process, logfile: Path, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            break
        if answers(url, timeout=1) is not None:
            return
        time.sleep(0.05)
    tail = ""
    try:
        lines = logfile.read_text(errors="replace").strip().splitlines()
        said = [line for line in lines if "level=fatal" in line or "level=error" in line]  # docker-registry's
        tail = (said or lines)[-1]
    except (OSError, IndexError):
        pass
    raise RegistryError(f"the registry does not answer on {url}/v2/"
                        + (f": {tail}" if tail else "") + f" (log: {logfile})")


def serve(settings: Settings) -> int:
    """The supervisor: run the services until SIGTERM (or SIGINT), then stop them all."""
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.set())
    services = Services(settings)
    try:
        services.start(log=sys.stdout)
        print(f"serving {settings.describe()}", flush=True)
        while not stopping.wait(3600):
            pass
    finally:
        services.stop()
    return 0


# --------------------------------------------------------------------------- start, stop, status


def _read_state(directory: Path) -> tuple[int | None, Settings | None]:
    """(the supervisor's pid if it runs, the settings it was started with)."""
    try:
        pid = int(Path(directory, "registry.pid").read_text())
        settings = Settings(**json.loads(Path(directory, "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None, None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None, settings
    if b"workshop.registry" not in cmdline or b"serve" not in cmdline:
        return None, settings  # a recycled pid
    return pid, settings


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) of the docker-registry user when we are root and it exists; else None (stay who we are)."""
    if os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(RUN_AS)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


def start(settings: Settings, say=print) -> Settings:
    """Start the registry (idempotent) and push the workshop's images; return the running settings."""
    if not os.access(REGISTRY_BINARY, os.X_OK):
        raise RegistryError(f"{REGISTRY_BINARY} is missing: apt-get install docker-registry (setup.sh does)")
    check_address(settings.listen, loopback_only=not settings.classroom)
    if settings.auth == "token" and settings.token_port is None:
        settings.token_port = settings.port + 1
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise RegistryError("--tls-cert and --tls-key go together")
    directory = Path(settings.dir)
    pid, running = _read_state(directory)
    if pid and running == settings and answers(running.url) is not None:
        say(f"registry already running (pid {pid}) on {running.describe()}")
        seed(running, say)
        return running
    if pid:
        say(f"registry running with other settings ({running.describe()}): restarting it")
        stop(directory, say=lambda _: None)
    for port in [settings.port] + ([settings.token_port] if settings.auth == "token" else []):
        if port_in_use(settings.host, port):
            raise RegistryError(f"port {port} is in use by another program: stop it, or give another --listen")
    if settings.rate:
        settings.internal_port = free_port()
    write_config(settings)
    (directory / "state.json").write_text(json.dumps(asdict(settings), indent=1))
    log = open(directory / "registry.log", "ab")
    # started as we are; it becomes the docker-registry user itself once it has loaded this module
    # (serve_command), so the checkout need not be readable by that user
    process = subprocess.Popen(
        [sys.executable, "-m", "workshop.registry", "serve", "--dir", str(directory)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        cwd="/", env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    log.close()
    (directory / "registry.pid").write_text(f"{process.pid}\n")
    try:
        wait_until_answering(settings.url, process, directory / "registry.log")
    except RegistryError:
        stop(directory, say=lambda _: None)
        raise
    say(f"registry started (pid {process.pid}) on {settings.describe()}; log {directory / 'registry.log'}")
    seed(settings, say)
    return settings


def seed(settings: Settings, say=print) -> None:
    """Push the workshop's images (what is there already is skipped); a cache has nothing to push."""
    if settings.proxy:
        return
    from workshop import images, rootfs

    source = rootfs.default_dest()
    base = images.busybox_layer(str(source) if (source / "bin" / "busybox").exists() else None)
    chosen = images.workshop_images(base)
    wanted = {name: chosen[name] for name in chosen} if settings.all_images else {
        "workshop/busybox:latest": chosen["workshop/busybox:latest"]}
    wanted["library/busybox:latest"] = chosen["workshop/busybox:latest"]  # for mirrors: `udocker pull busybox`
    direct = f"127.0.0.1:{settings.internal_port or settings.port}"  # not through the throttle
    try:
        pushed = images.push_all(direct, wanted, scheme=settings.scheme)
    except Exception as error:  # requests' errors, PushError: one line
        raise RegistryError(f"pushing the workshop's images to {direct} failed: {error}") from None
    say(f"images: {', '.join(sorted(pushed))}")


def stop(directory: Path | str = DEFAULT_DIR, say=print) -> bool:
    """Stop the registry whose files are in DIRECTORY; True if one was running."""
    directory = Path(directory)
    pid, _ = _read_state(directory)
    if pid is None:
        say("registry not running")
        for name in ("registry.pid",):
            try:
                (directory / name).unlink()
            except FileNotFoundError:
                pass
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        _reap(pid)
        time.sleep(0.05)
    if Path(f"/proc/{pid}").exists():
        os.kill(pid, signal.SIGKILL)
        _reap(pid)
    (directory / "registry.pid").unlink(missing_ok=True)
    say(f"registry stopped (pid {pid})")
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)  # our own child only when started in this process (tests)
    except ChildProcessError:
        pass


def status(directory: Path | str = DEFAULT_DIR) -> dict:
    """What runs: {'running', 'pid', 'address', 'mode', 'answers' (HTTP status or None), 'images'}."""
    pid, settings = _read_state(Path(directory))
    result = {"running": pid is not None, "pid": pid, "address": None, "mode": None, "answers": None, "images": []}
    if settings is None:
        return result
    result.update(address=settings.listen, mode=settings.describe())
    if pid is not None:
        result["answers"] = answers(settings.url)
        result["images"] = catalog(settings)
    return result


def catalog(settings: Settings) -> list[str]:
    """repository:tag of every image in the registry (asked directly, behind throttle and token)."""
    import urllib.request

    base = f"{settings.scheme}://127.0.0.1:{settings.internal_port or settings.port}/v2"
    headers = {"Authorization": "Bearer workshop"}  # `auth: silly` wants a token, any token
    found = []
    try:
        import ssl

        context = ssl._create_unverified_context() if base.startswith("https") else None
        with urllib.request.urlopen(urllib.request.Request(f"{base}/_catalog", headers=headers),
                                    timeout=2, context=context) as answer:
            repositories = json.load(answer).get("repositories") or []
        for repository in repositories:
            with urllib.request.urlopen(urllib.request.Request(f"{base}/{repository}/tags/list", headers=headers),
                                        timeout=2, context=context) as answer:
                found += [f"{repository}:{tag}" for tag in sorted(json.load(answer).get("tags") or [])]
    except (OSError, ValueError):
        pass
    return found


# --------------------------------------------------------------------------- a classroom cache: warming it


def warm(mirror: str, names=MIRROR_IMAGES, architectures=("amd64", "arm64"), say=print) -> int:
    """Fetch NAMES through the pull-through cache MIRROR (every listed architecture), so that the
    classroom's pulls find them there; return how many blobs went through."""
    import urllib.request

    accept = ", ".join(("application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
                        "application/vnd.docker.distribution.manifest.list.v2+json",
                        "application/vnd.docker.distribution.manifest.v2+json"))
    count = 0

    def get(url, accept_header=None):
        request = urllib.request.Request(url, headers={"Accept": accept_header} if accept_header else {})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.read(), answer.headers.get("Content-Type", "")

    for name in names:
        repository, _, tag = name.rpartition(":")
        base = f"{mirror.rstrip('/')}/v2/{repository}"
        body, kind = get(f"{base}/manifests/{tag}", accept)
        document = json.loads(body)
        manifests = [document]
        if "manifests" in document:  # an index: the platforms learners have
            manifests = []
            for entry in document["manifests"]:
                platform = entry.get("platform") or {}
                if platform.get("os") == "linux" and platform.get("architecture") in architectures:
                    manifests.append(json.loads(get(f"{base}/manifests/{entry['digest']}", accept)[0]))
        for manifest in manifests:
            for descriptor in [manifest["config"], *manifest.get("layers", [])]:
                get(f"{base}/blobs/{descriptor['digest']}")
                count += 1
        say(f"warmed {name} ({len(manifests)} platform(s))")
    return count


# --------------------------------------------------------------------------- workshop doctor


@dataclass(frozen=True)
class Check:
    """One line of `workshop doctor`'s information (ok None: a warning), as workshop.environment's checks."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""


def doctor_checks(address: str = DEFAULT_ADDRESS) -> list:
    """What `workshop doctor` says about registries: information for steps 7 and 8, never a failure."""
    checks = []
    code = answers(f"http://{address}")
    if code in (200, 401):
        checks.append(Check("local registry", True, f"http://{address}/v2/ answers (HTTP {code}): "
                                                    "steps 7 and 8's experiments use it"))
    else:
        checks.append(Check("local registry", None, f"nothing answers on {address}: steps 7 and 8's "
                                                    "experiments need it (`sudo workshop registry start`; "
                                                    "their checks start their own)",
                            "sudo workshop registry start"))
    mirrors, source = configured_mirrors()
    if not mirrors:
        checks.append(Check("registry mirrors", True, "none configured: Docker Hub names are pulled from "
                                                      "Docker Hub (UDOCKER_REGISTRY_MIRRORS, /etc/udocker/config.json)"))
    for mirror in mirrors:
        url = mirror if "://" in mirror else f"https://{mirror}"
        code = answers(url.rstrip("/"))
        if code in (200, 401):
            checks.append(Check("registry mirror", True, f"{mirror} (from {source}) answers (HTTP {code})"))
        else:
            checks.append(Check("registry mirror", None, f"{mirror} (from {source}) does not answer: pulls of "
                                                         "Docker Hub names fall back to Docker Hub; see "
                                                         "workshop.md, 'The classroom registry'",
                                "check the classroom cache's address and that it runs "
                                "(workshop registry status on its machine)"))
    return checks


def print_doctor_info(console) -> None:
    """doctor_checks as `workshop doctor` shows them: below its table, for steps 7 and 8, never counted."""
    from rich.table import Table
    from rich.text import Text

    from workshop.ui import glyphs

    g = glyphs()
    table = Table(box=None, show_header=False, pad_edge=False, padding=(0, 1))
    table.add_column("", no_wrap=True)
    table.add_column("check", no_wrap=True, style="bold")
    table.add_column("detail", overflow="fold")
    for check in doctor_checks():
        mark = Text(g["ok"], style="green") if check.ok else Text(g["warn"], style="yellow")
        table.add_row(mark, Text(check.name), Text(check.detail))
    console.print()
    console.print(Text("For steps 7 and 8 (information):", style="dim"))
    console.print(table)


def configured_mirrors() -> tuple[list[str], str]:
    """udocker's mirror setting, as it reads it (mirrors.py): the variable, else the config file."""
    if os.environ.get("UDOCKER_REGISTRY_MIRRORS"):
        return [m.strip() for m in os.environ["UDOCKER_REGISTRY_MIRRORS"].split(",") if m.strip()], \
            "UDOCKER_REGISTRY_MIRRORS"
    path = os.environ.get("UDOCKER_CONFIG") or "/etc/udocker/config.json"
    try:
        config = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return [], path
    mirrors = config.get("registry-mirrors") if isinstance(config, dict) else None
    return [m for m in mirrors or [] if isinstance(m, str)], path


# --------------------------------------------------------------------------- the demo's registry


class LocalRegistry:
    """A throwaway registry in this process (with DIRECTORY's files), the workshop's images pushed.

        with LocalRegistry(tmp) as registry:
            ... udocker pull {registry.address}/workshop/config ...
    """

    def __init__(self, directory: str, all_images: bool = True):
        self.settings = Settings(dir=str(directory), listen=f"127.0.0.1:{free_port()}", all_images=all_images)
        self.services = Services(self.settings)

    @property
    def address(self) -> str:
        return self.settings.listen

    def __enter__(self):
        write_config(self.settings)
        with open(self.settings.path("registry.log"), "ab") as log:
            self.services.start(log=log)
        try:
            seed(self.settings, say=lambda _: None)
        except BaseException:
            self.services.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.services.stop()


# --------------------------------------------------------------------------- the command line


def _fail(error: Exception) -> None:
    click.echo(f"workshop registry: {error}", err=True)
    sys.exit(1)


def _dir_option(function):
    return click.option("--dir", "directory", default=str(DEFAULT_DIR), show_default=True,
                        type=click.Path(file_okay=False), help="Where its data, log and pid file are.")(function)


@click.group("registry")
def command():
    """The workshop's local registry on 127.0.0.1:5000 (steps 7 and 8), on any machine."""


@command.command("start")
@_dir_option
@click.option("--listen", default=DEFAULT_ADDRESS, show_default=True, metavar="HOST:PORT",
              help="Where it listens (loopback only, except for a --proxy cache).")
@click.option("--auth", type=click.Choice(["none", "token"]), default="none", show_default=True,
              help="token: 401 challenges and a token service on the next port, like Docker Hub.")
@click.option("--token-port", type=int, metavar="PORT", help="The token service's port (default: the next one).")
@click.option("--rate", metavar="BYTES/S", help="Throttle each connection (200k, 1m): pulls take long enough to interrupt.")
@click.option("--all", "all_images", is_flag=True, help="Push every test image of steps 7 and 8 too.")
@click.option("--classroom", is_flag=True, help="It serves a classroom: --listen may be another address than loopback.")
@click.option("--proxy", metavar="URL", help="A pull-through cache of URL (https://registry-1.docker.io).")
@click.option("--credentials", metavar="FILE", type=click.Path(dir_okay=False),
              help="With --proxy: a file with the remote's user and access token, one per line.")
@click.option("--tls-cert", metavar="PEM", type=click.Path(dir_okay=False), help="Serve HTTPS with this certificate.")
@click.option("--tls-key", metavar="PEM", type=click.Path(dir_okay=False), help="... and this key.")
def start_command(directory, listen, auth, token_port, rate, all_images, classroom, proxy, credentials, tls_cert,
                  tls_key):
    """Start it (idempotent) and push workshop/busybox:latest."""
    try:
        settings = Settings(dir=str(Path(directory).resolve()), listen=listen, auth=auth, rate=parse_rate(rate),
                            token_port=token_port,
                            proxy=proxy, credentials=credentials and str(Path(credentials).resolve()),
                            tls_cert=tls_cert and str(Path(tls_cert).resolve()),
                            tls_key=tls_key and str(Path(tls_key).resolve()), all_images=all_images,
                            classroom=classroom)
        start(settings, say=click.echo)
    except RegistryError as error:
        _fail(error)


@command.command("stop")
@_dir_option
def stop_command(directory):
    """Stop it, and everything it started."""
    stop(Path(directory), say=click.echo)


@command.command("status")
@_dir_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable.")
def status_command(directory, as_json):
    """Does it run, in which mode, does it answer, what does it hold? Exit 0 when it answers, else 3."""
    info = status(directory)
    if as_json:
        click.echo(json.dumps(info, indent=1))
    elif not info["running"]:
        click.echo("registry not running" + (f" (last: {info['mode']})" if info["mode"] else "")
                   + "; start it: sudo workshop registry start")
    else:
        click.echo(f"registry running (pid {info['pid']}) on {info['mode']}")
        click.echo(f"  /v2/ answers: {'HTTP ' + str(info['answers']) if info['answers'] else 'no'}")
        click.echo(f"  images: {', '.join(info['images']) or 'none'}")
    sys.exit(0 if info["running"] and info["answers"] else 3)


@command.command("warm")
@click.argument("mirror", metavar="URL")
@click.argument("names", nargs=-1, metavar="[REPOSITORY:TAG]...")
def warm_command(mirror, names):
    """Fetch the workshop's Docker Hub images through the cache at URL (the day before)."""
    try:
        count = warm(mirror, names or MIRROR_IMAGES, say=click.echo)
    except (OSError, ValueError, KeyError) as error:
        _fail(RegistryError(f"warming {mirror} failed: {error}"))
    click.echo(f"{count} blobs went through {mirror}")


@command.command("serve", hidden=True)
@_dir_option
def serve_command(directory):
    """The supervisor (start runs it in the background)."""
    owner = _run_as()
    if owner:  # as root: the registry runs as the docker-registry user, with no group of ours
        os.setgroups([])
        os.setgid(owner[1])
        os.setuid(owner[0])
    try:
        settings = Settings(**json.loads(Path(directory, "state.json").read_text()))
        sys.exit(serve(settings))
    except (OSError, ValueError, TypeError, RegistryError) as error:
        _fail(error)


if __name__ == "__main__":
    command(prog_name="python3 -m workshop.registry")
