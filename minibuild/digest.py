"""Digests (``sha256:<hex>``), hashing helpers and the one canonical JSON encoder."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from minibuild.errors import ImageFormatError

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """A content digest; only sha256 is produced, parsing validates the form."""

    value: str

    def __post_init__(self) -> None:
        if not _DIGEST_RE.match(self.value):
            raise ImageFormatError(f"invalid digest: {self.value!r}")

    @property
    def algorithm(self) -> str:
        return self.value.split(":", 1)[0]

    @property
    def hex(self) -> str:
        return self.value.split(":", 1)[1]

    @property
    def short(self) -> str:
        return self.hex[:12]

    def __str__(self) -> str:
        return self.value

    @classmethod
    def of_bytes(cls, data: bytes) -> "Digest":
        return cls("sha256:" + hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, fileobj: IO[bytes] | BinaryIO) -> "Digest":
        h = hashlib.sha256()
        while chunk := fileobj.read(CHUNK):
            h.update(chunk)
        return cls("sha256:" + h.hexdigest())


def sha256_bytes(data: bytes) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingWriter:
    """A write-only file wrapper that hashes and counts what passes through it."""

    def __init__(self, raw: IO[bytes] | BinaryIO | None = None) -> None:
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:  # noqa: D401 - file protocol
        self._hash.update(data)
        self.size += len(data)
        if self._raw is not None:
            self._raw.write(data)
        return len(data)

    def flush(self) -> None:
        if self._raw is not None:
            self._raw.flush()

    @property
    def digest(self) -> Digest:
        return Digest("sha256:" + self._hash.hexdigest())


_SURROGATE = re.compile("[\ud800-\udfff]")


def canonical_json(value: Any) -> bytes:
    """Encode ``value`` as canonical JSON: sorted keys, no spaces, UTF-8, no NaN.

    A lone surrogate in a string (an invalid byte of a Dockerfile, kept as a surrogate escape by
    ``minibuild.dockerfile.decode_dockerfile``) is written as its ``\\uXXXX`` escape: the output stays UTF-8,
    distinct bytes stay distinct (cache keys), Python reads the same string back and Go reads U+FFFD."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode("utf-8")
