"""OCI image model: Descriptor, Platform, Manifest, Index, History, Healthcheck, ImageConfig (+ JSON both ways)."""

from __future__ import annotations

import json
import re
from dataclasses import field
from datetime import datetime, timezone
from typing import Any

from minibuild.digest import Digest, canonical_json
from minibuild.errors import ImageFormatError
from minibuild.record import record

MEDIA_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
MEDIA_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_TYPES = frozenset({MEDIA_OCI_MANIFEST, MEDIA_DOCKER_MANIFEST})
INDEX_TYPES = frozenset({MEDIA_OCI_INDEX, MEDIA_DOCKER_LIST})
CONFIG_TYPES = frozenset({MEDIA_OCI_CONFIG, MEDIA_DOCKER_CONFIG})
# media type -> the OCI equivalent (used when importing Docker-typed manifests)
TO_OCI_LAYER = {
    MEDIA_OCI_LAYER: MEDIA_OCI_LAYER,
    MEDIA_OCI_LAYER_GZIP: MEDIA_OCI_LAYER_GZIP,
    MEDIA_OCI_LAYER_ZSTD: MEDIA_OCI_LAYER_ZSTD,
    MEDIA_DOCKER_LAYER: MEDIA_OCI_LAYER,
    MEDIA_DOCKER_LAYER_GZIP: MEDIA_OCI_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar": MEDIA_OCI_LAYER,
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": MEDIA_OCI_LAYER_GZIP,
}
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_MEDIA_TYPE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}$")
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$")
Pairs = tuple[tuple[str, str], ...]


