"""The immutable Image (config + layers) and its transforms: append_layer, with_config, add_history."""

from __future__ import annotations

import dataclasses
from dataclasses import field
from typing import Any, BinaryIO, Protocol

from minibuild.digest import Digest
from minibuild.errors import ConfigError, ImageFormatError
from minibuild.oci.model import (
    BUILD_SPECIFIC_KEYS,
    CONFIG_TYPES,
    MEDIA_OCI_CONFIG,
    MEDIA_OCI_LAYER,
    MEDIA_OCI_MANIFEST,
    TO_OCI_LAYER,
    Descriptor,
    Healthcheck,
    History,
    ImageConfig,
    Manifest,
    Pairs,
    format_created,
    pairs,
)
from minibuild.record import record

# the 1024-zero-byte tar: the layer of an image with no files (OCI schema needs at least one layer)
EMPTY_LAYER_BYTES = b"\0" * 1024
EMPTY_LAYER_DIGEST = Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")


class BlobSource(Protocol):
    """What the image code needs from a blob store: verified reads by digest."""

    def open(self, digest: Digest) -> BinaryIO: ...

    def read_bytes(self, digest: Digest) -> bytes: ...


class LayerInfoLike(Protocol):
    """A written layer (minibuild.store.tarlayer.LayerInfo has these attributes)."""

    @property
    def diff_id(self) -> Digest: ...

    @property
    def digest(self) -> Digest: ...

    @property
    def size(self) -> int: ...

    @property
    def media_type(self) -> str: ...


@record
class Layer:
    """One layer of an image: its blob descriptor and the diff_id of its uncompressed tar."""

    descriptor: Descriptor
    diff_id: Digest

    @property
    def digest(self) -> Digest:
        return self.descriptor.digest

    @property
    def size(self) -> int:
        return self.descriptor.size

    @property
    def compressed(self) -> bool:
        return self.descriptor.media_type != MEDIA_OCI_LAYER

    @classmethod
    def from_info(cls, info: LayerInfoLike) -> Layer:
        media_type = TO_OCI_LAYER.get(info.media_type, info.media_type)
        return cls(descriptor=Descriptor(media_type=media_type, digest=info.digest, size=info.size), diff_id=info.diff_id)


_CONFIG_FIELDS: list[frozenset[str]] = []


def _config_fields() -> frozenset[str]:
    """The ImageConfig fields ``with_config`` may change (computed once: a metadata step calls it every time)."""
    if not _CONFIG_FIELDS:
        _CONFIG_FIELDS.append(frozenset(f.name for f in dataclasses.fields(ImageConfig)) - {"diff_ids", "extra"})
    return _CONFIG_FIELDS[0]


_LIST_FIELDS = frozenset({"env", "entrypoint", "cmd", "exposed_ports", "volumes", "shell", "onbuild", "os_features",
                          "history", "diff_ids"})


