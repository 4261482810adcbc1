"""Byte counts for people, and the one definition of an image's size every command uses."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any


def human_bytes(n: int) -> str:
    """Decimal units as Docker prints them: 512B, 1.5kB, 12.3MB, 357MB, 1.02GB (three significant digits)."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)}B" if unit == "B" else f"{size:.3g}{unit}"
        size /= 1000
    return f"{n}B"  # pragma: no cover


def plural(n: int, word: str, plural_form: str | None = None) -> str:
    """``1 layer``, ``2 layers``, ``1 history entry``/``2 history entries`` (give ``plural_form`` when not +s)."""
    return f"{n} {word if n == 1 else (plural_form or word + 's')}"


def layer_bytes(layers: Iterable[tuple[Hashable, int]]) -> int:
    """The bytes of some layers given as (digest, size): each distinct blob counted once."""
    return sum(dict(layers).values())


def image_size(image: Any) -> int:
    """THE size of an image (docs/image-size.md): the sum of its layer blob sizes as stored (the manifest's layer
    ``size`` fields; config and manifest blobs are not counted, a layer listed twice counts once)."""
    return layer_bytes((layer.digest, layer.size) for layer in image.layers)
