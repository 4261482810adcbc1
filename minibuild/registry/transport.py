"""HTTP(S) to one registry: options, TLS/insecure policy, auth challenges, and bounded retries with backoff."""

from __future__ import annotations

import http.client
import io
import ipaddress
import json
import os
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from minibuild.errors import RegistryError
from minibuild.record import record
from minibuild.registry.auth import Challenge, Credentials, lookup_credentials, parse_challenges

ENV_CA = "MINIBUILD_REGISTRY_CA"
ENV_TIMEOUT = "MINIBUILD_REGISTRY_TIMEOUT"
ENV_DEADLINE = "MINIBUILD_REGISTRY_DEADLINE"
DEFAULT_TIMEOUT = 60.0
DEFAULT_DEADLINE = 3600.0
MAX_SMALL_BODY = 1 << 20  # error bodies, token answers: read at most this much
USER_AGENT = "minibuild-registry-client/1"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# exceptions that mean "the connection dropped or timed out": retried
NETWORK_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


@record
class RegistryOptions:
    """How to reach registries. ``insecure_registries`` entries are ``HOST``, ``HOST:PORT`` or a CIDR.

    Blobs up to ``monolithic_max`` bytes are uploaded with one PUT; larger ones in PATCH chunks of
    ``chunk_size``. Each request is tried at most ``retries + 1`` times on 5xx/429/dropped connections,
    sleeping ``backoff * 2**n`` seconds (capped at ``max_backoff``; Retry-After is honoured up to the cap).

    ``timeout``: seconds any one connect, send or receive may wait (``MINIBUILD_REGISTRY_TIMEOUT``, 60);
    ``deadline``: seconds a whole push or pull may take, retries and backoff included
    (``MINIBUILD_REGISTRY_DEADLINE``, 3600; 0 = none): a server trickling a byte at a time cannot hold it."""

    insecure_registries: tuple[str, ...] = ()
    ca_cert: Path | None = None
    platform: str = "linux/amd64"
    chunk_size: int = 8 << 20
    monolithic_max: int = 32 << 20
    retries: int = 4
    backoff: float = 0.2
    max_backoff: float = 8.0
    timeout: float = DEFAULT_TIMEOUT
    deadline: float | None = DEFAULT_DEADLINE
    credentials: Credentials | None = None  # None: look them up (env, then ~/.docker/config.json)
    env: Mapping[str, str] | None = field(default=None, compare=False)  # None: os.environ


def options_from_env(*, insecure_registries: Iterable[str] = (), ca_cert: Path | str | None = None,
                     platform: str | None = None, env: Mapping[str, str] | None = None,
                     **more: object) -> RegistryOptions:
    """RegistryOptions with the CA from ``ca_cert``, else ``$MINIBUILD_REGISTRY_CA`` (``SSL_CERT_FILE`` is
    honoured by OpenSSL itself)."""
    env = os.environ if env is None else env
    ca = ca_cert if ca_cert is not None else env.get(ENV_CA) or None
    timing: dict[str, float | None] = {}
    if "timeout" not in more:
        timing["timeout"] = _seconds(env, ENV_TIMEOUT, DEFAULT_TIMEOUT) or DEFAULT_TIMEOUT
    if "deadline" not in more:
        timing["deadline"] = _seconds(env, ENV_DEADLINE, DEFAULT_DEADLINE)
    return RegistryOptions(insecure_registries=tuple(insecure_registries), ca_cert=Path(ca) if ca else None,
                           platform=platform or "linux/amd64", env=env, **timing, **more)  # type: ignore[arg-type]


def _seconds(env: Mapping[str, str], name: str, default: float) -> float | None:
    """A number of seconds from the environment (``0`` = no limit: None)."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise RegistryError(f"{name}: invalid number of seconds {raw!r}") from None
    if value < 0:
        raise RegistryError(f"{name}: invalid number of seconds {raw!r}")
    return value or None


class Deadline:
    """When an operation (one push or pull) must be over; every socket wait is cut to what is left of it."""

    def __init__(self, host: str, seconds: float | None, *, per_wait: float) -> None:
        self.host = host
        self.seconds = seconds
        self.per_wait = per_wait
        self.end = None if seconds is None else time.monotonic() + seconds

    def error(self) -> RegistryError:
        return RegistryError(f"registry {self.host}: the operation did not finish within {self.seconds:g} s, the "
                             f"deadline set by {ENV_DEADLINE} (a stalled or trickling server; raise it for a slow link)")

    def wait(self) -> float:
        """Seconds the next socket wait may take (raises the deadline error when nothing is left)."""
        if self.end is None:
            return self.per_wait
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error()
        return min(self.per_wait, left)

    def expired(self) -> bool:
        return self.end is not None and time.monotonic() >= self.end


class _DeadlineRaw(io.RawIOBase):
    """The receiving side of a connection: each recv waits at most what ``Deadline.wait`` allows."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._raw = sock.makefile("rb", buffering=0)  # holds a reference: the socket stays open while reading
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        self._sock.settimeout(self._deadline.wait())
        try:
            return self._raw.readinto(buffer) or 0
        except TimeoutError:
            if self._deadline.expired():
                raise self._deadline.error() from None
            raise

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