@record
class Image:
    """An image: config plus ordered layers. Transforms return new images; loaded bytes are kept verbatim.

    ``raw_config``/``raw_manifest`` hold the exact bytes an image was loaded with (so its IDs survive a
    round trip); any transform drops them and the JSON is then written canonically.
    """

    config: ImageConfig
    layers: tuple[Layer, ...] = ()
    manifest_annotations: Pairs = ()
    raw_config: bytes | None = field(default=None, repr=False, compare=False)
    raw_manifest: bytes | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = tuple(layer.diff_id for layer in self.layers)
        if ids != self.config.diff_ids:
            raise ImageFormatError(
                f"image has {len(self.layers)} layers but its config lists {len(self.config.diff_ids)} diff_ids"
                if len(ids) != len(self.config.diff_ids) else "layer diff_ids do not match the config's rootfs.diff_ids"
            )

    # ------------------------------------------------------------ construction
    @classmethod
    def scratch(cls, *, architecture: str = "amd64", os: str = "linux", variant: str | None = None,
                source_date_epoch: int | None = None) -> Image:
        """An empty image (FROM scratch) whose ``created`` comes from SOURCE_DATE_EPOCH (else 1970)."""
        return cls(config=ImageConfig(architecture=architecture, os=os, variant=variant,
                                      created=format_created(source_date_epoch)))

    @classmethod
    def from_bytes(cls, manifest_bytes: bytes, config_bytes: bytes, *, where: str = "image") -> Image:
        """Build an Image from manifest and config JSON; Docker-typed manifests are converted to OCI types."""
        manifest = Manifest.from_bytes(manifest_bytes, where + " manifest")
        config = ImageConfig.from_bytes(config_bytes, where + " config")
        if manifest.config.media_type not in CONFIG_TYPES:
            raise ImageFormatError(f"{where}: config mediaType {manifest.config.media_type!r} is not an image config")
        if Digest.of_bytes(config_bytes) != manifest.config.digest:
            raise ImageFormatError(f"{where}: config digest does not match the manifest")
        if len(manifest.layers) != len(config.diff_ids):
            raise ImageFormatError(
                f"{where}: manifest lists {len(manifest.layers)} layers but config has {len(config.diff_ids)} diff_ids")
        layers = []
        converted = manifest.media_type != MEDIA_OCI_MANIFEST or manifest.config.media_type != MEDIA_OCI_CONFIG
        for desc, diff_id in zip(manifest.layers, config.diff_ids):
            media_type = TO_OCI_LAYER.get(desc.media_type)
            if media_type is None:
                raise ImageFormatError(f"{where}: unsupported layer mediaType {desc.media_type!r}")
            if media_type != desc.media_type:
                converted = True
                desc = dataclasses.replace(desc, media_type=media_type)
            layers.append(Layer(descriptor=desc, diff_id=diff_id))
        return cls(config=config, layers=tuple(layers), manifest_annotations=manifest.annotations,
                   raw_config=config_bytes, raw_manifest=None if converted else manifest_bytes)

    @classmethod
    def from_blobs(cls, source: BlobSource, manifest_digest: Digest) -> Image:
        """Read an image's manifest and config from ``source`` (both verified by digest)."""
        manifest_bytes = source.read_bytes(manifest_digest)
        manifest = Manifest.from_bytes(manifest_bytes, f"manifest {manifest_digest.short}")
        return cls.from_bytes(manifest_bytes, source.read_bytes(manifest.config.digest),
                              where=f"image {manifest_digest.short}")

    # ------------------------------------------------------------ serialised forms
    @property
    def config_bytes(self) -> bytes:
        return self.raw_config if self.raw_config is not None else self.config.to_bytes()

    @property
    def config_digest(self) -> Digest:
        """The image ID Docker shows (graphdriver store and podman)."""
        return Digest.of_bytes(self.config_bytes)

    @property
    def config_descriptor(self) -> Descriptor:
        data = self.config_bytes
        return Descriptor(media_type=MEDIA_OCI_CONFIG, digest=Digest.of_bytes(data), size=len(data))

    @property
    def manifest(self) -> Manifest:
        return Manifest(config=self.config_descriptor, layers=tuple(layer.descriptor for layer in self.layers),
                        annotations=self.manifest_annotations)

    @property
    def manifest_bytes(self) -> bytes:
        return self.raw_manifest if self.raw_manifest is not None else self.manifest.to_bytes()

    @property
    def digest(self) -> Digest:
        """The manifest digest (what `skopeo inspect` and Docker's containerd store show)."""
        return Digest.of_bytes(self.manifest_bytes)

    @property
    def manifest_descriptor(self) -> Descriptor:
        data = self.manifest_bytes
        return Descriptor(media_type=MEDIA_OCI_MANIFEST, digest=Digest.of_bytes(data), size=len(data),
                          platform=self.config.platform)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return self.config.diff_ids

    @property
    def history(self) -> tuple[History, ...]:
        return self.config.history

    # ------------------------------------------------------------ transforms
    def _derived_config(self, **changes: Any) -> ImageConfig:
        extra = self.config.extra
        if extra:
            extra = tuple((k, v) for k, v in extra if k not in BUILD_SPECIFIC_KEYS)
        return dataclasses.replace(self.config, extra=extra, **changes)

    def _derive(self, config: ImageConfig, layers: tuple[Layer, ...] | None = None) -> Image:
        return Image(config=config, layers=self.layers if layers is None else layers,
                     manifest_annotations=self.manifest_annotations)

    def append_layer(self, layer: LayerInfoLike | Layer, *, history: History | None = None) -> Image:
        """A new image with ``layer`` on top and a history entry for it (``history`` or a default one).

        A history entry without ``created`` gets the image's ``created`` (from SOURCE_DATE_EPOCH)."""
        new = layer if isinstance(layer, Layer) else Layer.from_info(layer)
        if history is None:
            history = History(created=self.config.created, created_by="minibuild: layer")
        if history.empty_layer:
            raise ConfigError("append_layer: the history entry of a layer cannot have empty_layer=true")
        if history.created is None:
            history = dataclasses.replace(history, created=self.config.created)
        config = self._derived_config(diff_ids=self.config.diff_ids + (new.diff_id,),
                                      history=self.config.history + (history,))
        return self._derive(config, self.layers + (new,))

    def with_layers(self, layers: tuple[Layer, ...]) -> Image:
        """The same image with other layer blobs (as many as it has: the history is unchanged); the config's
        diff_ids follow the new layers."""
        if len(layers) != len(self.layers):
            raise ConfigError(f"with_layers: {len(layers)} layers for an image of {len(self.layers)}")
        if layers == self.layers:
            return self
        return self._derive(self._derived_config(diff_ids=tuple(la.diff_id for la in layers)), layers)

    def add_history(self, entry: History) -> Image:
        """A new image with one more history entry; it must say ``empty_layer=True`` (no layer is added)."""
        if not entry.empty_layer:
            raise ConfigError("add_history: only empty_layer entries can be added without a layer (use append_layer)")
        if entry.created is None:
            entry = dataclasses.replace(entry, created=self.config.created)
        return self._derive(self._derived_config(history=self.config.history + (entry,)))

    def with_config(self, **changes: Any) -> Image:
        """A new image whose config has ``changes`` (ImageConfig field names; lists/dicts are frozen)."""
        unknown = set(changes) - _config_fields()
        if unknown:
            raise ConfigError(f"with_config: unknown config field(s) {', '.join(sorted(unknown))}")
        fixed: dict[str, Any] = {}
        for key, value in changes.items():
            if key in ("labels", "extra_config"):
                value = pairs(value)
            elif key == "healthcheck" and isinstance(value, dict):
                value = Healthcheck.from_json(value)
            elif key in _LIST_FIELDS and isinstance(value, list):
                value = tuple(value)
            if key == "exposed_ports" or key == "volumes":
                value = tuple(sorted(set(value)))
            fixed[key] = value
        return self._derive(self._derived_config(**fixed))

    def with_empty_layer(self) -> Image:
        """This image, or with the 1024-byte empty layer added when it has no layer (OCI needs one)."""
        if self.layers:
            return self
        info = Layer(descriptor=Descriptor(media_type=MEDIA_OCI_LAYER, digest=EMPTY_LAYER_DIGEST, size=1024),
                     diff_id=EMPTY_LAYER_DIGEST)
        return self.append_layer(info, history=History(created=self.config.created, created_by="minibuild: empty layer"))
