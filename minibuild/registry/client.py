"""OCI distribution-spec client for one registry: blob HEAD/GET/upload/mount, manifest GET/PUT, all verified."""

from __future__ import annotations

import hashlib
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO, Protocol

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError, RegistryError
from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, max_document_bytes
from minibuild.oci.model import (
    MEDIA_DOCKER_LIST,
    MEDIA_DOCKER_MANIFEST,
    MEDIA_OCI_INDEX,
    MEDIA_OCI_MANIFEST,
    parse_json,
)
from minibuild.record import record
from minibuild.registry.auth import repository_scope
from minibuild.registry.transport import NETWORK_ERRORS, RegistryOptions, Response, Transport, api_host, error_detail

MANIFEST_ACCEPT = (MEDIA_OCI_MANIFEST, MEDIA_OCI_INDEX, MEDIA_DOCKER_MANIFEST, MEDIA_DOCKER_LIST)
IO_CHUNK = 1 << 16


@record
class TransferEvent:
    """Progress of one blob: ``status`` is checking/exists/mounted/uploading/downloading/resuming/retrying/done."""

    action: str  # "push" or "pull"
    digest: Digest
    status: str
    done: int = 0
    total: int | None = None


ProgressFn = Callable[[TransferEvent], None]


def _no_progress(event: TransferEvent) -> None:
    return None


@record
class FetchedManifest:
    """A manifest or index as received: exact bytes, the media type the registry declared, and its digest."""

    data: bytes
    media_type: str
    digest: Digest


class BlobSink(Protocol):
    """Where downloaded bytes go (a file or a store BlobWriter)."""

    def write(self, data: bytes) -> int: ...


def read_capped(resp: Response, limit: int | None, what: str) -> bytes:
    """A whole (small) body, refused with RegistryError once it passes ``limit`` bytes (read in chunks)."""
    declared = resp.header("Content-Length")
    if limit is not None and declared and declared.isdigit() and int(declared) > limit:
        raise RegistryError(f"{what} is {declared} bytes, more than {limit}, the limit on a JSON document set by "
                            f"{ENV_MAX_DOCUMENT_BYTES}")
    parts: list[bytes] = []
    total = 0
    while chunk := resp.raw.read(IO_CHUNK):
        total += len(chunk)
        if limit is not None and total > limit:
            raise RegistryError(f"{what} is larger than {limit} bytes, the limit on a JSON document set by "
                                f"{ENV_MAX_DOCUMENT_BYTES}")
        parts.append(chunk)
    return b"".join(parts)


def _sha256_digest(value: str | None) -> Digest | None:
    if value and value.startswith("sha256:"):
        try:
            return Digest(value.strip())
        except ImageFormatError:
            return None
    return None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


