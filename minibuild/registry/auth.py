"""Registry authentication: WWW-Authenticate challenges, scopes and credentials (env or ~/.docker/config.json)."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from minibuild.errors import ConfigError
from minibuild.record import record

ENV_USER = "MINIBUILD_REGISTRY_USER"
ENV_PASSWORD = "MINIBUILD_REGISTRY_PASSWORD"
DOCKER_HUB_KEYS = ("https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io")

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,"]*))\s*,?')


@record
class Challenge:
    """One WWW-Authenticate challenge: scheme (lowercase ``basic`` or ``bearer``) and its parameters."""

    scheme: str
    params: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return dict(self.params).get(key)


def parse_challenges(header: str) -> tuple[Challenge, ...]:
    """Parse a WWW-Authenticate header value (RFC 7235 auth-params) into challenges.

    ``Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"`` gives one bearer challenge
    whose scope keeps its comma (it is quoted)."""
    out: list[Challenge] = []
    text = header.strip()
    while text:
        m = re.match(r"([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)\s*", text)
        if m is None:
            break
        scheme = m.group(1).lower()
        text = text[m.end():]
        params: list[tuple[str, str]] = []
        while text:
            pm = _PARAM_RE.match(text)
            if pm is None:
                break
            # a bare word followed by a space and not "=" is the next scheme
            key = pm.group(1).lower()
            value = pm.group(2) if pm.group(2) is not None else pm.group(3) or ""
            params.append((key, re.sub(r"\\(.)", r"\1", value)))
            text = text[pm.end():]
        out.append(Challenge(scheme=scheme, params=tuple(params)))
        text = text.lstrip(", ")
    return tuple(out)


def repository_scope(repository: str, actions: str) -> str:
    """The token scope for a repository: ``repository:<name>:<actions>`` (actions ``pull`` or ``pull,push``)."""
    return f"repository:{repository}:{actions}"


@record
class Credentials:
    """How to log in to one registry: user + password, or an identity (refresh) token. ``source`` says where from."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    source: str = ""

    def basic_header(self) -> str:
        raw = f"{self.username or ''}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    @property
    def usable(self) -> bool:
        return bool(self.identity_token) or self.username is not None


@record
class CredentialLookup:
    """The outcome of looking up credentials: maybe credentials, and a note (e.g. an unsupported helper)."""

    credentials: Credentials | None = None
    note: str | None = None


def docker_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``$DOCKER_CONFIG/config.json``, else ``~/.docker/config.json``."""
    env = os.environ if env is None else env
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path(os.path.expanduser("~")) / ".docker" / "config.json"


def _host_of_key(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000`` (config.json auths keys come in several forms)."""
    k = key.strip()
    k = re.sub(r"^[a-z]+://", "", k)
    return k.split("/", 1)[0].lower()


def _is_hub(host: str) -> bool:
    return host in ("docker.io", "index.docker.io", "registry-1.docker.io")


def credentials_from_config(data: Mapping[str, object], host: str, *, source: str = "config.json") -> CredentialLookup:
    """Find ``host``'s credentials in a parsed Docker config.json (``auths.<host>.auth`` / ``identitytoken``).

    credHelpers/credsStore are not run (minibuild never executes helper programs); when one is configured
    for the host and no inline ``auth`` exists, the lookup carries a note saying so."""
    host = host.lower()
    auths = data.get("auths")
    found: Credentials | None = None
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if not isinstance(key, str) or not isinstance(entry, dict):
                continue
            kh = _host_of_key(key)
            if kh != host and not (_is_hub(kh) and _is_hub(host)):
                continue
            user = entry.get("username")
            password = entry.get("password")
            auth = entry.get("auth")
            if isinstance(auth, str) and auth:
                try:
                    decoded = base64.b64decode(auth, validate=False).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    raise ConfigError(f"{source}: auths.{key}.auth is not base64 of user:password") from None
                if ":" not in decoded:
                    raise ConfigError(f"{source}: auths.{key}.auth is not base64 of user:password")
                user, password = decoded.split(":", 1)
            token = entry.get("identitytoken")
            if isinstance(token, str) and token:
                found = Credentials(username=user if isinstance(user, str) else None,
                                    password=password if isinstance(password, str) else None,
                                    identity_token=token, source=source)
                break
            if isinstance(user, str) and isinstance(password, str):
                found = Credentials(username=user, password=password, source=source)
                break
    if found is not None:
        return CredentialLookup(credentials=found)
    note = None
    helpers = data.get("credHelpers")
    helper = None
    if isinstance(helpers, dict):
        for key, value in helpers.items():
            if isinstance(key, str) and _host_of_key(key) == host:
                helper = value
    if helper is None and isinstance(data.get("credsStore"), str):
        helper = data.get("credsStore")
    if helper:
        note = (f"{source} names the credential helper docker-credential-{helper} for {host}; minibuild does not "
                f"run credential helpers: set {ENV_USER}/{ENV_PASSWORD} instead")
    return CredentialLookup(note=note)


def lookup_credentials(host: str, *, env: Mapping[str, str] | None = None,
                       config_path: Path | None = None) -> CredentialLookup:
    """Credentials for ``host``: env ``MINIBUILD_REGISTRY_USER``/``_PASSWORD`` first, then Docker's config.json."""
    env = os.environ if env is None else env
    user = env.get(ENV_USER)
    if user:
        return CredentialLookup(credentials=Credentials(username=user, password=env.get(ENV_PASSWORD, ""),
                                                        source=f"${ENV_USER}"))
    path = config_path if config_path is not None else docker_config_path(env)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return CredentialLookup()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object")
    return credentials_from_config(data, host, source=str(path))
