"""Push and pull whole images (and OCI artifacts) between the store and a registry; resumable verified downloads."""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minibuild.digest import CHUNK, Digest
from minibuild.errors import ImageFormatError, RegistryError, StoreError
from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, ENV_MAX_LAYER_BYTES, max_document_bytes, max_layer_bytes
from minibuild.oci.image import Image
from minibuild.oci.model import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_OCI_MANIFEST,
    Descriptor,
    Index,
    Manifest,
    Platform,
)
from minibuild.oci.reference import Reference, parse_reference
from minibuild.record import record
from minibuild.registry.client import IO_CHUNK, ProgressFn, RegistryClient, TransferEvent, _no_progress
from minibuild.registry.transport import NETWORK_ERRORS, RegistryOptions
from minibuild.store import Store
from minibuild.store.blobs import Pin
from minibuild.store.lock import FileLock, atomic_write

KNOWN_BLOBS_FILE = "registry-blobs.json"
PARTIAL_DIR = "partial"
MAX_KNOWN_REPOS = 8


@record
class PushResult:
    """What a push did: the manifest digest now in the registry and what happened to each blob."""

    reference: str
    digest: Digest
    uploaded: tuple[Digest, ...] = ()
    mounted: tuple[Digest, ...] = ()
    existing: tuple[Digest, ...] = ()


@record
class PullResult:
    """What a pull did: the stored image, its digest in the store and in the registry, blobs fetched."""

    reference: str
    image: Image
    digest: Digest  # manifest digest in the store (differs from remote_digest when a Docker manifest was converted)
    remote_digest: Digest  # digest of the manifest the registry served (the platform manifest, not the index)
    downloaded: tuple[Digest, ...] = ()
    present: tuple[Digest, ...] = ()
    resumed: tuple[Digest, ...] = ()


def client_for(ref: Reference, options: RegistryOptions | None) -> RegistryClient:
    return RegistryClient(ref.domain, options)


# ---------------------------------------------------------------- where blobs are known to live (for mounts)
def _known_path(store: Store) -> Path:
    return store.meta_dir / KNOWN_BLOBS_FILE


def known_repositories(store: Store, host: str, digest: Digest) -> tuple[str, ...]:
    """Repositories of ``host`` that held ``digest`` the last times we pushed or pulled it (newest first)."""
    try:
        doc = json.loads(_known_path(store).read_bytes())
        repos = doc.get(host, {}).get(digest.value, [])
        return tuple(r for r in repos if isinstance(r, str))
    except (OSError, ValueError, AttributeError):
        return ()


def remember_blobs(store: Store, host: str, repo: str, digests: Sequence[Digest]) -> None:
    """Record that ``repo`` on ``host`` holds these blobs (kept small; a lost record only costs a re-upload)."""
    path = _known_path(store)
    with FileLock(store.meta_dir / "registry-blobs.lock"):
        try:
            doc: dict[str, Any] = json.loads(path.read_bytes())
            if not isinstance(doc, dict):
                doc = {}
        except (OSError, ValueError):
            doc = {}
        per_host = doc.setdefault(host, {})
        for d in digests:
            repos = [r for r in per_host.get(d.value, []) if r != repo]
            per_host[d.value] = [repo, *repos][:MAX_KNOWN_REPOS]
        atomic_write(path, json.dumps(doc, sort_keys=True).encode(), tmp_dir=store.tmp_dir)


# ---------------------------------------------------------------- resumable verified download
def partial_path(store: Store, digest: Digest) -> Path:
    """The side file a download of ``digest`` accumulates in until it is complete and verified."""
    return store.meta_dir / PARTIAL_DIR / digest.hex


def _write_partial(fh: Any, data: bytes, part: Path, digest: Digest) -> None:
    """Append to (and flush) a partial download; a full disk or another host refusal removes the partial file
    (it is what fills the disk) and is one StoreError line, never retried as if the network had broken."""
    try:
        if data:
            fh.write(data)
        else:
            fh.flush()
    except OSError as err:
        try:
            fh.truncate(0)
        except OSError:
            pass
        part.unlink(missing_ok=True)
        raise StoreError(f"cannot write blob {digest.short} to the store: {err.strerror or err}; "
                         "the partial download was removed") from None


def check_descriptor_size(desc: Descriptor, *, document: bool, where: str) -> None:
    """Refuse (RegistryError) a descriptor claiming more than minibuild accepts: ``MINIBUILD_MAX_DOCUMENT_BYTES``
    for a config, manifest or records document (read into memory), ``MINIBUILD_MAX_LAYER_BYTES`` for a layer."""
    limit, env = (max_document_bytes(), ENV_MAX_DOCUMENT_BYTES) if document else (max_layer_bytes(), ENV_MAX_LAYER_BYTES)
    if desc.size < 0 or (limit is not None and desc.size > limit):
        raise RegistryError(f"{where}: blob {desc.digest.short} claims {desc.size} bytes, more than {limit}, the "
                            f"limit set by {env}; nothing was downloaded")


