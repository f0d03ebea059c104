"""A client for the registry HTTP API v2 (the OCI distribution spec), anonymous only.

    HEAD /v2/<repository>/manifests/<tag>            is what we have still what the tag names?
    GET  /v2/<repository>/manifests/<tag or digest>   the manifest (or index)
    GET  /v2/<repository>/blobs/<digest>              a config or a layer

Docker Hub, like most registries, answers a request without credentials with
401 and a challenge: `WWW-Authenticate: Bearer realm="https://auth.docker.io/token",
service="registry.docker.io",scope="repository:library/busybox:pull"`. The
client asks the realm for a token with that service and scope, and sends it
as `Authorization: Bearer <token>` from then on.

This module talks HTTP with requests, loaded on the first request that needs
it. A pull of a stored image needs only one HEAD: that one goes through the
standard library's http.client first, which costs a fraction of loading requests.
"""
import os
import re
import time

from udocker.errors import UdockerError
from udocker.image.digest import sha256_digest, verify_bytes
from udocker.image.manifest import accept_header, media_type, parse_json

USER_AGENT = "udocker/0.1 (container-workshop)"
RETRIABLE = {500, 502, 503, 504}
ATTEMPTS = 4  # 1 try + 3 retries, waiting 0.25, 0.5, 1 s between them
BACKOFF = 0.25
MAX_MANIFEST = 4 << 20  # manifests are small; a bigger answer is not a manifest
PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY")


class PullError(UdockerError):
    pass


def http_timeout():
    """Seconds to wait for a connection or for the next bytes ($UDOCKER_HTTP_TIMEOUT, default 30)."""
    try:
        return float(os.environ.get("UDOCKER_HTTP_TIMEOUT") or 30)
    except ValueError:
        raise PullError("UDOCKER_HTTP_TIMEOUT must be a number of seconds") from None


def plural(count, word):
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


SYSTEM_CAS = "/etc/ssl/certs/ca-certificates.crt"  # Debian's and Ubuntu's (update-ca-certificates)


def ca_bundle():
    """The PEM file of CAs to trust: REQUESTS_CA_BUNDLE or SSL_CERT_FILE, else the system's.

    The system's, not requests' own copy (certifi): a classroom cache's CA,
    added with update-ca-certificates, is then trusted whichever python runs udocker.
    """
    chosen = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("SSL_CERT_FILE")
    return chosen or (SYSTEM_CAS if os.path.exists(SYSTEM_CAS) else None)


def parse_challenge(header):
    """'Bearer realm="x",service="y"' -> ('bearer', {'realm': 'x', 'service': 'y'})."""
    scheme, _, rest = (header or "").strip().partition(" ")
    return scheme.lower(), dict(re.findall(r'(\w+)="([^"]*)"', rest))


