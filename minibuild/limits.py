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

import io
import lzma
import os
import re
import time
import zlib
from typing import BinaryIO

from minibuild.errors import ConfigError, ImageFormatError, MinibuildError
from minibuild.record import record

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
        import gzip  # the decompressors are imported when a stream needs one (a cached build reads none)

        dec = gzip.GzipFile(fileobj=src, mode="rb")  # type: ignore[assignment]
    elif kind == "bzip2":
        import bz2

        dec = bz2.BZ2File(src, "rb")  # type: ignore[assignment]
    elif kind == "xz":
        dec = lzma.LZMAFile(src, "rb")  # type: ignore[assignment]
    else:
        dec = src
    return io.BufferedReader(_Bounded(dec, ExpansionCounter(what, limit=bound, error=error)), 1 << 20)


# ------------------------------------------------------------------------------------------- limits in RUN
ENV_RUN_TIMEOUT = "MINIBUILD_RUN_TIMEOUT"
ENV_RUN_MAX_BYTES = "MINIBUILD_RUN_MAX_BYTES"
ENV_RUN_OUTPUT_TAIL = "MINIBUILD_RUN_OUTPUT_TAIL"
ENV_RUN_MAX_DEPTH = "MINIBUILD_RUN_MAX_DEPTH"
ENV_RUN_LOG_LIMIT = "MINIBUILD_RUN_LOG_LIMIT"
DEFAULT_RUN_TIMEOUT = 3600.0
DEFAULT_RUN_MAX_BYTES = 256 << 20
DEFAULT_RUN_OUTPUT_TAIL = 1 << 20
DEFAULT_RUN_MAX_DEPTH = 100
DEFAULT_RUN_LOG_LIMIT = 2 << 20  # BuildKit's BUILDKIT_STEP_LOG_MAX_SIZE default (2 MiB of each stream shown)


@record
class RunLimits:
    """What one RUN step may use.

    ``timeout``: wall seconds per RUN (None = none; the chroot executor kills the process group, the emulated shell
    stops at its next command or builtin loop).  ``output_tail``: bytes kept of each of stdout/stderr, and of
    both interleaved (the tail, what a failure shows); more output is streamed past, never held.  ``log_limit``:
    bytes of each stream progress shows live before BuildKit's ``[output clipped, log limit 2MiB reached]``
    (None = all).  ``max_bytes``: the emulated shell's largest
    in-memory value (a variable, an expansion, a pipe's or ``$(...)``'s data, a file read whole, a ``printf``
    field).  ``max_depth``: the emulated shell's nesting of functions, subshells and shells (also bounds parse
    nesting).  ``max_commands``: commands the emulated shell runs per RUN (a fork bomb or endless loop).
    """

    timeout: float | None = DEFAULT_RUN_TIMEOUT
    output_tail: int = DEFAULT_RUN_OUTPUT_TAIL
    max_bytes: int = DEFAULT_RUN_MAX_BYTES
    max_depth: int = DEFAULT_RUN_MAX_DEPTH
    max_commands: int = 1_000_000
    log_limit: int | None = DEFAULT_RUN_LOG_LIMIT

    def deadline(self) -> float | None:
        """The monotonic time at which a RUN started now must end (None = no limit)."""
        return None if self.timeout is None else time.monotonic() + self.timeout

    def timeout_message(self) -> str:
        return (f"RUN did not finish within {self.timeout:g} seconds, the limit set by --run-timeout or "
                f"{ENV_RUN_TIMEOUT} (raise it, or 0 for none)")

    def bytes_message(self, what: str) -> str:
        return (f"{what} exceeds {self.max_bytes} bytes, the emulated shell's memory limit set by {ENV_RUN_MAX_BYTES} "
                f"(raise it, or use --executor chroot)")

    def depth_message(self) -> str:
        return (f"nesting deeper than {self.max_depth} levels (functions, subshells, $(...), parentheses), the limit "
                f"set by {ENV_RUN_MAX_DEPTH}")


def parse_timeout(text: str) -> float | None:
    """Seconds such as ``3600``, ``90s``, ``30m``, ``2h``; ``0``/``none``/``unlimited`` give None (no limit)."""
    t = text.strip().lower()
    if t in ("0", "none", "unlimited", "inf"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smh]?)", t)
    if not m:
        raise ConfigError(f"invalid timeout {text!r}: expected seconds such as 3600, 90s, 30m or 2h")
    value = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[m.group(2)]
    return value or None


def run_limits(timeout: float | None | bool = True) -> RunLimits:
    """The limits for RUN steps from the environment (see RunLimits); ``timeout`` other than True overrides
    ``MINIBUILD_RUN_TIMEOUT`` (None or 0 = no limit)."""
    kw: dict[str, float | int | None] = {}
    raw = os.environ.get(ENV_RUN_TIMEOUT, "").strip()
    try:
        if timeout is not True:
            kw["timeout"] = None if not timeout else float(timeout)
        elif raw:
            kw["timeout"] = parse_timeout(raw)
    except ConfigError as err:
        raise ConfigError(f"{ENV_RUN_TIMEOUT}: {err}") from None
    for env, key, floor in ((ENV_RUN_MAX_BYTES, "max_bytes", 1024), (ENV_RUN_OUTPUT_TAIL, "output_tail", 1024)):
        raw = os.environ.get(env, "").strip()
        if raw:
            try:
                size = parse_size(raw)
            except ConfigError as err:
                raise ConfigError(f"{env}: {err}") from None
            kw[key] = max(size, floor) if size is not None else 1 << 62
    raw = os.environ.get(ENV_RUN_LOG_LIMIT, "").strip()
    if raw:
        try:
            kw["log_limit"] = None if raw == "-1" else parse_size(raw)
        except ConfigError as err:
            raise ConfigError(f"{ENV_RUN_LOG_LIMIT}: {err}") from None
    raw = os.environ.get(ENV_RUN_MAX_DEPTH, "").strip()
    if raw:
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            raise ConfigError(f"{ENV_RUN_MAX_DEPTH}: invalid depth {raw!r}: expected a number from 1 to 1000")
        kw["max_depth"] = int(raw)
    return RunLimits(**kw)  # type: ignore[arg-type]


class TailBuffer:
    """Keeps the last ``limit`` bytes written to it (and counts all of them): a stream's bounded capture."""

    def __init__(self, limit: int) -> None:
        self.limit = max(limit, 0)
        self._buf = bytearray()
        self.total = 0

    def write(self, data: bytes) -> None:
        self.total += len(data)
        if len(data) >= self.limit:
            self._buf[:] = data[len(data) - self.limit:] if self.limit else b""
            return
        self._buf += data
        if len(self._buf) > 2 * self.limit:  # trimmed in batches: amortised O(1) per byte
            del self._buf[:len(self._buf) - self.limit]

    @property
    def truncated(self) -> bool:
        return self.total > self.limit

    def getvalue(self) -> bytes:
        data = bytes(self._buf[-self.limit:]) if self.limit else b""
        return data