def download_blob(client: RegistryClient, store: Store, repo: str, digest: Digest, *, size: int,
                  pin: Pin | None = None, progress: ProgressFn = _no_progress) -> str:
    """Fetch a blob of ``size`` bytes (its descriptor's; callers check it with ``check_descriptor_size``) into
    the store: "present" if it already is, "downloaded" or "resumed".

    Bytes accumulate in ``<store>/.minibuild/partial/<hex>`` (flock'ed); a dropped connection continues with
    a Range request (bounded retries), and a later pull resumes what an interrupted one left. Never more than
    ``size`` bytes are read or written; only when the whole file hashes to ``digest`` is it copied into the
    store through a verifying BlobWriter — a partial or corrupt blob is never stored as complete. A server
    sending more than ``size``, or the operation's deadline passing, removes the partial file."""
    if store.blobs.has(digest):
        if pin is not None:
            pin.add(digest)
        progress(TransferEvent(action="pull", digest=digest, status="exists", done=size or 0, total=size))
        return "present"
    part = partial_path(store, digest)
    part.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        status, have = _download(client, store, repo, digest, size, fd, part, pin, progress)
    except RegistryError as exc:
        if isinstance(exc, _Refused) or client.transport.deadline.expired():
            part.unlink(missing_ok=True)  # a limit, not a broken connection: nothing worth resuming
        raise
    progress(TransferEvent(action="pull", digest=digest, status="done", done=have, total=size))
    return status


class _Refused(RegistryError):
    """The server sent more than the descriptor says: the partial file is not worth keeping."""


def _download(client: RegistryClient, store: Store, repo: str, digest: Digest, size: int, fd: int, part: Path,
              pin: Pin | None, progress: ProgressFn) -> tuple[str, int]:
    deadline = client.transport.deadline
    with os.fdopen(fd, "r+b") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RegistryError(f"another process is downloading blob {digest.short} into this store") from None
        status = "downloaded"
        h = hashlib.sha256()
        have = 0
        while chunk := fh.read(CHUNK):  # re-hash what an earlier attempt left
            h.update(chunk)
            have += len(chunk)
        if have > size:
            fh.seek(0)
            fh.truncate()
            h, have = hashlib.sha256(), 0
        if have:
            status = "resumed"
        failures = 0
        while have < size:
            progress(TransferEvent(action="pull", digest=digest, status="resuming" if have else "downloading",
                                   done=have, total=size))
            try:
                resp, start = client.open_blob(repo, digest, offset=have)
            except RegistryError as exc:
                if deadline.expired():
                    raise
                if exc.status is not None and exc.status not in (429,) and exc.status < 500:
                    raise
                failures += 1
                if failures > client.options.retries:
                    raise
                client.transport.backoff(failures - 1, None)
                continue
            if start != have:  # the registry sent the whole blob again
                fh.seek(0)
                fh.truncate()
                h, have = hashlib.sha256(), 0
                status = "downloaded"
            try:
                # one byte more than the descriptor allows is enough to know the server sends too much
                while chunk := resp.raw.read(min(IO_CHUNK, size - have + 1)):
                    if have + len(chunk) > size:
                        raise _Refused(f"blob {digest.short} from {client.domain}/{repo} is larger than its "
                                       f"descriptor's {size} bytes; nothing was stored")
                    h.update(chunk)
                    _write_partial(fh, chunk, part, digest)  # a local refusal is not a network break
                    have += len(chunk)
                    progress(TransferEvent(action="pull", digest=digest, status="downloading", done=have, total=size))
                complete = True
            except NETWORK_ERRORS:
                complete = False
            finally:
                resp.close()
            _write_partial(fh, b"", part, digest)
            if complete and have >= size:
                break
            failures += 1
            if failures > client.options.retries:
                raise RegistryError(f"download of blob {digest.short} from {client.domain}/{repo} broke "
                                    f"{failures} times; {have} bytes kept in {part} for the next pull")
            status = "resumed"
            client.transport.backoff(failures - 1, None)
        actual = "sha256:" + h.hexdigest()
        if actual != digest.value or have != size:
            fh.seek(0)
            fh.truncate()
            part.unlink(missing_ok=True)
            raise RegistryError(f"blob {digest.short} from {client.domain}/{repo} does not match its descriptor "
                                f"(got {have} bytes hashing to {actual[:19]}...); nothing was stored")
        fh.seek(0)
        try:
            store.blobs.put_stream(fh, expected=digest, pin=pin)  # hashes everything again
        except StoreError:
            part.unlink(missing_ok=True)
            raise
        part.unlink(missing_ok=True)
    return status, have


