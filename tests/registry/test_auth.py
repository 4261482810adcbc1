"""Auth challenges, credentials lookup and the token/basic flows (against a scripted in-test HTTP server)."""

from __future__ import annotations

import base64
import json
import urllib.parse
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import ConfigError, RegistryError
from minibuild.registry import RegistryClient, RegistryOptions, is_insecure, lookup_credentials, parse_challenges
from minibuild.registry.auth import Credentials, credentials_from_config
from tests.registry.fakeserver import FakeServer, Seen

MANIFEST = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:' + b"a" * 64 + b'","size":2},"layers":[]}'


def b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# ---------------------------------------------------------------- challenge parsing
def test_bearer_challenge_keeps_quoted_commas() -> None:
    (c,) = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                            'scope="repository:a/b:pull,push"')
    assert c.scheme == "bearer"
    assert c.get("realm") == "https://auth.example/token"
    assert c.get("service") == "registry.example"
    assert c.get("scope") == "repository:a/b:pull,push"


def test_several_challenges_and_unquoted_values() -> None:
    got = parse_challenges('Basic realm="Registry Realm", Bearer realm=https://t/x,service=s')
    assert [c.scheme for c in got] == ["basic", "bearer"]
    assert got[0].get("realm") == "Registry Realm"
    assert got[1].get("realm") == "https://t/x" and got[1].get("service") == "s"


def test_escaped_quote_in_challenge() -> None:
    (c,) = parse_challenges(r'Basic realm="a \"quoted\" realm"')
    assert c.get("realm") == 'a "quoted" realm'


# ---------------------------------------------------------------- credentials
def test_config_auth_entry_is_decoded() -> None:
    cfg = {"auths": {"https://reg.example:5000/v1/": {"auth": b64("alice:pa:ss")}}}
    creds = credentials_from_config(cfg, "reg.example:5000").credentials
    assert creds is not None and (creds.username, creds.password) == ("alice", "pa:ss")
    assert credentials_from_config(cfg, "reg.example:5001").credentials is None


def test_docker_hub_aliases_and_identity_token() -> None:
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": b64("bob:x"), "identitytoken": "refresh-me"}}}
    creds = credentials_from_config(cfg, "registry-1.docker.io").credentials
    assert creds is not None and creds.identity_token == "refresh-me" and creds.username == "bob"


def test_cred_helpers_are_noted_not_run() -> None:
    look = credentials_from_config({"credHelpers": {"gcr.io": "gcloud"}}, "gcr.io")
    assert look.credentials is None
    assert look.note is not None and "docker-credential-gcloud" in look.note and "MINIBUILD_REGISTRY_USER" in look.note
    look = credentials_from_config({"credsStore": "desktop"}, "any.example")
    assert look.note is not None and "docker-credential-desktop" in look.note


def test_bad_auth_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="base64"):
        credentials_from_config({"auths": {"h": {"auth": b64("no-colon")}}}, "h")


def test_env_wins_over_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"h:1": {"auth": b64("file:user")}}}))
    env = {"MINIBUILD_REGISTRY_USER": "envuser", "MINIBUILD_REGISTRY_PASSWORD": "envpw", "DOCKER_CONFIG": str(tmp_path)}
    creds = lookup_credentials("h:1", env=env).credentials
    assert creds is not None and (creds.username, creds.password) == ("envuser", "envpw")
    creds = lookup_credentials("h:1", env={"DOCKER_CONFIG": str(tmp_path)}).credentials
    assert creds is not None and (creds.username, creds.password) == ("file", "user")
    assert lookup_credentials("h:1", env={"DOCKER_CONFIG": str(tmp_path / "none")}).credentials is None


@pytest.mark.parametrize(("host", "entries", "expected"), [
    ("127.0.0.1:5000", ("127.0.0.1:5000",), True),
    ("127.0.0.1:5000", ("127.0.0.1:5001",), False),
    ("127.0.0.1:5000", ("127.0.0.1",), True),
    ("127.0.0.1:5000", ("127.0.0.0/8",), True),
    ("10.1.2.3:443", ("127.0.0.0/8",), False),
    ("reg.example", ("REG.example",), True),
    ("reg.example:5000", ("http://reg.example:5000/",), True),
    ("reg.example", (), False),
])
def test_insecure_matching(host: str, entries: tuple[str, ...], expected: bool) -> None:
    assert is_insecure(host, entries) is expected