class _DeadlineSocket:
    """A connected socket whose sends and receives are cut to the operation's deadline."""

    def __init__(self, sock: socket.socket, deadline: Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def makefile(self, mode: str = "rb", buffering: int | None = None, **_: object) -> io.BufferedReader:
        if mode != "rb":
            raise ValueError(f"unsupported socket file mode {mode!r}")
        return io.BufferedReader(_DeadlineRaw(self._sock, self._deadline), buffering or io.DEFAULT_BUFFER_SIZE)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        self._sock.settimeout(self._deadline.wait())
        try:
            self._sock.sendall(data)
        except TimeoutError:
            if self._deadline.expired():
                raise self._deadline.error() from None
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def _guard(conn: http.client.HTTPConnection, deadline: Deadline) -> None:
    conn.sock = _DeadlineSocket(conn.sock, deadline)


class _Connection(http.client.HTTPConnection):
    deadline: Deadline

    def connect(self) -> None:
        self.timeout = self.deadline.wait()
        super().connect()
        _guard(self, self.deadline)


class _TLSConnection(http.client.HTTPSConnection):
    deadline: Deadline

    def connect(self) -> None:
        self.timeout = self.deadline.wait()
        super().connect()
        _guard(self, self.deadline)


def split_host(host: str) -> tuple[str, str]:
    """``name:port`` -> (lowercase name, port or "") ; handles ``[v6]:port``."""
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        return name.lower(), rest[1:] if rest.startswith(":") else ""
    if host.count(":") == 1:
        name, port = host.split(":")
        return name.lower(), port
    return host.lower(), ""


def is_insecure(host: str, entries: Iterable[str]) -> bool:
    """True when ``host`` (``name[:port]``) is marked insecure: exact ``host:port``, bare host (any port), or CIDR."""
    name, port = split_host(host)
    for entry in entries:
        e = entry.strip().lower().split("://", 1)[-1].rstrip("/")
        if not e:
            continue
        if "/" in e:
            try:
                if ipaddress.ip_address(name) in ipaddress.ip_network(e, strict=False):
                    return True
            except ValueError:
                pass
            continue
        ename, eport = split_host(e)
        if ename == name and (not eport or eport == port):
            return True
    return False


def api_host(domain: str) -> str:
    """The host serving the API for a reference domain (docker.io is served by registry-1.docker.io)."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


@dataclass(slots=True)
class Response:
    """A finished or streaming HTTP response (close it when streaming)."""

    status: int
    headers: http.client.HTTPMessage
    raw: http.client.HTTPResponse
    conn: http.client.HTTPConnection
    url: str

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self, limit: int = MAX_SMALL_BODY) -> bytes:
        """The body, at most ``limit`` bytes of it (the rest is not read); closes the response."""
        try:
            return self.raw.read(limit)
        finally:
            self.close()

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            self.conn.close()


Body = bytes | Callable[[], Iterable[bytes]] | None


class Transport:
    """Requests against one registry host: picks https/http, authenticates on 401, retries transient failures."""

    def __init__(self, host: str, options: RegistryOptions, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.host = host
        self.options = options
        self.insecure = is_insecure(host, options.insecure_registries)
        self._sleep = sleep
        self._scheme: str | None = None
        self._auth: dict[str, str] = {}  # scope key -> Authorization header
        self._basic: str | None = None
        lookup = lookup_credentials(host, env=options.env) if options.credentials is None else None
        self.credentials = options.credentials if lookup is None else lookup.credentials
        self.credentials_note = None if lookup is None else lookup.note
        self.retries_done = 0  # how many retries happened (for tests and reports)
        self.deadline = Deadline(host, options.deadline, per_wait=options.timeout)
        # a transport serves one operation (push, pull); a long-lived one starts each with restart_deadline()

    def restart_deadline(self) -> None:
        """Start a new operation: the deadline counts from now (e.g. a lazy cache blob fetched mid-build)."""
        self.deadline = Deadline(self.host, self.options.deadline, per_wait=self.options.timeout)

    # ------------------------------------------------------------ TLS and connections
    def _ssl_context(self, verify: bool) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        ctx = ssl.create_default_context()
        if self.options.ca_cert is not None:
            try:
                ctx.load_verify_locations(cafile=str(self.options.ca_cert))
            except (OSError, ssl.SSLError) as exc:
                raise RegistryError(f"cannot load CA certificate {self.options.ca_cert}: {exc}") from None
        return ctx

    def _connect(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        timeout = self.deadline.wait()
        conn: _Connection | _TLSConnection
        if scheme == "https":
            verify = not (self.insecure and netloc == self.host)
            conn = _TLSConnection(netloc, timeout=timeout, context=self._ssl_context(verify))
        elif scheme != "http":
            raise RegistryError(f"unsupported URL scheme {scheme!r} from registry {self.host}")
        elif not (self.insecure and netloc == self.host) and not is_insecure(netloc, self.options.insecure_registries):
            raise RegistryError(f"refusing plain HTTP to {netloc}: mark it insecure with "
                                f"--insecure-registry {netloc} if you trust it")
        else:
            conn = _Connection(netloc, timeout=timeout)
        conn.deadline = self.deadline
        return conn

    def scheme(self) -> str:
        """https, or http for an insecure registry that does not speak TLS (decided once, by a /v2/ probe)."""
        if self._scheme is not None:
            return self._scheme
        try:
            conn = self._connect("https", self.host)
            try:
                conn.request("GET", "/v2/", headers={"User-Agent": USER_AGENT})
                conn.getresponse().read(MAX_SMALL_BODY)
            finally:
                conn.close()
            self._scheme = "https"
        except ssl.SSLError as exc:
            plain = "WRONG_VERSION_NUMBER" in str(exc) or "record layer failure" in str(exc) or "http request" in str(exc).lower()
            if self.insecure:
                self._scheme = "http"
            elif plain:
                raise RegistryError(f"registry {self.host} answers in plain HTTP, not HTTPS; pass --insecure-registry "
                                    f"{self.host} to allow plain HTTP to it") from None
            elif isinstance(exc, ssl.SSLCertVerificationError):
                raise RegistryError(f"TLS certificate of registry {self.host} is not trusted ({exc.verify_message}); "
                                    f"pass --ca-cert FILE or set {ENV_CA}") from None
            else:
                raise RegistryError(f"TLS handshake with registry {self.host} failed: {exc}") from None
        except (ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected,
                http.client.BadStatusLine):
            if not self.insecure:
                raise RegistryError(f"registry {self.host} dropped the TLS connection; if it speaks plain HTTP, "
                                    f"pass --insecure-registry {self.host}") from None
            self._scheme = "http"
        except OSError as exc:
            raise RegistryError(f"cannot reach registry {self.host}: {exc.strerror or exc}") from None
        return self._scheme

    def url(self, path: str) -> str:
        return f"{self.scheme()}://{self.host}{path}"

    # ------------------------------------------------------------ authentication
    def _scope_key(self, scopes: tuple[str, ...]) -> str:
        return " ".join(sorted(scopes))

    def _authenticate(self, challenges: tuple[Challenge, ...], scopes: tuple[str, ...]) -> None:
        bearer = next((c for c in challenges if c.scheme == "bearer"), None)
        basic = next((c for c in challenges if c.scheme == "basic"), None)
        if bearer is not None:
            self._auth[self._scope_key(scopes)] = "Bearer " + self._fetch_token(bearer, scopes)
            return
        if basic is not None:
            if self.credentials is None or self.credentials.username is None:
                raise RegistryError(self._need_credentials(), status=401)
            self._basic = self.credentials.basic_header()
            return
        raise RegistryError(f"registry {self.host} asks for an unsupported authentication scheme: "
                            f"{', '.join(c.scheme for c in challenges) or 'none given'}", status=401)

    def _need_credentials(self) -> str:
        msg = (f"registry {self.host} requires authentication: set MINIBUILD_REGISTRY_USER and "
               f"MINIBUILD_REGISTRY_PASSWORD, or log in with `docker login {self.host}`")
        if self.credentials_note:
            msg += f" ({self.credentials_note})"
        return msg

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a bearer challenge without a realm", status=401)
        service = challenge.get("service")
        wanted = scopes or tuple(s for s in (challenge.get("scope"),) if s)
        creds = self.credentials
        headers = {"User-Agent": USER_AGENT}
        if creds is not None and creds.identity_token:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "minibuild"}
            if service:
                form["service"] = service
            if wanted:
                form["scope"] = " ".join(wanted)
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            resp = self._send_absolute("POST", realm, headers, body)
        else:
            query = [("service", service)] if service else []
            query += [("scope", s) for s in wanted]
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(query) if query else realm
            if creds is not None and creds.username is not None:
                headers["Authorization"] = creds.basic_header()
            resp = self._send_absolute("GET", url, headers, None)
        data = resp.read()
        if resp.status == 401 or resp.status == 403:
            raise RegistryError(f"token server {realm} refused the credentials"
                                f"{' from ' + creds.source if creds else ''} (HTTP {resp.status})", status=resp.status)
        if resp.status != 200:
            raise RegistryError(f"token server {realm} answered HTTP {resp.status}", status=resp.status)
        try:
            doc = json.loads(data)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token server {realm} returned no token")
        return token

    def _send_absolute(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        parts = urllib.parse.urlsplit(url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        for attempt in range(self.options.retries + 1):
            conn = self._connect(parts.scheme, parts.netloc)
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
            except NETWORK_ERRORS as exc:
                conn.close()
                if attempt < self.options.retries:
                    self.backoff(attempt, None)
                    continue
                raise RegistryError(f"{method} {url} failed: {exc}") from None
            if resp.status in RETRY_STATUSES and attempt < self.options.retries:
                resp.read()
                conn.close()
                self.backoff(attempt, resp.headers.get("Retry-After"))
                continue
            return Response(resp.status, resp.headers, resp, conn, url)
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ requests
    def backoff(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.options.backoff * (2 ** attempt), self.options.max_backoff)
        if retry_after:
            try:
                delay = min(max(float(retry_after), delay), self.options.max_backoff)
            except ValueError:
                pass
        end = self.deadline.end
        if end is not None and time.monotonic() + delay >= end:
            raise self.deadline.error()
        self.retries_done += 1
        self._sleep(delay)

    def request(self, method: str, path_or_url: str, *, scopes: tuple[str, ...] = (),
                headers: Mapping[str, str] | None = None, body: Body = None, retry: bool = True,
                follow_redirects: bool = True) -> Response:
        """Send a request (path on this registry or an absolute URL it gave us); returns any final status.

        401 triggers one authentication round; 5xx/429/network failures are retried when ``retry`` (callers
        pass ``retry=False`` for requests whose body cannot be safely resent and retry at a higher level)."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        authed_once = False
        attempt = 0
        redirects = 0
        while True:
            parts = urllib.parse.urlsplit(url)
            same_host = parts.netloc == self.host
            hdrs = {"User-Agent": USER_AGENT, **(headers or {})}
            if same_host:
                auth = self._auth.get(self._scope_key(scopes)) or self._basic
                if auth:
                    hdrs["Authorization"] = auth
            path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
            conn = self._connect(parts.scheme, parts.netloc)
            try:
                payload: bytes | Iterable[bytes] | None = body() if callable(body) else body
                conn.request(method, path, body=payload, headers=hdrs)
                resp = conn.getresponse()
            except NETWORK_ERRORS as exc:
                conn.close()
                if isinstance(exc, RegistryError):
                    raise
                if retry and attempt < self.options.retries:
                    self.backoff(attempt, None)
                    attempt += 1
                    continue
                raise RegistryError(f"{method} {url}: connection failed after {attempt + 1} attempt(s): "
                                    f"{type(exc).__name__}: {exc}") from None
            result = Response(resp.status, resp.headers, resp, conn, url)
            if resp.status == 401 and same_host and not authed_once:
                result.read()
                challenges = parse_challenges(resp.headers.get("WWW-Authenticate") or "")
                self._authenticate(challenges, scopes)
                authed_once = True
                continue
            if resp.status == 401:
                result.read()
                who = f" as {self.credentials.source}" if self.credentials else ""
                raise RegistryError(f"registry {self.host} refused the credentials{who} (HTTP 401)"
                                    if self.credentials else self._need_credentials(), status=401)
            if resp.status in RETRY_STATUSES and retry and attempt < self.options.retries:
                result.read()
                self.backoff(attempt, resp.headers.get("Retry-After"))
                attempt += 1
                continue
            if resp.status in (301, 302, 303, 307, 308) and follow_redirects and method in ("GET", "HEAD"):
                location = resp.headers.get("Location")
                result.read()
                if not location or redirects >= 5:
                    raise RegistryError(f"{method} {url}: bad or too many redirects")
                url = urllib.parse.urljoin(url, location)
                redirects += 1
                continue
            return result


def error_detail(resp: Response) -> str:
    """A short description of an error response: the registry's error codes/messages when it sent JSON."""
    try:
        data = resp.read()
    except NETWORK_ERRORS:
        data = b""
    try:
        doc = json.loads(data)
        errs = doc.get("errors") or []
        parts = [f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errs if isinstance(e, dict)]
        if parts:
            return f"HTTP {resp.status} ({'; '.join(parts)})"
    except (ValueError, AttributeError):
        pass
    return f"HTTP {resp.status}"