# ---------------------------------------------------------------- platforms
def parse_platform(value: str) -> Platform:
    """``linux/amd64`` or ``linux/arm64/v8`` -> Platform."""
    parts = value.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise RegistryError(f"invalid platform {value!r} (expected OS/ARCH[/VARIANT], e.g. linux/amd64)")
    return Platform(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)


def choose_manifest(index: Index, platform: Platform) -> Descriptor:
    """The index entry for ``platform`` (variant must match when asked; else the first of the arch)."""
    candidates = [d for d in index.manifests if d.media_type in MANIFEST_TYPES and d.platform is not None
                  and d.platform.os == platform.os and d.platform.architecture == platform.architecture]
    if platform.variant:
        exact = [d for d in candidates if d.platform is not None and d.platform.variant == platform.variant]
        candidates = exact
    if not candidates:
        have = ", ".join(sorted({f"{d.platform.os}/{d.platform.architecture}"
                                 + (f"/{d.platform.variant}" if d.platform.variant else "")
                                 for d in index.manifests if d.platform is not None})) or "none"
        want = f"{platform.os}/{platform.architecture}" + (f"/{platform.variant}" if platform.variant else "")
        raise RegistryError(f"the image index has no manifest for {want} (it has: {have})")
    return candidates[0]


# ---------------------------------------------------------------- images
def pull(store: Store, ref: str, *, options: RegistryOptions | None = None, progress: ProgressFn = _no_progress,
         pin: Pin | None = None, tag: str | None = "") -> PullResult:
    """Pull ``ref`` (``host[:port]/repo[:tag|@digest]``) into the store and name it (``tag=""``: ``repo:tag`` of
    the reference — a digest-only reference stays unnamed —, ``None``: unnamed, else that name). An index
    resolves to ``options.platform``; ``downloaded`` includes the ``resumed`` blobs.

    Docker schema2 manifests are stored converted to the OCI form (same config and layer blobs and digests,
    a new manifest digest; ``remote_digest`` keeps the registry's); OCI manifests are stored byte for byte."""
    if pin is None:  # keep what we download alive through a concurrent prune until it is named
        with store.lease() as lease:
            return pull(store, ref, options=options, progress=progress, pin=lease, tag=tag)
    options = options or RegistryOptions()
    reference = parse_reference(ref)
    client = client_for(reference, options)
    repo = reference.path
    fetched = client.get_manifest(repo, reference.digest or reference.tag or "latest")
    if fetched.media_type in INDEX_TYPES:
        try:
            index = Index.from_bytes(fetched.data, f"index {reference}")
        except ImageFormatError as exc:
            raise RegistryError(str(exc)) from None
        chosen = choose_manifest(index, parse_platform(options.platform))
        fetched = client.get_manifest(repo, chosen.digest.value)
        if fetched.digest != chosen.digest:
            raise RegistryError(f"manifest {chosen.digest} of {reference} does not match the index")
    if fetched.media_type not in MANIFEST_TYPES:
        raise RegistryError(f"{reference} is not an image (media type {fetched.media_type!r})")
    try:
        manifest = Manifest.from_bytes(fetched.data, f"manifest of {reference}")
    except ImageFormatError as exc:
        raise RegistryError(str(exc)) from None
    downloaded: list[Digest] = []
    present: list[Digest] = []
    resumed: list[Digest] = []
    for i, desc in enumerate((manifest.config, *manifest.layers)):
        if desc.urls:
            raise RegistryError(f"{reference} has a foreign layer {desc.digest.short} (urls); not supported")
        check_descriptor_size(desc, document=i == 0, where=str(reference))
    for desc in (manifest.config, *manifest.layers):
        outcome = download_blob(client, store, repo, desc.digest, size=desc.size, pin=pin, progress=progress)
        {"present": present, "downloaded": downloaded, "resumed": resumed}[outcome].append(desc.digest)
        if outcome == "resumed":
            downloaded.append(desc.digest)
    try:
        image = Image.from_bytes(fetched.data, store.blobs.read_bytes(manifest.config.digest), where=str(reference))
    except ImageFormatError as exc:
        raise RegistryError(f"{reference}: {exc}") from None
    digest = store.put_image(image, pin=pin)
    remember_blobs(store, client.host, repo, [d.digest for d in (manifest.config, *manifest.layers)])
    name = tag if tag else (f"{reference.repository}:{reference.tag}" if tag == "" and reference.tag else None)
    if name:
        store.tag(name, digest)
    return PullResult(reference=str(reference), image=image, digest=digest, remote_digest=fetched.digest,
                      downloaded=tuple(downloaded), present=tuple(present), resumed=tuple(resumed))