class RegistryClient:
    """A client for one registry host (``127.0.0.1:5000``, ``ghcr.io``; docker.io is mapped to its API host)."""

    def __init__(self, domain: str, options: RegistryOptions | None = None, *,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.domain = domain
        self.options = options or RegistryOptions()
        self.transport = Transport(api_host(domain), self.options, sleep=sleep)

    @property
    def host(self) -> str:
        return self.transport.host

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _pull(repo: str) -> tuple[str, ...]:
        return (repository_scope(repo, "pull"),)

    @staticmethod
    def _push(repo: str) -> tuple[str, ...]:
        return (repository_scope(repo, "pull,push"),)

    def _fail(self, what: str, resp: Response) -> RegistryError:
        return RegistryError(f"{what} on {self.host}: {error_detail(resp)}", status=resp.status)

    def ping(self) -> None:
        """GET /v2/: the registry speaks the distribution API (401 is fine: auth happens per repository)."""
        resp = self.transport.request("GET", "/v2/")
        resp.read()
        if resp.status not in (200, 401):
            raise RegistryError(f"{self.host} is not an OCI registry (GET /v2/ answered HTTP {resp.status})",
                                status=resp.status)

    # ------------------------------------------------------------ blobs
    def blob_size(self, repo: str, digest: Digest) -> int | None:
        """HEAD the blob: its size when the repository has it, None when it does not."""
        resp = self.transport.request("HEAD", f"/v2/{repo}/blobs/{digest}", scopes=self._pull(repo))
        resp.read()
        if resp.status == 200:
            length = resp.header("Content-Length")
            return int(length) if length and length.isdigit() else -1
        if resp.status == 404:
            return None
        raise self._fail(f"HEAD blob {digest.short} in {repo}", resp)

    def open_blob(self, repo: str, digest: Digest, *, offset: int = 0) -> tuple[Response, int]:
        """GET a blob from ``offset`` (Range request when > 0): the streaming response and the offset it
        really starts at (0 when the registry ignored the Range). Close the response when done."""
        headers = {"Range": f"bytes={offset}-"} if offset > 0 else {}
        resp = self.transport.request("GET", f"/v2/{repo}/blobs/{digest}", scopes=self._pull(repo), headers=headers)
        if resp.status == 200:
            return resp, 0
        if resp.status == 206 and offset > 0:
            start = _content_range_start(resp.header("Content-Range"))
            if start != offset:
                resp.close()
                raise RegistryError(f"GET blob {digest.short}: registry answered Range {offset}- with "
                                    f"{resp.header('Content-Range')!r}")
            return resp, offset
        if resp.status == 416 and offset > 0:
            resp.read()
            return self.open_blob(repo, digest, offset=0)
        raise self._fail(f"GET blob {digest.short} from {repo}", resp)

    def fetch_blob(self, repo: str, digest: Digest, sink: BlobSink, *, expected_size: int | None = None,
                   progress: ProgressFn = _no_progress) -> int:
        """Stream a whole blob into ``sink`` (no resume; see transfer.download_blob) verifying its sha256;
        raises RegistryError on a digest or size mismatch (the caller must then discard what ``sink`` got)."""
        resp, _ = self.open_blob(repo, digest)
        h = hashlib.sha256()
        n = 0
        try:
            while chunk := resp.raw.read(IO_CHUNK):
                h.update(chunk)
                sink.write(chunk)
                n += len(chunk)
                progress(TransferEvent(action="pull", digest=digest, status="downloading", done=n, total=expected_size))
        except NETWORK_ERRORS as exc:
            raise RegistryError(f"download of blob {digest.short} broke after {n} bytes: {exc}") from None
        finally:
            resp.close()
        if "sha256:" + h.hexdigest() != digest.value:
            raise RegistryError(f"blob {digest.short} from {repo} does not match its digest")
        if expected_size is not None and n != expected_size:
            raise RegistryError(f"blob {digest.short} from {repo} has {n} bytes, descriptor says {expected_size}")
        return n

    def mount_blob(self, repo: str, digest: Digest, from_repo: str) -> str | None:
        """Cross-repository mount: ``None`` when mounted (201); else the upload URL the registry opened
        instead (202), to upload to normally."""
        query = urllib.parse.urlencode({"mount": str(digest), "from": from_repo})
        resp = self.transport.request("POST", f"/v2/{repo}/blobs/uploads/?{query}",
                                      scopes=self._push(repo) + self._pull(from_repo),
                                      headers={"Content-Length": "0"}, body=b"")
        resp.read()
        if resp.status == 201:
            return None
        if resp.status == 202:
            return self._location(resp, "mount")
        raise self._fail(f"mount blob {digest.short} from {from_repo} into {repo}", resp)

    def start_upload(self, repo: str) -> str:
        """POST /blobs/uploads/: open an upload session; returns its URL."""
        resp = self.transport.request("POST", f"/v2/{repo}/blobs/uploads/", scopes=self._push(repo),
                                      headers={"Content-Length": "0"}, body=b"")
        resp.read()
        if resp.status != 202:
            raise self._fail(f"start blob upload to {repo}", resp)
        return self._location(resp, "upload")

    def _location(self, resp: Response, what: str) -> str:
        loc = resp.header("Location")
        if not loc:
            raise RegistryError(f"{what} response from {self.host} has no Location header")
        return urllib.parse.urljoin(resp.url, loc)

    @staticmethod
    def _with_digest(url: str, digest: Digest) -> str:
        return url + ("&" if "?" in url else "?") + urllib.parse.urlencode({"digest": str(digest)})

    def upload_monolithic(self, repo: str, location: str, digest: Digest, size: int,
                          opener: Callable[[], BinaryIO], *, progress: ProgressFn = _no_progress) -> None:
        """PUT <location>?digest= with the whole blob as the body (not retried here: the caller restarts)."""
        def body() -> Iterator[bytes]:
            done = 0
            with opener() as fh:
                while chunk := fh.read(IO_CHUNK):
                    done += len(chunk)
                    yield chunk
                    progress(TransferEvent(action="push", digest=digest, status="uploading", done=done, total=size))

        resp = self.transport.request("PUT", self._with_digest(location, digest), scopes=self._push(repo),
                                      headers={"Content-Type": "application/octet-stream",
                                               "Content-Length": str(size)}, body=body, retry=False)
        resp.read()
        if resp.status != 201:
            raise self._fail(f"upload of blob {digest.short} to {repo}", resp)

    def upload_chunked(self, repo: str, location: str, digest: Digest, size: int,
                       opener: Callable[[], BinaryIO], *, chunk_size: int,
                       progress: ProgressFn = _no_progress) -> None:
        """PATCH the blob in ``chunk_size`` pieces (Content-Range), then PUT ?digest= with no body.

        A chunk whose connection drops is retried after asking the session how much it holds (GET
        <location> -> Range), so an interrupted large upload continues where it stopped; when the registry
        has dropped the session instead (distribution 2.8 cancels one a cut PATCH left at an uneven
        offset), a status-less RegistryError makes ``push_blob`` restart the blob."""
        offset = 0
        failures = 0
        fh = opener()
        try:
            while offset < size:
                data = fh.read(min(chunk_size, size - offset))
                try:
                    resp = self.transport.request(
                        "PATCH", location, scopes=self._push(repo), body=data, retry=False,
                        headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
                                 "Content-Range": f"{offset}-{offset + len(data) - 1}"})
                    resp.read()
                except RegistryError:
                    failures += 1
                    if failures > self.options.retries:
                        raise
                    self.transport.backoff(failures - 1, None)
                    progress(TransferEvent(action="push", digest=digest, status="retrying", done=offset, total=size))
                    try:
                        location, offset = self.upload_status(repo, location)
                    except RegistryError as exc:  # e.g. distribution cancels a session a cut PATCH left uneven
                        raise RegistryError(f"upload session of blob {digest.short} was lost after a dropped "
                                            f"connection ({exc})") from None  # status None: push_blob restarts
                    fh.close()
                    fh = opener()  # blob streams need not be seekable: skip to what the session holds
                    skip = offset
                    while skip > 0:
                        skipped = len(fh.read(min(IO_CHUNK, skip)))
                        if not skipped:
                            raise RegistryError(f"upload of blob {digest.short}: the registry holds more than it")
                        skip -= skipped
                    continue
                if resp.status != 202:
                    raise self._fail(f"upload chunk {offset} of blob {digest.short} to {repo}", resp)
                location = self._location(resp, "upload chunk")
                offset += len(data)
                progress(TransferEvent(action="push", digest=digest, status="uploading", done=offset, total=size))
        finally:
            fh.close()
        resp = self.transport.request("PUT", self._with_digest(location, digest), scopes=self._push(repo),
                                      headers={"Content-Length": "0"}, body=b"", retry=False)
        resp.read()
        if resp.status != 201:
            raise self._fail(f"finish upload of blob {digest.short} to {repo}", resp)

    def upload_status(self, repo: str, location: str) -> tuple[str, int]:
        """GET an upload session: (its current URL, bytes it holds)."""
        resp = self.transport.request("GET", location, scopes=self._push(repo))
        resp.read()
        if resp.status not in (202, 204):
            raise self._fail("upload status", resp)
        m = re.match(r"(?:bytes=)?0-(\d+)", resp.header("Range") or "")
        held = int(m.group(1)) + 1 if m else 0
        return self._location(resp, "upload status") if resp.header("Location") else location, held

    def push_blob(self, repo: str, digest: Digest, size: int, opener: Callable[[], BinaryIO], *,
                  mount_from: Sequence[str] = (), progress: ProgressFn = _no_progress) -> str:
        """Make ``repo`` hold the blob: "exists" (HEAD found it), "mounted" (from another repo) or "uploaded".

        Uploads are monolithic up to ``options.monolithic_max`` bytes, chunked above; a failed upload is
        restarted (bounded by ``options.retries``) after checking whether the blob arrived after all."""
        progress(TransferEvent(action="push", digest=digest, status="checking", total=size))
        if self.blob_size(repo, digest) is not None:
            progress(TransferEvent(action="push", digest=digest, status="exists", done=size, total=size))
            return "exists"
        location: str | None = None
        for source in mount_from:
            if source == repo:
                continue
            try:
                location = self.mount_blob(repo, digest, source)
            except RegistryError:
                location = None  # a refused mount is not fatal: upload instead
                continue
            if location is None:
                progress(TransferEvent(action="push", digest=digest, status="mounted", done=size, total=size))
                return "mounted"
            break
        attempt = 0
        while True:
            try:
                if location is None:
                    location = self.start_upload(repo)
                if size > self.options.monolithic_max:
                    self.upload_chunked(repo, location, digest, size, opener, chunk_size=self.options.chunk_size,
                                        progress=progress)
                else:
                    self.upload_monolithic(repo, location, digest, size, opener, progress=progress)
                break
            except RegistryError as exc:
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    raise
                if attempt >= self.options.retries:
                    raise RegistryError(f"upload of blob {digest.short} to {repo} failed after {attempt + 1} "
                                        f"attempts: {exc}") from None
                self.transport.backoff(attempt, None)
                attempt += 1
                progress(TransferEvent(action="push", digest=digest, status="retrying", total=size))
                location = None
                if self.blob_size(repo, digest) is not None:
                    break
        progress(TransferEvent(action="push", digest=digest, status="done", done=size, total=size))
        return "uploaded"

    # ------------------------------------------------------------ manifests
    def get_manifest(self, repo: str, reference: str, *, accept: Sequence[str] = MANIFEST_ACCEPT) -> FetchedManifest:
        """GET a manifest or index by tag or digest; verified against the digest reference or the registry's
        Docker-Content-Digest header."""
        resp = self.transport.request("GET", f"/v2/{repo}/manifests/{reference}", scopes=self._pull(repo),
                                      headers={"Accept": ", ".join(accept)})
        if resp.status == 404:
            resp.read()
            raise RegistryError(f"{self.domain}/{repo}:{reference} not found (no such manifest)", status=404)
        if resp.status != 200:
            raise self._fail(f"GET manifest {repo}:{reference}", resp)
        limit = max_document_bytes()
        try:
            data = read_capped(resp, limit, f"manifest {repo}:{reference}")
        except NETWORK_ERRORS as exc:
            raise RegistryError(f"GET manifest {repo}:{reference}: {exc}") from None
        finally:
            resp.close()
        digest = Digest.of_bytes(data)
        wanted = _sha256_digest(reference) if reference.startswith("sha256:") else None
        if reference.startswith("sha256:") and wanted != digest:
            raise RegistryError(f"manifest {repo}@{reference} does not match its digest (got {digest})")
        header = _sha256_digest(resp.header("Docker-Content-Digest"))
        if header is not None and header != digest:
            raise RegistryError(f"manifest {repo}:{reference} does not match the registry's Docker-Content-Digest")
        media_type = (resp.header("Content-Type") or "").split(";")[0].strip()
        try:
            declared = parse_json(data, f"manifest {repo}:{reference}").get("mediaType")
        except ImageFormatError as exc:
            raise RegistryError(str(exc)) from None
        if isinstance(declared, str) and declared:
            media_type = declared
        return FetchedManifest(data=data, media_type=media_type, digest=digest)

    def manifest_exists(self, repo: str, reference: str) -> Digest | None:
        """HEAD a manifest: its digest (from Docker-Content-Digest) when present, None when absent."""
        resp = self.transport.request("HEAD", f"/v2/{repo}/manifests/{reference}", scopes=self._pull(repo),
                                      headers={"Accept": ", ".join(MANIFEST_ACCEPT)})
        resp.read()
        if resp.status == 404:
            return None
        if resp.status != 200:
            raise self._fail(f"HEAD manifest {repo}:{reference}", resp)
        return _sha256_digest(resp.header("Docker-Content-Digest"))

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> Digest:
        """PUT a manifest, index or artifact manifest under a tag or its digest; returns its digest
        (checked against the registry's Docker-Content-Digest)."""
        digest = Digest.of_bytes(data)
        resp = self.transport.request("PUT", f"/v2/{repo}/manifests/{reference}", scopes=self._push(repo),
                                      headers={"Content-Type": media_type, "Content-Length": str(len(data))},
                                      body=data)
        resp.read()
        if resp.status != 201:
            raise self._fail(f"PUT manifest {repo}:{reference}", resp)
        header = _sha256_digest(resp.header("Docker-Content-Digest"))
        if header is not None and header != digest:
            raise RegistryError(f"registry stored manifest {repo}:{reference} as {header}, expected {digest}")
        return digest
