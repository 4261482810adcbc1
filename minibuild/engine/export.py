"""The image a build exports: the store's layers with their mtimes clamped to SOURCE_DATE_EPOCH (docs/file-times.md).

Inside a build every layer keeps the mtimes its step wrote, so later steps and stages see them as Docker's do.
What leaves the build (the image put in the store and tagged, ``-o`` archives and filesystems, ``docker load``)
is clamped as BuildKit's ``rewrite-timestamp=true`` exporter clamps it: every mtime newer than SOURCE_DATE_EPOCH
(default 0) becomes SOURCE_DATE_EPOCH. The base image's own layers are kept as they are (BuildKit does not
rewrite them either), and so is any layer with nothing newer than the epoch. Clamping is a pure function of the
layer and the epoch, so a fully cached build exports the same digest; each result is remembered in a cache
record (``exported-layer:``) so it is computed once per layer and epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from minibuild.digest import Digest
from minibuild.errors import MinibuildError, StoreError
from minibuild.oci.image import Image, Layer
from minibuild.oci.model import Descriptor
from minibuild.store import Store
from minibuild.store.blobs import Pin

EXPORTED_KIND = "exported-layer"


def exported_key(layer: Layer, epoch: int) -> str:
    """The cache key under which the clamped version of ``layer`` is remembered."""
    return f"{EXPORTED_KIND}:{epoch}:{layer.digest.value}"


def _layer_json(layer: Layer) -> dict[str, Any]:
    return {"digest": layer.digest.value, "diffID": layer.diff_id.value, "size": layer.size,
            "mediaType": layer.descriptor.media_type}


def _layer_of(doc: Any) -> Layer | None:
    if not isinstance(doc, dict):
        return None
    try:
        return Layer(descriptor=Descriptor(media_type=str(doc["mediaType"]), digest=Digest(str(doc["digest"])),
                                           size=int(doc["size"])), diff_id=Digest(str(doc["diffID"])))
    except (KeyError, TypeError, ValueError, MinibuildError):  # a damaged record is a miss
        return None


def exported_layer(store: Store, layer: Layer, epoch: int, *, pin: Pin | None,
                   pin_blobs: Callable[[Iterable[Digest]], bool] | None = None) -> Layer:
    """``layer`` with every mtime clamped to ``epoch``: itself when nothing in it is newer, else a new blob. The
    layer's claimed diff_id is verified first (a cache record's claim is otherwise only checked when the image
    is stored, which the clamped blob's honest diff_id would pass)."""
    store.verify_layers((layer,), where="exported layer", pin=pin)
    key = exported_key(layer, epoch)
    memo = store.cache.get(key)
    if memo is not None:
        found = _layer_of(memo.get("layer"))
        if found is not None and (found.digest == layer.digest or pin_blobs is None or pin_blobs((found.digest,))):
            return found
    from minibuild.store.retime import clamp_layer_mtimes  # tarfile: only when a layer is rewritten

    with store.blobs.open(layer.digest) as src, store.blobs.writer(pin=pin) as w:
        result = clamp_layer_mtimes(src, w, epoch=epoch)
        if result.changed:
            digest = w.commit()
            if digest != result.info.digest:
                raise StoreError(f"exported layer digest mismatch: wrote {digest}, expected {result.info.digest}")
    if result.changed:
        store.record_diff_id(result.info.digest, result.info.diff_id)
        out = Layer.from_info(result.info)
    else:
        out = layer
    store.cache.put(key, {"kind": EXPORTED_KIND, "epoch": epoch, "source": _layer_json(layer),
                          "layer": _layer_json(out)}, (out.digest,))
    return out


def exported_image(store: Store, image: Image, *, keep: int, epoch: int | None, pin: Pin | None,
                   pin_blobs: Callable[[Iterable[Digest]], bool] | None = None) -> Image:
    """``image`` as it is exported: its first ``keep`` layers (the base image's) as they are, every other one
    clamped to ``epoch`` (None: 0, as when SOURCE_DATE_EPOCH is unset)."""
    when = 0 if epoch is None else max(0, epoch)
    layers = tuple(la if i < keep else exported_layer(store, la, when, pin=pin, pin_blobs=pin_blobs)
                   for i, la in enumerate(image.layers))
    return image.with_layers(layers)


def exported_source(key: str) -> Digest | None:
    """The store layer an ``exported-layer:EPOCH:DIGEST`` cache key was clamped from; None for any other key."""
    kind, _, rest = key.partition(":")
    epoch, _, digest = rest.partition(":")
    if kind != EXPORTED_KIND or not epoch.isdigit():
        return None
    try:
        return Digest(digest)
    except MinibuildError:
        return None