def pull_image(store: Store, ref: str, *, options: RegistryOptions | None = None,
               progress: ProgressFn = _no_progress, pin: Pin | None = None, tag: str | None = "") -> Image:
    """Pull ``ref`` into the store (see ``pull``) and return the Image."""
    return pull(store, ref, options=options, progress=progress, pin=pin, tag=tag).image


def push_blobs(client: RegistryClient, store: Store, repo: str, descriptors: Sequence[Descriptor], *,
               progress: ProgressFn = _no_progress) -> dict[str, list[Digest]]:
    """Push store blobs to ``repo`` (HEAD first, mount from a repo known to hold them, else upload)."""
    out: dict[str, list[Digest]] = {"uploaded": [], "mounted": [], "exists": []}
    seen: set[Digest] = set()
    for desc in descriptors:
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        size = store.blobs.size(desc.digest)
        if size != desc.size:
            raise StoreError(f"blob {desc.digest.short} in the store has {size} bytes, its descriptor says {desc.size}")
        mounts = known_repositories(store, client.host, desc.digest)
        outcome = client.push_blob(repo, desc.digest, size, functools.partial(store.blobs.open, desc.digest),
                                   mount_from=mounts, progress=progress)
        out[outcome].append(desc.digest)
    remember_blobs(store, client.host, repo, sorted(seen))
    return out


def push_image(store: Store, name: str, ref: str, *, options: RegistryOptions | None = None,
               progress: ProgressFn = _no_progress) -> PushResult:
    """Push the stored image ``name`` to ``ref``: blobs (config last), then the manifest under the tag."""
    options = options or RegistryOptions()
    image = store.resolve(name)
    reference = parse_reference(ref)
    client = client_for(reference, options)
    repo = reference.path
    manifest = image.manifest
    done = push_blobs(client, store, repo, (*manifest.layers, manifest.config), progress=progress)
    data = image.manifest_bytes
    digest = client.put_manifest(repo, reference.tag or reference.digest or "latest", data, MEDIA_OCI_MANIFEST)
    if reference.digest and reference.digest != digest.value:
        raise RegistryError(f"{ref} names digest {reference.digest} but the image's manifest is {digest}")
    return PushResult(reference=str(reference), digest=digest, uploaded=tuple(done["uploaded"]),
                      mounted=tuple(done["mounted"]), existing=tuple(done["exists"]))


# ---------------------------------------------------------------- artifacts (e.g. a build cache)
def push_artifact(store: Store, ref: str, manifest: Manifest, *, options: RegistryOptions | None = None,
                  progress: ProgressFn = _no_progress) -> Digest:
    """Push an OCI artifact manifest (any ``artifact_type``/config type) whose config and layer blobs are in
    the store; returns the manifest digest in the registry."""
    reference = parse_reference(ref)
    client = client_for(reference, options or RegistryOptions())
    push_blobs(client, store, reference.path, (*manifest.layers, manifest.config), progress=progress)
    return client.put_manifest(reference.path, reference.tag or reference.digest or "latest", manifest.to_bytes(),
                               manifest.media_type)


def pull_artifact(store: Store, ref: str, *, options: RegistryOptions | None = None, blobs: bool | Sequence[Digest] = True,
                  progress: ProgressFn = _no_progress, pin: Pin | None = None) -> tuple[Manifest, Digest]:
    """Fetch an artifact manifest (verified) and, with ``blobs`` (True = config and all layers, or a list of
    the digests wanted), those blobs into the store. Returns the manifest and its digest; the manifest is
    also stored as a blob (pinned with ``pin``)."""
    reference = parse_reference(ref)
    client = client_for(reference, options or RegistryOptions())
    fetched = client.get_manifest(reference.path, reference.digest or reference.tag or "latest",
                                  accept=(MEDIA_OCI_MANIFEST,))
    try:
        manifest = Manifest.from_bytes(fetched.data, f"artifact {reference}")
    except ImageFormatError as exc:
        raise RegistryError(str(exc)) from None
    store.blobs.put_bytes(fetched.data, expected=fetched.digest, pin=pin)
    wanted = (manifest.config, *manifest.layers)
    for i, desc in enumerate(wanted):
        check_descriptor_size(desc, document=i == 0, where=str(reference))
    if blobs is not True:
        keep = set(blobs) if blobs else set()
        wanted = tuple(d for d in wanted if d.digest in keep)
    for desc in wanted:
        download_blob(client, store, reference.path, desc.digest, size=desc.size, pin=pin, progress=progress)
    remember_blobs(store, client.host, reference.path, [d.digest for d in wanted])
    return manifest, fetched.digest
