"""Which registries to ask for an image, in order: Docker Hub's mirrors first, as dockerd does.

    UDOCKER_REGISTRY_MIRRORS=http://127.0.0.1:5000,https://cache.example.org
    /etc/udocker/config.json   {"registry-mirrors": [...], "insecure-registries": [...]}
                               (docker's daemon.json words; UDOCKER_CONFIG names another file)

Only Docker Hub references (docker.io/..., and short names like busybox) are
tried on the mirrors, in order, then on Docker Hub itself; every other
registry is asked directly and never sent to a mirror. A mirror cannot change
what is stored: everything is checked against its digest, and the image is
stored under its Docker Hub name.

Plain HTTP only where nobody can tamper with it, or where you say so: a
loopback address, or a host named in UDOCKER_INSECURE_REGISTRIES (or
"insecure-registries"), like docker's insecure-registries. Everything else is
HTTPS, checked against the system's CAs, or the PEM bundle named by
REQUESTS_CA_BUNDLE or SSL_CERT_FILE (a classroom cache with its own CA).
"""
import json
import os

from udocker.errors import UdockerError

DOCKER_HUB_API = "registry-1.docker.io"  # docker.io is a name; its API lives on this host
CONFIG_FILE = "/etc/udocker/config.json"


class Endpoint:
    """One registry to try: its base URL (scheme://host[:port]) and whether it is a mirror."""

    def __init__(self, url, mirror=False):
        self.url, self.mirror = url, mirror

    @property
    def host(self):
        return self.url.split("://", 1)[1]

    def __str__(self):
        return f"mirror {self.url}" if self.mirror else self.host


def is_loopback(host):
    """True for localhost and 127.x/::1 (with or without :port): registries nobody else can answer for."""
    if host.startswith("["):  # [::1]:5000
        name = host[1:host.find("]")]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    import ipaddress  # here: most pulls never ask

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _config():
    """The config file as a dict ({} when there is none)."""
    path = os.environ.get("UDOCKER_CONFIG") or CONFIG_FILE
    try:
        with open(path) as f:
            config = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise UdockerError(f"cannot read {path} ({error}); fix it or remove it") from None
    if not isinstance(config, dict):
        raise UdockerError(f"{path} is not a JSON object; see workshop.md, 'The classroom registry'")
    return config


def _listed(variable, config, key):
    """A comma-separated environment variable (when set and not empty), else the config file's list under KEY."""
    if os.environ.get(variable):
        return [item.strip() for item in os.environ[variable].split(",") if item.strip()]
    items = config.get(key) or []
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise UdockerError(f'"{key}" in the udocker config must be a list of strings')
    return items


def insecure_hosts(config=None):
    """The hosts that may be spoken to in plain HTTP besides loopback (host[:port], no scheme)."""
    config = _config() if config is None else config
    return {item.split("://", 1)[-1].rstrip("/") for item in
            _listed("UDOCKER_INSECURE_REGISTRIES", config, "insecure-registries")}


def url_for(host, insecure):
    """scheme://HOST: http for loopback and the insecure registries, https for all others."""
    plain = is_loopback(host) or host in insecure
    return f"{'http' if plain else 'https'}://{host}"


def mirror_endpoint(text, insecure, notes):
    """The Endpoint of one mirror setting (a URL or host[:port]); None, with a note, if refused."""
    scheme, _, rest = text.rpartition("://")
    host = rest.rstrip("/")
    if "/" in host or not host:
        raise UdockerError(f"registry mirror {text!r} is not scheme://host[:port] "
                           "(docker's registry-mirrors have no path)")
    if not scheme:
        return Endpoint(url_for(host, insecure), mirror=True)
    if scheme not in ("http", "https"):
        raise UdockerError(f"registry mirror {text!r}: the scheme must be http or https")
    if scheme == "http" and not (is_loopback(host) or host in insecure):
        notes.append(f"Skipping mirror {text}: plain HTTP to a host that is not loopback; "
                     f"name it in UDOCKER_INSECURE_REGISTRIES to allow it")
        return None
    return Endpoint(f"{scheme}://{host}", mirror=True)


def endpoints(reference, notes):
    """The registries to try for REFERENCE, in order. NOTES gets a line per mirror setting refused."""
    config = _config()
    insecure = insecure_hosts(config)
    if not reference.on_docker_hub:
        return [Endpoint(url_for(reference.registry, insecure))]
    found = []
    for text in _listed("UDOCKER_REGISTRY_MIRRORS", config, "registry-mirrors"):
        endpoint = mirror_endpoint(text, insecure, notes)
        if endpoint:
            found.append(endpoint)
    # Tests only: another host answers for Docker Hub (a loopback registry playing its part).
    hub = os.environ.get("UDOCKER_DOCKER_HUB") or DOCKER_HUB_API
    return found + [Endpoint(url_for(hub, insecure))]