def format_created(epoch: int | None) -> str:
    """RFC 3339 UTC time for ``epoch`` seconds (None -> 1970-01-01T00:00:00Z)."""
    return datetime.fromtimestamp(int(epoch or 0), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def pairs(mapping: dict[str, str] | Pairs | None) -> Pairs:
    """A mapping as sorted (key, value) pairs, the frozen form used in this model."""
    if not mapping:
        return ()
    items = mapping.items() if isinstance(mapping, dict) else mapping
    return tuple(sorted((str(k), str(v)) for k, v in items))


# ---------------------------------------------------------------- JSON reading helpers
def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ImageFormatError(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    value = d.get(key)
    if value is None:
        if required:
            raise ImageFormatError(f"{where}: missing required field {key!r}")
        return None
    if not isinstance(value, str):
        raise ImageFormatError(f"{where}: field {key!r} must be a string")
    return value


def _int(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> int | None:
    value = d.get(key)
    if value is None:
        if required:
            raise ImageFormatError(f"{where}: missing required field {key!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ImageFormatError(f"{where}: field {key!r} must be an integer")
    return value


def _strs(d: dict[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ImageFormatError(f"{where}: field {key!r} must be an array of strings")
    return tuple(value)


def _strmap(d: dict[str, Any], key: str, where: str) -> Pairs:
    value = d.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ImageFormatError(f"{where}: field {key!r} must be an object of strings")
    return pairs(value)


def _keyset(d: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = d.get(key)
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ImageFormatError(f"{where}: field {key!r} must be an object")
    return tuple(sorted(value))


def _digest(value: Any, where: str) -> Digest:
    if not isinstance(value, str):
        raise ImageFormatError(f"{where}: digest must be a string")
    try:
        return Digest(value)
    except ImageFormatError as exc:
        raise ImageFormatError(f"{where}: {exc}") from None


def _created(value: str | None, where: str) -> str | None:
    if value is not None and not _RFC3339_RE.match(value):
        raise ImageFormatError(f"{where}: 'created' is not an RFC 3339 time: {value!r}")
    return value


def _extras(d: dict[str, Any], known: frozenset[str]) -> Pairs:
    return tuple(sorted((k, canonical_json(v).decode()) for k, v in d.items() if k not in known))


def _put_extras(out: dict[str, Any], extras: Pairs) -> None:
    for key, raw in extras:
        out.setdefault(key, json.loads(raw))


def parse_json(data: bytes, where: str) -> dict[str, Any]:
    """Decode a JSON object from bytes, as ImageFormatError on failure."""
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ImageFormatError(f"{where}: not valid JSON ({exc})") from None
    return _obj(value, where)


# ---------------------------------------------------------------- descriptors
@record
class Platform:
    """The platform an image manifest is for."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "platform") -> Platform:
        d = _obj(value, where)
        return cls(
            architecture=_str(d, "architecture", where, required=True) or "",
            os=_str(d, "os", where, required=True) or "",
            variant=_str(d, "variant", where),
            os_version=_str(d, "os.version", where),
            os_features=_strs(d, "os.features", where) or (),
        )


@record
class Descriptor:
    """An OCI content descriptor: media type, digest and exact size of a blob."""

    media_type: str
    digest: Digest
    size: int
    annotations: Pairs = ()
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    artifact_type: str | None = None

    def __post_init__(self) -> None:
        if not _MEDIA_TYPE_RE.match(self.media_type):
            raise ImageFormatError(f"invalid media type {self.media_type!r}")
        if self.size < 0:
            raise ImageFormatError(f"invalid descriptor size {self.size}")

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest.value, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "descriptor") -> Descriptor:
        d = _obj(value, where)
        media_type = _str(d, "mediaType", where, required=True) or ""
        if not _MEDIA_TYPE_RE.match(media_type):
            raise ImageFormatError(f"{where}: invalid mediaType {media_type!r}")
        size = _int(d, "size", where, required=True) or 0
        if size < 0:
            raise ImageFormatError(f"{where}: negative size")
        return cls(
            media_type=media_type,
            digest=_digest(d.get("digest"), where),
            size=size,
            annotations=_strmap(d, "annotations", where),
            platform=Platform.from_json(d["platform"], where + ".platform") if d.get("platform") is not None else None,
            urls=_strs(d, "urls", where) or (),
            artifact_type=_str(d, "artifactType", where),
        )


# ---------------------------------------------------------------- manifest and index
@record
class Manifest:
    """An image manifest (OCI, or Docker schema 2 when read): config + ordered layers."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = MEDIA_OCI_MANIFEST
    annotations: Pairs = ()
    artifact_type: str | None = None
    subject: Descriptor | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": [layer.to_json() for layer in self.layers],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, value: Any, where: str = "manifest") -> Manifest:
        d = _obj(value, where)
        if d.get("schemaVersion") != 2:
            raise ImageFormatError(f"{where}: schemaVersion must be 2, got {d.get('schemaVersion')!r}")
        media_type = _str(d, "mediaType", where) or MEDIA_OCI_MANIFEST
        if media_type not in MANIFEST_TYPES:
            raise ImageFormatError(f"{where}: not an image manifest (mediaType {media_type!r})")
        if "manifests" in d:
            raise ImageFormatError(f"{where}: an image manifest must not contain 'manifests'")
        layers = d.get("layers")
        if not isinstance(layers, list):
            raise ImageFormatError(f"{where}: 'layers' must be an array")
        return cls(
            config=Descriptor.from_json(d.get("config"), where + ".config"),
            layers=tuple(Descriptor.from_json(layer, f"{where}.layers[{i}]") for i, layer in enumerate(layers)),
            media_type=media_type,
            annotations=_strmap(d, "annotations", where),
            artifact_type=_str(d, "artifactType", where),
            subject=Descriptor.from_json(d["subject"], where + ".subject") if d.get("subject") is not None else None,
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "manifest") -> Manifest:
        return cls.from_json(parse_json(data, where), where)


@record
class Index:
    """An image index (index.json of a layout, or a multi-platform list)."""

    manifests: tuple[Descriptor, ...] = ()
    media_type: str = MEDIA_OCI_INDEX
    annotations: Pairs = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": self.media_type,
            "manifests": [m.to_json() for m in self.manifests],
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, value: Any, where: str = "index") -> Index:
        d = _obj(value, where)
        if d.get("schemaVersion") != 2:
            raise ImageFormatError(f"{where}: schemaVersion must be 2, got {d.get('schemaVersion')!r}")
        media_type = _str(d, "mediaType", where) or MEDIA_OCI_INDEX
        manifests = d.get("manifests")
        if not isinstance(manifests, list):
            raise ImageFormatError(f"{where}: 'manifests' must be an array")
        return cls(
            manifests=tuple(Descriptor.from_json(m, f"{where}.manifests[{i}]") for i, m in enumerate(manifests)),
            media_type=media_type,
            annotations=_strmap(d, "annotations", where),
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "index") -> Index:
        return cls.from_json(parse_json(data, where), where)


# ---------------------------------------------------------------- image config
@record
class History:
    """One build step in the image history; ``empty_layer`` when it added no layer."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created is not None:
            out["created"] = self.created
        if self.created_by is not None:
            out["created_by"] = self.created_by
        if self.author is not None:
            out["author"] = self.author
        if self.comment is not None:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "history") -> History:
        d = _obj(value, where)
        empty = d.get("empty_layer")
        if empty is not None and not isinstance(empty, bool):
            raise ImageFormatError(f"{where}: empty_layer must be a boolean")
        return cls(
            created=_created(_str(d, "created", where), where),
            created_by=_str(d, "created_by", where),
            author=_str(d, "author", where),
            comment=_str(d, "comment", where),
            empty_layer=bool(empty),
        )


@record
class Healthcheck:
    """Docker's HEALTHCHECK (durations in nanoseconds, as Docker stores them)."""

    test: tuple[str, ...]
    interval: int | None = None
    timeout: int | None = None
    start_period: int | None = None
    start_interval: int | None = None
    retries: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Test": list(self.test)}
        for key, value in (("Interval", self.interval), ("Timeout", self.timeout), ("StartPeriod", self.start_period),
                           ("StartInterval", self.start_interval), ("Retries", self.retries)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, value: Any, where: str = "Healthcheck") -> Healthcheck:
        d = _obj(value, where)
        return cls(
            test=_strs(d, "Test", where) or (),
            interval=_int(d, "Interval", where),
            timeout=_int(d, "Timeout", where),
            start_period=_int(d, "StartPeriod", where),
            start_interval=_int(d, "StartInterval", where),
            retries=_int(d, "Retries", where),
        )


_TOP_KNOWN = frozenset({"architecture", "os", "variant", "os.version", "os.features", "created", "author",
                        "config", "rootfs", "history"})
_CFG_KNOWN = frozenset({"User", "Env", "Entrypoint", "Cmd", "WorkingDir", "Labels", "ExposedPorts", "Volumes",
                        "StopSignal", "Healthcheck", "Shell", "OnBuild", "ArgsEscaped"})
# top-level keys that describe how a (Docker) build produced the parent, dropped from derived images
BUILD_SPECIFIC_KEYS = frozenset({"container", "container_config", "docker_version"})


@record
class ImageConfig:
    """The image configuration: OCI fields plus the Docker extensions Docker reads.

    ``extra``/``extra_config`` keep unknown top-level / ``config`` keys (value as canonical JSON text) so
    a loaded config survives a round trip through this model.
    """

    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    created: str | None = None
    author: str | None = None
    user: str | None = None
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str | None = None
    labels: Pairs = ()
    exposed_ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    healthcheck: Healthcheck | None = None
    shell: tuple[str, ...] | None = None
    onbuild: tuple[str, ...] | None = None
    args_escaped: bool | None = None
    history: tuple[History, ...] = ()
    diff_ids: tuple[Digest, ...] = ()
    extra: Pairs = field(default=())
    extra_config: Pairs = field(default=())

    @property
    def platform(self) -> Platform:
        return Platform(architecture=self.architecture, os=self.os, variant=self.variant,
                        os_version=self.os_version, os_features=self.os_features)

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def to_json(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {}
        if self.user is not None:
            cfg["User"] = self.user
        if self.env:
            cfg["Env"] = list(self.env)
        if self.entrypoint is not None:
            cfg["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            cfg["Cmd"] = list(self.cmd)
        if self.working_dir:
            cfg["WorkingDir"] = self.working_dir
        if self.labels:
            cfg["Labels"] = dict(self.labels)
        if self.exposed_ports:
            cfg["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.volumes:
            cfg["Volumes"] = {v: {} for v in self.volumes}
        if self.stop_signal:
            cfg["StopSignal"] = self.stop_signal
        if self.healthcheck is not None:
            cfg["Healthcheck"] = self.healthcheck.to_json()
        if self.shell is not None:
            cfg["Shell"] = list(self.shell)
        if self.onbuild is not None:
            cfg["OnBuild"] = list(self.onbuild)
        if self.args_escaped is not None:
            cfg["ArgsEscaped"] = self.args_escaped
        _put_extras(cfg, self.extra_config)
        out: dict[str, Any] = {
            "architecture": self.architecture,
            "os": self.os,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [d.value for d in self.diff_ids]},
        }
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.created is not None:
            out["created"] = self.created
        if self.author is not None:
            out["author"] = self.author
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        _put_extras(out, self.extra)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_json(cls, value: Any, where: str = "image config") -> ImageConfig:
        d = _obj(value, where)
        rootfs = d.get("rootfs")
        if rootfs is None:
            raise ImageFormatError(f"{where}: no 'rootfs' (not an image configuration)")
        rootfs = _obj(rootfs, where + ".rootfs")
        if rootfs.get("type") != "layers":
            raise ImageFormatError(f"{where}: rootfs.type must be 'layers', got {rootfs.get('type')!r}")
        diff_ids = rootfs.get("diff_ids") or []
        if not isinstance(diff_ids, list):
            raise ImageFormatError(f"{where}: rootfs.diff_ids must be an array")
        history = d.get("history") or []
        if not isinstance(history, list):
            raise ImageFormatError(f"{where}: history must be an array")
        cfg = _obj(d.get("config") or {}, where + ".config")
        w = where + ".config"
        health = cfg.get("Healthcheck")
        escaped = cfg.get("ArgsEscaped")
        if escaped is not None and not isinstance(escaped, bool):
            raise ImageFormatError(f"{w}: ArgsEscaped must be a boolean")
        return cls(
            architecture=_str(d, "architecture", where, required=True) or "",
            os=_str(d, "os", where, required=True) or "",
            variant=_str(d, "variant", where),
            os_version=_str(d, "os.version", where),
            os_features=_strs(d, "os.features", where) or (),
            created=_created(_str(d, "created", where), where),
            author=_str(d, "author", where),
            user=_str(cfg, "User", w),
            env=_strs(cfg, "Env", w) or (),
            entrypoint=_strs(cfg, "Entrypoint", w),
            cmd=_strs(cfg, "Cmd", w),
            working_dir=_str(cfg, "WorkingDir", w),
            labels=_strmap(cfg, "Labels", w),
            exposed_ports=_keyset(cfg, "ExposedPorts", w),
            volumes=_keyset(cfg, "Volumes", w),
            stop_signal=_str(cfg, "StopSignal", w),
            healthcheck=Healthcheck.from_json(health, w + ".Healthcheck") if health is not None else None,
            shell=_strs(cfg, "Shell", w),
            onbuild=_strs(cfg, "OnBuild", w),
            args_escaped=escaped,
            history=tuple(History.from_json(h, f"{where}.history[{i}]") for i, h in enumerate(history)),
            diff_ids=tuple(_digest(x, f"{where}.rootfs.diff_ids[{i}]") for i, x in enumerate(diff_ids)),
            extra=_extras(d, _TOP_KNOWN),
            extra_config=_extras(cfg, _CFG_KNOWN),
        )

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "image config") -> ImageConfig:
        return cls.from_json(parse_json(data, where), where)