# ---------------------------------------------------------------- flows against a fake registry
def _client(server: FakeServer, creds: Credentials | None = None, **kw: object) -> RegistryClient:
    opts = RegistryOptions(insecure_registries=(server.host,), credentials=creds, env={}, **kw)  # type: ignore[arg-type]
    return RegistryClient(server.host, opts, sleep=lambda s: None)


def _manifest_reply() -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                 "Docker-Content-Digest": Digest.of_bytes(MANIFEST).value}, MANIFEST


def test_bearer_token_flow_with_basic_credentials() -> None:
    tokens: list[Seen] = []
    holder: dict[str, FakeServer] = {}

    def handle(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.path.startswith("/token"):
            tokens.append(req)
            return 200, {"Content-Type": "application/json"}, b'{"token":"T-123"}'
        if req.headers.get("authorization") != "Bearer T-123":
            realm = f"http://{holder['s'].host}/token"
            return 401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake-registry",'
                                              f'scope="repository:team/app:pull"'}, b""
        return _manifest_reply()

    server = holder["s"] = FakeServer(handle).start()
    try:
        got = _client(server, Credentials(username="u", password="p")).get_manifest("team/app", "v1")
    finally:
        server.stop()
    assert got.data == MANIFEST
    assert len(tokens) == 1
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(tokens[0].path).query)
    assert query == {"service": ["fake-registry"], "scope": ["repository:team/app:pull"]}
    assert tokens[0].headers["authorization"] == "Basic " + b64("u:p")


def test_identity_token_is_exchanged_with_a_post() -> None:
    posts: list[Seen] = []
    holder: dict[str, FakeServer] = {}

    def handle(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.path.startswith("/token"):
            posts.append(req)
            return 200, {}, b'{"access_token":"A-1"}'
        if req.headers.get("authorization") != "Bearer A-1":
            return 401, {"WWW-Authenticate": f'Bearer realm="http://{holder["s"].host}/token",service="svc"'}, b""
        return _manifest_reply()

    server = holder["s"] = FakeServer(handle).start()
    try:
        _client(server, Credentials(identity_token="idt")).get_manifest("app", "latest")
    finally:
        server.stop()
    assert posts[0].method == "POST"
    form = urllib.parse.parse_qs(posts[0].body.decode())
    assert form["grant_type"] == ["refresh_token"] and form["refresh_token"] == ["idt"]
    assert form["scope"] == ["repository:app:pull"] and form["service"] == ["svc"]


def test_basic_challenge_then_wrong_password_is_reported() -> None:
    def handle(req: Seen) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("authorization") == "Basic " + b64("u:right"):
            return _manifest_reply()
        return 401, {"WWW-Authenticate": 'Basic realm="fake"'}, b""

    server = FakeServer(handle).start()
    try:
        assert _client(server, Credentials(username="u", password="right")).get_manifest("a", "b").data == MANIFEST
        with pytest.raises(RegistryError, match="refused the credentials"):
            _client(server, Credentials(username="u", password="wrong")).get_manifest("a", "b")
        with pytest.raises(RegistryError, match="requires authentication"):
            _client(server).get_manifest("a", "b")
    finally:
        server.stop()


def test_plain_http_token_realm_on_another_host_is_refused() -> None:
    def handle(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": 'Bearer realm="http://127.0.0.2:9/token",service="s"'}, b""

    server = FakeServer(handle).start()
    try:
        with pytest.raises(RegistryError, match="refusing plain HTTP to 127.0.0.2:9"):
            _client(server, Credentials(username="u", password="p")).get_manifest("a", "b")
    finally:
        server.stop()


def test_manifest_digest_mismatch_is_rejected() -> None:
    def handle(req: Seen) -> tuple[int, dict[str, str], bytes]:
        return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                     "Docker-Content-Digest": "sha256:" + "0" * 64}, MANIFEST

    server = FakeServer(handle).start()
    try:
        client = _client(server)
        with pytest.raises(RegistryError, match="Docker-Content-Digest"):
            client.get_manifest("a", "tag")
        with pytest.raises(RegistryError, match="does not match its digest"):
            client.get_manifest("a", "sha256:" + "1" * 64)
    finally:
        server.stop()