def explain_status(response, what):
    """The one-line story of an HTTP error answer, with advice where there is some."""
    status = response.status_code
    codes = ""
    try:
        errors = response.json().get("errors") or []
        codes = ", ".join(e.get("code", "?") for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        pass
    detail = f" ({codes})" if codes else ""
    host = response.url.split("/")[2] if response.url else "the registry"
    if status == 404:
        return f"{what} not found on {host}{detail}; check the name and the tag"
    if status == 401:
        challenge = parse_challenge(response.headers.get("WWW-Authenticate"))[1]
        why = f" ({challenge['error']})" if challenge.get("error") else detail
        return (f"access to {what} refused by {host}{why}: the repository does not exist, "
                "or it is private and needs a login, which udocker does not do")
    if status == 403:
        return f"access to {what} forbidden by {host}{detail}"
    if status == 429:
        limits = []
        for name in ("ratelimit-remaining", "ratelimit-limit", "retry-after"):
            if response.headers.get(name):
                limits.append(f"{name}: {response.headers[name]}")
        shown = f" ({'; '.join(limits)})" if limits else ""
        return (f"{host} refused {what}: too many requests{shown}; anonymous pulls are limited "
                "per IP address (Docker Hub: a few per hour), so wait before pulling again, "
                "or pull through a mirror (UDOCKER_REGISTRY_MIRRORS; `workshop registry start` "
                "runs one on 127.0.0.1:5000)")
    if status >= 500:
        return f"{host} failed on {what} with HTTP {status}{detail}; try again later"
    return f"{host} answered HTTP {status} for {what}{detail}"


class BlobReader:
    """The body of a streamed answer as a file-like object, with network failures explained."""

    def __init__(self, response, what):
        import urllib3.exceptions  # loaded with requests already

        self.response = response
        self.what = what
        self.errors = urllib3.exceptions
        response.raw.decode_content = False  # digests are over the bytes as stored

    def read(self, n=-1):
        try:
            return self.response.raw.read(None if n is None or n < 0 else n)
        except (self.errors.ReadTimeoutError, TimeoutError):
            raise PullError(f"{self.what}: the registry stopped sending data "
                            f"(no bytes for {http_timeout():g} s; UDOCKER_HTTP_TIMEOUT)") from None
        except (self.errors.HTTPError, OSError) as error:
            raise PullError(f"{self.what}: the download was cut short ({type(error).__name__}); "
                            "pull again to finish it") from None

    def close(self):
        self.response.close()


def read_small(reader, limit, what):
    """Read a whole small answer (a manifest, a config), refusing one larger than LIMIT."""
    chunks, size = [], 0
    try:
        while size <= limit:
            chunk = reader.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        reader.close()
    if size > limit:
        raise PullError(f"{what} is larger than {limit} bytes, which is not plausible")
    return b"".join(chunks)


class Registry:
    """One repository on one registry, e.g. https://registry-1.docker.io + library/busybox."""

    def __init__(self, url, repository, attempts=ATTEMPTS):
        self.url = url  # scheme://host[:port]: mirrors.py decides http or https
        self.attempts = attempts  # a mirror gets one: trying the next registry is its retry
        self.host = url.split("://", 1)[1]
        self.repository = repository
        self.base = f"{url}/v2/{repository}"
        self.timeout = http_timeout()
        self.token = None  # one token serves the whole pull
        self._session = None

    @property
    def session(self):
        """The requests session, made (and requests loaded) on first use."""
        if self._session is None:
            import requests

            self._session = requests.Session()
            self._session.headers["User-Agent"] = USER_AGENT
            self._session.verify = ca_bundle() or True
        return self._session

    def fetch_token(self, challenge_header, what):
        """Answer a 401 challenge: get a token from its realm and keep it for the next requests."""
        import requests  # loaded already: a challenge is the answer to a request

        scheme, params = parse_challenge(challenge_header)
        if scheme != "bearer" or not params.get("realm"):
            raise PullError(
                f"{self.host} answered 401 for {what} without a Bearer challenge "
                f"(WWW-Authenticate: {challenge_header or 'missing'}): it wants credentials, "
                "and udocker pulls anonymously only")
        query = {"scope": params.get("scope") or f"repository:{self.repository}:pull"}
        if params.get("service"):
            query["service"] = params["service"]
        try:
            answer = self.session.get(params["realm"], params=query, timeout=self.timeout)
        except requests.RequestException as error:
            raise PullError(f"cannot get a token from {params['realm']}: {error}") from None
        if answer.status_code != 200:
            raise PullError(f"the token service {params['realm']} refused: HTTP {answer.status_code}")
        try:
            body = answer.json()
            self.token = body.get("token") or body["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise PullError(f"the token service {params['realm']} sent no token") from None

    def request(self, method, path, what, accept=None, stream=False):
        """Send one API request: token flow, retries of 5xx and refused connections, errors explained."""
        import requests

        url = f"{self.base}/{path}"
        renewed_token = False
        attempt = 0
        while True:
            headers = {"Accept": accept} if accept else {}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            try:
                response = self.session.request(
                    method, url, headers=headers, stream=stream, timeout=self.timeout)
            except requests.Timeout:
                raise PullError(f"{self.host} did not answer within {self.timeout:g} s "
                                f"while fetching {what} (UDOCKER_HTTP_TIMEOUT)") from None
            except requests.exceptions.SSLError as error:  # no use retrying: the certificate stays the same
                reason = "CERTIFICATE_VERIFY_FAILED" if "CERTIFICATE_VERIFY_FAILED" in str(error) else "TLS error"
                raise PullError(f"cannot verify the certificate of {self.host} ({reason}) while fetching "
                                f"{what}; if its CA is yours (a classroom cache), trust it: REQUESTS_CA_BUNDLE "
                                "or SSL_CERT_FILE, or update-ca-certificates") from None
            except requests.ConnectionError as error:
                attempt += 1
                if attempt >= self.attempts:
                    raise PullError(f"cannot reach {self.host} to fetch {what} "
                                    f"({type(error).__name__}, {plural(self.attempts, 'attempt')}); "
                                    "check the name and the network") from None
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            except requests.RequestException as error:
                raise PullError(f"request for {what} to {self.host} failed: {error}") from None
            if response.status_code == 401 and not renewed_token:
                # No token yet, or it expired: get one and send the request again.
                response.close()
                self.fetch_token(response.headers.get("WWW-Authenticate"), what)
                renewed_token = True
                continue
            if response.status_code in RETRIABLE and attempt + 1 < self.attempts:
                response.close()
                attempt += 1
                time.sleep(BACKOFF * 2 ** (attempt - 1))
                continue
            if response.status_code >= 400:
                message = explain_status(response, what)
                if response.status_code in RETRIABLE:
                    message += f" ({plural(self.attempts, 'attempt')})"
                response.close()
                raise PullError(message)
            return response

    def manifest_digest(self, reference):
        """HEAD the manifest: its digest, or None. Cheap, and Docker Hub does not count it as a pull.

        Asked first without a token through http.client (quick_head); when the
        registry wants a token, or anything else goes wrong, the full client
        (requests, retries, errors explained) asks again.
        """
        if not self.token:
            digest = quick_head(f"{self.base}/manifests/{reference}",
                                {"Accept": accept_header(), "User-Agent": USER_AGENT}, self.timeout)
            if digest:
                return digest
        response = self.request("HEAD", f"manifests/{reference}", f"manifest {reference}", accept_header())
        return response.headers.get("Docker-Content-Digest")

    def manifest(self, reference, what):
        """GET a manifest or index by tag or digest -> (body bytes, media type, digest).

        By digest the body must hash to it; by tag it must hash to the digest the
        registry announces in Docker-Content-Digest (when it announces one).
        """
        response = self.request("GET", f"manifests/{reference}", what, accept_header(), stream=True)
        body = read_small(BlobReader(response, what), MAX_MANIFEST, what)
        digest = sha256_digest(body)
        expected = reference if reference.startswith("sha256:") else (
            response.headers.get("Docker-Content-Digest") or digest)
        verify_bytes(body, expected, what)
        document = parse_json(body, what)
        return body, media_type(response.headers.get("Content-Type"), document), digest

    def blob(self, descriptor, what):
        """Stream a blob: a file-like object; hash it (VerifyingReader) as you read it."""
        response = self.request("GET", f"blobs/{descriptor['digest']}", what, stream=True)
        return BlobReader(response, what)


def quick_head(url, headers, timeout):
    """HEAD URL, written by hand: the Docker-Content-Digest of a 200 answer, else None.

    For the one request of a warm pull: a request is a few lines of text, and
    sending them over a socket costs less than loading an HTTP library.
    Anything unusual (a proxy to go through, a 401, an error) returns None,
    and the caller asks again with requests.
    """
    if any(os.environ.get(name) for name in PROXY_VARIABLES):
        return None  # requests knows how to go through a proxy; this does not
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    lines = [f"HEAD {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
             *(f"{name}: {value}" for name, value in headers.items()), "Connection: close", "", ""]
    answer = b""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        with socket.create_connection((parts.hostname, port), timeout=timeout) as connection:
            if parts.scheme == "https":
                import ssl

                context = ssl.create_default_context(cafile=ca_bundle())
                connection = context.wrap_socket(connection, server_hostname=parts.hostname)
            connection.sendall("\r\n".join(lines).encode())
            while b"\r\n\r\n" not in answer and len(answer) < 1 << 16:
                chunk = connection.recv(1 << 12)
                if not chunk:
                    break
                answer += chunk
    except (OSError, ValueError):
        return None
    status_line, *header_lines = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    if status_line.split()[1:2] != ["200"]:
        return None
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "docker-content-digest":
            return value.strip()
    return None
