"""Retries with exponential backoff on 5xx, 429 and dropped connections, bounded (scripted in-test server)."""

from __future__ import annotations


from minibuild.digest import Digest
from minibuild.errors import RegistryError
from minibuild.registry import RegistryClient, RegistryOptions
from tests.registry.fakeserver import DROP, FakeServer, Reply, Seen
from tests.registry.test_auth import MANIFEST


def _ok() -> Reply:
    return 200, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, MANIFEST


def run(script: list[Reply], **opts: object) -> tuple[list[float], FakeServer, object]:
    replies = list(script)
    server = FakeServer(lambda req: replies.pop(0) if replies else _ok()).start()
    sleeps: list[float] = []
    client = RegistryClient(server.host, RegistryOptions(insecure_registries=(server.host,), env={}, **opts),  # type: ignore[arg-type]
                            sleep=sleeps.append)
    client.transport.scheme()  # decide http before the script starts (the TLS probe is not a request)
    try:
        result: object = client.get_manifest("app", "v1")
    except RegistryError as exc:
        result = exc
    finally:
        server.stop()
    return sleeps, server, result


def test_5xx_is_retried_with_exponential_backoff() -> None:
    sleeps, server, result = run([(503, {}, b""), (502, {}, b""), (500, {}, b"")], backoff=0.1)
    assert not isinstance(result, RegistryError)
    assert sleeps == [0.1, 0.2, 0.4]
    assert len(server.seen) == 4


def test_429_honours_retry_after_up_to_the_cap() -> None:
    sleeps, _, result = run([(429, {"Retry-After": "3"}, b""), (429, {"Retry-After": "100"}, b"")], backoff=0.1,
                            max_backoff=5.0)
    assert not isinstance(result, RegistryError)
    assert sleeps == [3.0, 5.0]


def test_dropped_connection_is_retried() -> None:
    sleeps, server, result = run([DROP, DROP])
    assert not isinstance(result, RegistryError)
    assert len(sleeps) == 2 and len(server.seen) == 3


def test_retries_are_bounded() -> None:
    sleeps, server, result = run([(503, {}, b"")] * 20, retries=3, backoff=0.5, max_backoff=1.0)
    assert isinstance(result, RegistryError)
    assert "HTTP 503" in str(result)
    assert len(server.seen) == 4
    assert sleeps == [0.5, 1.0, 1.0]


def test_client_errors_are_not_retried() -> None:
    sleeps, server, result = run([(404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"nope"}]}')])
    assert isinstance(result, RegistryError) and result.status == 404
    assert sleeps == [] and len(server.seen) == 1


def test_error_body_codes_are_shown() -> None:
    _, _, result = run([(400, {}, b'{"errors":[{"code":"NAME_INVALID","message":"bad name"}]}')])
    assert isinstance(result, RegistryError)
    assert "NAME_INVALID: bad name" in str(result)


def test_monolithic_upload_restarts_after_a_dropped_put() -> None:
    """The PUT of the blob is not resent blindly: the whole upload restarts with a new session."""
    data = b"blob-bytes" * 100
    digest = Digest.of_bytes(data)
    state = {"puts": 0, "stored": False}

    def handle(req: Seen) -> Reply:
        if req.method == "HEAD":
            return (200, {"Content-Length": str(len(data))}, b"") if state["stored"] else (404, {}, b"")
        if req.method == "POST":
            return 202, {"Location": f"/v2/app/blobs/uploads/s{len(server.seen)}"}, b""
        if req.method == "PUT":
            state["puts"] += 1
            if state["puts"] == 1:
                return DROP
            assert req.body == data and f"digest={digest.value.replace(':', '%3A')}" in req.path
            state["stored"] = True
            return 201, {}, b""
        return 500, {}, b""

    server = FakeServer(handle).start()
    import io
    try:
        client = RegistryClient(server.host, RegistryOptions(insecure_registries=(server.host,), env={}),
                                sleep=lambda s: None)
        assert client.push_blob("app", digest, len(data), lambda: io.BytesIO(data)) == "uploaded"
    finally:
        server.stop()
    methods = [s.method for s in server.seen]
    assert methods == ["HEAD", "POST", "PUT", "HEAD", "POST", "PUT"]
