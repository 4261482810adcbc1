"""Resource limits: how far a compressed layer or archive may expand, and bounded decompressing readers.

``MINIBUILD_MAX_LAYER_BYTES`` bounds the *uncompressed* size of any one layer tar or ADD archive that minibuild
reads (load, layer extraction, ADD of a local archive).  The value is a byte count with an optional binary suffix
(``K``, ``M``, ``G``, ``T``: ``512M``, ``100G``), or ``0``/``unlimited`` for no limit.  The default, 64 GiB, is
above the largest single layers seen in real images (multi-GB CUDA/ML layers) while a gzip "bomb" (1 MB of
deflate expands to about 1 GB) is stopped long before it fills a disk or memory.  Decompression always proceeds
in bounded chunks, so memory stays flat whatever the ratio.

``MINIBUILD_MAX_DOCUMENT_BYTES`` (default 8 MiB, same syntax) bounds one JSON document read into memory: a
manifest, index or image config from a registry or an archive, a cache records document.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import re
import zlib
from typing import BinaryIO

from minibuild.errors import ConfigError, ImageFormatError, MinibuildError

ENV_MAX_LAYER_BYTES = "MINIBUILD_MAX_LAYER_BYTES"
DEFAULT_MAX_LAYER_BYTES = 64 << 30
# JSON documents (manifests, indexes, image configs, cache records) are read whole into memory: 8 MiB is twice
# the registry's own manifest limit (distribution: 4 MiB) and far above real configs (tens of KB)
ENV_MAX_DOCUMENT_BYTES = "MINIBUILD_MAX_DOCUMENT_BYTES"
DEFAULT_MAX_DOCUMENT_BYTES = 8 << 20
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_UNITS = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}

# errors a decompressor or tar reader raises on corrupt input (none of them is a MinibuildError)
DECOMPRESS_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)


def parse_size(text: str) -> int | None:
    """A size such as ``1048576``, ``512M`` or ``100G`` in bytes; ``0``/``unlimited`` give None (no limit)."""
    if text.strip().lower() in ("unlimited", "none", "0"):
        return None
    m = _SIZE_RE.match(text)
    if not m:
        raise ConfigError(f"invalid size {text!r}: expected a byte count such as 1048576, 512M or 100G")
    value = int(m.group(1)) << _UNITS[m.group(2).lower()]
    return value or None


def _env_size(name: str, default: int) -> int | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return parse_size(raw)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None


def max_layer_bytes() -> int | None:
    """The configured limit on a layer's uncompressed size (None = unlimited), read from the environment."""
    return _env_size(ENV_MAX_LAYER_BYTES, DEFAULT_MAX_LAYER_BYTES)


def max_document_bytes() -> int | None:
    """The configured limit on one JSON document (manifest, index, config) read into memory (None = unlimited)."""
    return _env_size(ENV_MAX_DOCUMENT_BYTES, DEFAULT_MAX_DOCUMENT_BYTES)


def limit_message(what: str, limit: int) -> str:
    return (f"{what} expands to more than {limit} bytes uncompressed, the limit set by {ENV_MAX_LAYER_BYTES} "
            f"(a decompression bomb, or raise the limit if the content is genuine)")


class ExpansionCounter:
    """Counts uncompressed bytes and raises ``error`` once they pass ``limit`` (None = no limit)."""

    def __init__(self, what: str, *, limit: int | None, error: type[MinibuildError] = ImageFormatError) -> None:
        self.what = what
        self.limit = limit
        self.error = error
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n
        if self.limit is not None and self.total > self.limit:
            raise self.error(limit_message(self.what, self.limit))


class _Prefixed(io.RawIOBase):
    """A raw reader that first returns ``head`` (already read for sniffing), then the rest of ``fh``."""

    def __init__(self, head: bytes, fh: BinaryIO) -> None:
        self._head = memoryview(head)
        self._fh = fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._fh.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


class _Bounded(io.RawIOBase):
    """A raw reader over a (decompressing) stream that counts what it returns against an ExpansionCounter."""

    def __init__(self, fh: BinaryIO, counter: ExpansionCounter) -> None:
        self._fh = fh
        self.counter = counter

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._fh.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.counter.add(n)
        return n

    def close(self) -> None:
        try:
            self._fh.close()
        finally:
            super().close()


def sniff(head: bytes) -> str:
    """The compression of a stream from its first bytes: gzip, bzip2, xz, zstd or tar (none)."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "tar"


def open_decompressed(fh: BinaryIO, *, what: str, limit: int | None | bool = True,
                      error: type[MinibuildError] = ImageFormatError) -> BinaryIO:
    """A buffered reader of ``fh``'s uncompressed bytes (gzip, bzip2, xz sniffed; plain passed through).

    Output is produced in bounded chunks and counted: more than ``limit`` bytes (``True`` = the configured
    ``MINIBUILD_MAX_LAYER_BYTES``) raises ``error``.  zstd raises ``error`` (not supported).
    """
    bound = max_layer_bytes() if limit is True else (None if limit is False else limit)
    head = fh.read(6)
    kind = sniff(head)
    src: BinaryIO = io.BufferedReader(_Prefixed(head, fh))
    if kind == "zstd":
        raise error(f"{what} is zstd-compressed, which minibuild cannot decompress")
    dec: BinaryIO
    if kind == "gzip":
        dec = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        dec = bz2.BZ2File(src, "rb")  # type: ignore[assignment]
    elif kind == "xz":
        dec = lzma.LZMAFile(src, "rb")  # type: ignore[assignment]
    else:
        dec = src
    return io.BufferedReader(_Bounded(dec, ExpansionCounter(what, limit=bound, error=error)), 1 << 20)
