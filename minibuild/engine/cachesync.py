"""Shared build cache: export the cache records a build used (registry artifact, OCI layout, inline) and import them lazily."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from minibuild.digest import Digest, canonical_json
from minibuild.errors import ConfigError, ImageFormatError, RegistryError, StoreError
from minibuild.oci.image import Image, Layer
from minibuild.oci.model import MEDIA_OCI_LAYER, MEDIA_OCI_MANIFEST, Descriptor, History, Manifest
from minibuild.record import record
from minibuild.store import Store
from minibuild.store.blobs import Pin
from minibuild.units import image_size

CACHE_ARTIFACT_TYPE = "application/vnd.minibuild.cache.v1"
CACHE_CONFIG_TYPE = "application/vnd.minibuild.cache.config.v1+json"
INLINE_KEY = "minibuild.cache.v1"  # key in the image config's "config" object holding an inline cache (like BuildKit's inline)
SOURCE_FIELD = "cache_source"  # set on imported records: where the record came from (shown in HIT reasons)
# step-history records (explain's memory of a step's inputs and per-file checksums) travel too: without them
# the first build on a fresh store would extract COPY --from source stages only to record file checksums
# exported-layer records (minibuild.engine.export: which blob a layer clamps to) are computed where they are used:
# never sent, and never taken from a cache source (a claim of what a layer exports as is not checked on import)
_SKIP_KINDS: frozenset[str] = frozenset({"exported-layer"})


@record
class CacheSpec:
    """One ``--cache-from``/``--cache-to`` value: type registry (ref), local (path), image (ref), inline."""

    type: str
    ref: str = ""
    path: Path | None = None

    @property
    def label(self) -> str:
        """How a hit from this source is described: ``registry 127.0.0.1:5000/cache:main``."""
        if self.type == "local":
            return f"local {self.path}"
        return f"{self.type} {self.ref}" if self.ref else self.type


def parse_cache_spec(value: str, *, export: bool) -> CacheSpec:
    """Parse ``type=registry,ref=R`` | ``type=local,dest=DIR`` / ``src=DIR`` | ``type=inline`` | an image
    name or tarball path (``--cache-from`` only; same as ``type=image,ref=NAME``)."""
    opt = "--cache-to" if export else "--cache-from"
    if "=" not in value:
        if export:
            raise ConfigError(f"invalid {opt} {value!r}: expected type=registry,ref=REF, type=local,dest=DIR "
                              f"or type=inline")
        return CacheSpec(type="image", ref=value)
    fields: dict[str, str] = {}
    for part in value.split(","):
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ConfigError(f"invalid {opt} {value!r}: {part!r} is not KEY=VALUE")
        fields[k.strip()] = v.strip()
    kind = fields.pop("type", "")
    known = {"registry": {"ref", "mode"}, "local": {"dest" if export else "src", "tag"},
             "inline": set(), "image": {"ref"}}
    if kind not in known or (kind == "image" and export) or (kind == "inline" and not export):
        allowed = "registry, local, inline" if export else "registry, local, image"
        raise ConfigError(f"invalid {opt} {value!r}: type must be one of {allowed}")
    extra = set(fields) - known[kind]
    if extra:
        raise ConfigError(f"invalid {opt} {value!r}: unknown option(s) {', '.join(sorted(extra))} for type={kind}")
    if kind in ("registry", "image"):
        if not fields.get("ref"):
            raise ConfigError(f"invalid {opt} {value!r}: type={kind} needs ref=")
        return CacheSpec(type=kind, ref=fields["ref"])
    if kind == "local":
        d = fields.get("dest" if export else "src")
        if not d:
            raise ConfigError(f"invalid {opt} {value!r}: type=local needs {'dest' if export else 'src'}=DIR")
        return CacheSpec(type="local", path=Path(d), ref=fields.get("tag", ""))
    return CacheSpec(type=kind)


def hit_reason(record: dict[str, Any]) -> str:
    """The explain reason of a cache hit: ``HIT``, or ``HIT (cache from registry HOST/REPO:TAG)``."""
    src = record.get(SOURCE_FIELD)
    return f"HIT (cache from {src})" if isinstance(src, str) and src else "HIT"


# ---------------------------------------------------------------- the records document
def collect_records(store: Store, keys: Sequence[str]) -> list[dict[str, Any]]:
    """The cache records under ``keys`` (a build's step keys), sorted by key, without local-only fields."""
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        if not key or key in out:
            continue
        got = store.cache.entry(key)
        if got is None:
            continue
        record, refs = got
        if record.get("kind") in _SKIP_KINDS:
            continue
        if not all(store.blobs.available(r) for r in refs):
            continue
        rec = {k: v for k, v in record.items() if k != SOURCE_FIELD}
        out[key] = {"key": key, "record": rec, "refs": sorted(r.value for r in refs)}
    return [out[k] for k in sorted(out)]


def records_document(records: Sequence[dict[str, Any]]) -> bytes:
    return canonical_json({"mediaType": CACHE_CONFIG_TYPE, "records": list(records)})


def parse_records(data: bytes, where: str) -> list[dict[str, Any]]:
    """The records of a cache document; ImageFormatError when it is not one."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ImageFormatError(f"{where}: cache records are not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise ImageFormatError(f"{where}: not a minibuild cache document (no records list)")
    out = []
    for r in doc["records"]:
        if (isinstance(r, dict) and isinstance(r.get("key"), str) and isinstance(r.get("record"), dict)
                and isinstance(r.get("refs"), list) and all(isinstance(x, str) for x in r["refs"])):
            out.append(r)
    return out


def _layer_types(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    types: dict[str, str] = {}
    for r in records:
        lr = r["record"].get("layer")
        if isinstance(lr, dict) and isinstance(lr.get("digest"), str):
            types[lr["digest"]] = str(lr.get("mediaType") or MEDIA_OCI_LAYER)
    return types


def cache_manifest(store: Store, records: Sequence[dict[str, Any]], *, pin: Pin | None) -> Manifest:
    """The artifact manifest: the records document as config, every blob they name as a layer."""
    data = records_document(records)
    cfg = store.blobs.put_bytes(data, pin=pin)
    types = _layer_types(records)
    refs = sorted({ref for r in records for ref in r["refs"]})
    layers = tuple(Descriptor(media_type=types.get(ref, "application/octet-stream"), digest=Digest(ref),
                              size=store.blobs.size(Digest(ref))) for ref in refs)
    return Manifest(config=Descriptor(media_type=CACHE_CONFIG_TYPE, digest=cfg, size=len(data)), layers=layers,
                    artifact_type=CACHE_ARTIFACT_TYPE)


# ---------------------------------------------------------------- export
@record
class CacheExport:
    """What ``export_cache`` wrote: where, how many records, which blobs, and the artifact's digest."""

    destination: str
    records: int
    blobs: tuple[Digest, ...]
    digest: Digest | None


def export_cache(store: Store, keys: Sequence[str], spec: CacheSpec, *, options: Any = None) -> CacheExport:
    """Write the records under ``keys`` and their blobs to a registry artifact or an OCI layout directory."""
    records = collect_records(store, keys)
    with store.lease() as lease:
        manifest = cache_manifest(store, records, pin=lease)
        blobs = tuple(d.digest for d in manifest.layers)
        if spec.type == "registry":
            from minibuild.registry import push_artifact

            digest = push_artifact(store, spec.ref, manifest, options=options)
        elif spec.type == "local":
            assert spec.path is not None
            digest = write_layout(store, spec.path, manifest, tag=spec.ref or "latest")
        else:
            raise ConfigError(f"cache export type={spec.type} is handled by the build (see docs/cache-sharing.md)")
    return CacheExport(destination=spec.label, records=len(records), blobs=blobs, digest=digest)


def write_layout(store: Store, path: Path, manifest: Manifest, *, tag: str) -> Digest:
    """Write (or update) an OCI layout directory holding ``manifest`` under the ref name ``tag``."""
    blobs_dir = path / "blobs" / "sha256"
    try:
        blobs_dir.mkdir(parents=True, exist_ok=True)
        for desc in (manifest.config, *manifest.layers):
            target = blobs_dir / desc.digest.hex
            if target.is_file() and target.stat().st_size == desc.size:
                continue
            tmp = blobs_dir / f".tmp-{desc.digest.hex}-{os.getpid()}"
            with store.blobs.open(desc.digest) as src, open(tmp, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.replace(tmp, target)
        data = manifest.to_bytes()
        digest = Digest.of_bytes(data)
        (blobs_dir / digest.hex).write_bytes(data)
        (path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        index_path = path / "index.json"
        entries: list[Any] = []
        if index_path.is_file():
            old = json.loads(index_path.read_bytes())
            entries = [m for m in old.get("manifests", [])
                       if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") != tag]
        entries.append({"mediaType": MEDIA_OCI_MANIFEST, "digest": digest.value, "size": len(data),
                        "artifactType": CACHE_ARTIFACT_TYPE,
                        "annotations": {"org.opencontainers.image.ref.name": tag}})
        tmp_index = path / f".index-{os.getpid()}.json"
        tmp_index.write_bytes(canonical_json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                              "manifests": entries}))
        os.replace(tmp_index, index_path)
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot write cache to {path}: {exc}") from None
    return digest


# ---------------------------------------------------------------- import: remote blob sources
@dataclass(slots=True, kw_only=True)
class RegistrySource:
    """Layer blobs of a registry cache artifact, downloaded (resumable, verified) only when needed."""

    name: str
    store: Store
    client: Any
    repo: str
    sizes: dict[Digest, int] = field(default_factory=dict)

    def blob_size(self, digest: Digest) -> int | None:
        return self.sizes.get(digest)

    def fetch(self, digest: Digest, pin: Pin | None) -> None:
        from minibuild.registry import download_blob

        self.client.transport.restart_deadline()  # fetched whenever the build needs it: its own deadline
        download_blob(self.client, self.store, self.repo, digest, size=self.sizes[digest], pin=pin)


@dataclass(slots=True, kw_only=True)
class LayoutSource:
    """Layer blobs of an OCI layout cache directory, copied (verified) only when needed."""

    name: str
    store: Store
    path: Path
    sizes: dict[Digest, int] = field(default_factory=dict)

    def blob_size(self, digest: Digest) -> int | None:
        return self.sizes.get(digest)

    def fetch(self, digest: Digest, pin: Pin | None) -> None:
        try:
            with open(self.path / "blobs" / "sha256" / digest.hex, "rb") as src:
                self.store.blobs.put_stream(src, expected=digest, pin=pin)
        except OSError as exc:
            raise StoreError(f"cannot read blob {digest.short} from cache {self.path}: {exc}") from None


def _read_document(path: Path) -> bytes:
    """A JSON document of a cache layout, refused beyond ``MINIBUILD_MAX_DOCUMENT_BYTES`` (it is read whole)."""
    from minibuild.limits import ENV_MAX_DOCUMENT_BYTES, max_document_bytes

    limit = max_document_bytes()
    with open(path, "rb") as fh:
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:
        raise StoreError(f"cache {path.parent}: {path.name} is larger than {limit} bytes, the limit on a JSON "
                         f"document set by {ENV_MAX_DOCUMENT_BYTES}")
    return data


def read_layout(path: Path, tag: str = "") -> tuple[Manifest, bytes]:
    """The cache manifest in an OCI layout directory (by ref name ``tag``, else the only cache in it) and its
    records document, both verified against their digests."""
    def blob(d: Digest) -> bytes:
        try:
            data = _read_document(path / "blobs" / "sha256" / d.hex)
        except OSError as exc:
            raise StoreError(f"cannot read cache {path}: {exc}") from None
        if Digest.of_bytes(data) != d:
            raise StoreError(f"cache {path}: blob {d.short} does not match its digest")
        return data
    try:
        index = json.loads(_read_document(path / "index.json"))
    except (OSError, ValueError) as exc:
        raise StoreError(f"cannot read cache {path}/index.json: {exc}") from None
    cands = [m for m in index.get("manifests", []) if isinstance(m, dict)]
    if tag:
        cands = [m for m in cands if (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == tag]
    cands = [m for m in cands if m.get("artifactType") in (None, CACHE_ARTIFACT_TYPE)]
    if not cands:
        raise StoreError(f"no minibuild cache{' tagged ' + tag if tag else ''} in {path}")
    manifest = Manifest.from_bytes(blob(Digest(cands[-1]["digest"])), f"cache {path}")
    if manifest.artifact_type != CACHE_ARTIFACT_TYPE:
        raise StoreError(f"{path}: the manifest is not a minibuild cache (artifactType {manifest.artifact_type})")
    return manifest, blob(manifest.config.digest)


def import_records(store: Store, records: Sequence[dict[str, Any]], source: str) -> int:
    """Add records to the store's cache (a usable local record for the same key wins); returns how many."""
    n = 0
    for r in records:
        key = r["key"]
        if r["record"].get("kind") in _SKIP_KINDS or store.cache.get(key) is not None:
            continue
        try:
            refs = tuple(Digest(x) for x in r["refs"])
        except ImageFormatError:
            continue
        store.cache.put(key, {**r["record"], SOURCE_FIELD: source}, refs)
        n += 1
    return n


@record
class CacheImport:
    """One imported cache source: its label, the records it offered and how many were added."""

    source: str
    records: int
    imported: int
    image: Image | None = field(default=None, repr=False, compare=False)  # a local image: its history is a source
    warning: str = ""  # the source was usable only in part, or not at all (the build goes on, as BuildKit's)


def import_cache(store: Store, spec: CacheSpec, *, options: Any = None, pin: Pin | None = None) -> CacheImport:
    """Import a cache source's records (never its layer blobs) and register the blobs as a remote source of
    ``store`` (for registry and local caches; images/tarballs carry their blobs with them)."""
    if spec.type == "registry":
        from minibuild.oci.reference import parse_reference
        from minibuild.registry import download_blob, pull_artifact
        from minibuild.registry.transfer import client_for

        manifest, _ = pull_artifact(store, spec.ref, options=options, blobs=False, pin=pin)
        if manifest.artifact_type != CACHE_ARTIFACT_TYPE:
            raise RegistryError(f"{spec.ref} is not a minibuild cache (artifactType {manifest.artifact_type})")
        ref = parse_reference(spec.ref)
        client = client_for(ref, options)
        download_blob(client, store, ref.path, manifest.config.digest, size=manifest.config.size, pin=pin)
        data = store.blobs.read_bytes(manifest.config.digest)
        store.blobs.remote.append(RegistrySource(name=spec.label, store=store, client=client, repo=ref.path,
                                                 sizes={d.digest: d.size for d in manifest.layers}))
    elif spec.type == "local":
        assert spec.path is not None
        manifest, data = read_layout(spec.path, spec.ref)
        store.blobs.remote.append(LayoutSource(name=spec.label, store=store, path=spec.path,
                                               sizes={d.digest: d.size for d in manifest.layers}))
    elif spec.type == "image":
        try:
            image = _image_for(store, spec.ref)
        except StoreError as exc:
            if os.path.exists(spec.ref):
                raise
            return CacheImport(source=spec.label, records=0, imported=0,
                               warning=f"--cache-from {spec.ref}: {exc}; not used as a cache source")
        raw = dict(image.config.extra_config).get(INLINE_KEY)
        if raw is None:
            return CacheImport(source=spec.label, records=0, imported=0, image=image,
                               warning=f"--cache-from {spec.ref}: the image carries no inline cache; its history "
                                       f"is matched against the steps instead (as Docker's classic builder)")
        data = raw.encode("utf-8")
        records = parse_records(data, spec.label)
        return CacheImport(source=spec.label, records=len(records), image=image,
                           imported=import_records(store, records, spec.label))
    else:
        raise ConfigError(f"--cache-from type={spec.type} is not supported")
    records = parse_records(data, spec.label)
    return CacheImport(source=spec.label, records=len(records), imported=import_records(store, records, spec.label))


def _image_for(store: Store, ref: str) -> Image:
    """A stored image, or the image in a tarball / OCI layout path (loaded into the store)."""
    if os.path.exists(ref):
        from minibuild.oci.archive import import_archive

        loaded = import_archive(store, ref)
        if len(loaded) != 1:
            raise StoreError(f"--cache-from {ref}: the archive holds {len(loaded)} images; name one in the store")
        return loaded[0].image
    return store.resolve(ref)


def _exported_layers(store: Store, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
    """store layer digest -> the layer it was exported as (minibuild.engine.export), from the build's records."""
    from minibuild.engine.export import exported_source

    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        source = exported_source(key)
        rec = store.cache.get(key) if source is not None else None
        if source is not None and rec is not None and isinstance(rec.get("layer"), dict):
            out[source.value] = rec["layer"]
    return out


def _as_exported(r: dict[str, Any], exported: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A record whose layer the image holds only as its exported (clamped) version, naming that version."""
    layer = r["record"].get("layer")
    if not isinstance(layer, dict) or layer.get("digest") not in exported:
        return r
    new = exported[layer["digest"]]
    refs = sorted({*(x for x in r["refs"] if x != layer["digest"]), new["digest"]})
    return {**r, "record": {**r["record"], "layer": new}, "refs": refs}


def inline_cache(store: Store, image: Image, keys: Sequence[str]) -> Image:
    """``image`` with the records under ``keys`` in its config (key ``minibuild.cache.v1``); only records
    whose blobs are layers of the image are kept, so the image carries everything its cache needs. A record
    names the image's (exported, mtimes clamped) version of its layer: a hit brings that layer."""
    layers = {layer.digest.value for layer in image.layers}
    exported = _exported_layers(store, keys)
    records = [r for r in (_as_exported(r, exported) for r in collect_records(store, keys))
               if set(r["refs"]) <= layers]
    extra = dict(image.config.extra_config)
    extra[INLINE_KEY] = records_document(records).decode("utf-8")
    return image.with_config(extra_config=extra)


# ---------------------------------------------------------------- a local image's history as a cache source
CHAIN_KINDS = frozenset({"run", "workdir", "metadata"})  # step kinds an image's history can stand for


@record
class ChainHit:
    """A step found in a ``--cache-from`` image's history: which source, and the layer it made (None: empty)."""

    source: str
    layer: Layer | None


def _same_entry(a: History, b: History) -> bool:
    return (a.created_by, a.empty_layer, a.comment) == (b.created_by, b.empty_layer, b.comment)


def chain_hit(sources: Sequence[tuple[str, Image]], image: Image, created_by: str, *,
              recorded: bool = False) -> ChainHit | None:
    """Docker's classic ``--cache-from`` rule (moby ``image/cache``: ``isValidParent`` + ``isValidConfig``): a
    step hits candidate C when the stage so far (``image``: its history entries and layer diff_ids) is a prefix
    of C's, and C's next history entry was created by the same instruction text. ``recorded``: ``image``'s
    history already ends with this step's own (empty-layer) entry. The first candidate that fits wins."""
    done = image.config.history
    n = len(done) - 1 if recorded else len(done)
    if n < 0:
        return None
    diff_ids = image.diff_ids
    for label, cand in sources:
        hist = cand.config.history
        if len(hist) <= n or hist[n].created_by != created_by:
            continue
        if not all(_same_entry(a, b) for a, b in zip(hist[:n], done[:n])):
            continue
        if cand.diff_ids[:len(diff_ids)] != diff_ids or len(cand.layers) < len(diff_ids):
            continue
        if recorded:
            if hist[n].empty_layer and _same_entry(hist[n], done[n]):
                return ChainHit(source=label, layer=None)
            continue
        if hist[n].empty_layer:
            return ChainHit(source=label, layer=None)
        # the layers before this entry are the image's: the next one is this step's
        if sum(not h.empty_layer for h in hist[:n]) != len(diff_ids) or len(cand.layers) <= len(diff_ids):
            continue
        return ChainHit(source=label, layer=cand.layers[len(diff_ids)])
    return None


# ---------------------------------------------------------------- a build with cache sources and a pull hook
@contextmanager
def cache_sources(store: Store, specs: Sequence[CacheSpec], *, options: Any = None) -> Iterator[list[CacheImport]]:
    """Import every source for the duration of a build; the remote blob sources are detached afterwards.
    Lazily fetched blobs are pinned by a lease held for the whole block."""
    before = len(store.blobs.remote)
    with store.lease() as lease:
        try:
            yield [_import_or_warn(store, s, options=options, pin=lease) for s in specs]
        finally:
            del store.blobs.remote[before:]


def _import_or_warn(store: Store, spec: CacheSpec, *, options: Any, pin: Pin) -> CacheImport:
    """``import_cache``, where a registry or layout cache that cannot be read is a warning, as BuildKit's
    ("failed to configure registry cache importer", "local cache import at ... not found"): the build goes on
    without it. (An image or tarball source warns or fails in ``import_cache`` itself.)"""
    try:
        return import_cache(store, spec, options=options, pin=pin)
    except (RegistryError, StoreError, ImageFormatError) as exc:
        if spec.type == "image":
            raise
        return CacheImport(source=spec.label, records=0, imported=0,
                           warning=f"--cache-from {spec.label}: {exc}; not used as a cache source")


@contextmanager
def recording_keys(store: Store) -> Iterator[list[str]]:
    """Within the block, the keys of every cache record the build read (hit) or wrote, in order: the steps'
    records and helper records such as COPY --from checksum memos."""
    cache = store.cache
    get, put = cache.get, cache.put
    used: list[str] = []

    def rec_get(key: str) -> dict[str, Any] | None:
        record = get(key)
        if record is not None:
            used.append(key)
        return record

    def rec_put(key: str, record: dict[str, Any], refs: tuple[Digest, ...] = ()) -> None:
        put(key, record, refs)
        used.append(key)

    cache.get, cache.put = rec_get, rec_put  # type: ignore[method-assign]
    try:
        yield used
    finally:
        del cache.get, cache.put


def base_puller(store: Store, options: Any) -> Callable[[str, Any], Image]:
    """The Builder's ``pull_base`` hook: pull a base image the store lacks from its registry."""
    def pull_base(name: str, pin: Any) -> Image:
        from minibuild.registry import pull

        return pull(store, name, options=options, pin=pin).image
    return pull_base


def run_build(builder: Any, store: Store, *, pull: bool = False, cache_from: Sequence[str] = (),
              cache_to: Sequence[str] = (), registry_options: Any = None) -> Any:
    """Run ``builder.build()`` with ``--pull`` (pull absent base images), ``--cache-from`` sources imported
    before and ``--cache-to`` destinations written after; returns the BuildResult (re-stored with its inline
    cache for ``type=inline``)."""
    import dataclasses

    from_specs = tuple(parse_cache_spec(v, export=False) for v in cache_from)
    to_specs = tuple(parse_cache_spec(v, export=True) for v in cache_to)
    options = registry_options
    if options is None and (pull or any(s.type == "registry" for s in (*from_specs, *to_specs))):
        from minibuild.registry import options_from_env

        options = options_from_env()
    if pull:
        builder.pull_base = base_puller(store, options)
    with cache_sources(store, from_specs, options=options) as imports:
        warnings = tuple(i.warning for i in imports if i.warning)
        for w in warnings:
            if builder.progress is not None:
                builder.progress({"type": "warning", "message": w})
        builder.cache_images = tuple((i.source, i.image) for i in imports if i.image is not None)
        with recording_keys(store) as used:
            result = builder.build()
        if warnings:
            result = dataclasses.replace(result, warnings=(*warnings, *result.warnings))
        keys = tuple(dict.fromkeys((*used, *(s.key for s in result.steps if s.key))))
        for spec in to_specs:
            if spec.type != "inline":
                export_cache(store, keys, spec, options=options)
        if any(s.type == "inline" for s in to_specs):
            image = inline_cache(store, result.image, keys)
            digest = store.put_image(image)
            tags = tuple(store.tag(t, digest) for t in builder.tags)
            if result.output:
                from minibuild.oci.archive import save_image_tar

                save_image_tar(store.blobs, image, list(builder.tags), result.output)
            result = dataclasses.replace(result, image=image, digest=digest, config_digest=image.config_digest,
                                         size=image_size(image),
                                         tags=tags)
    return result
