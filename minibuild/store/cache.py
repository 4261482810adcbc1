"""Generic cache records keyed by string, stored atomically, each naming the blobs it keeps alive."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from minibuild.digest import Digest, canonical_json
from minibuild.errors import ImageFormatError, StoreError
from minibuild.store.dirs import lstat_at, names, opened_below, remove
from minibuild.store.lock import atomic_write


_HEAD = b'{"sha256":"'
_MID = b'","doc":'
_BODY = len(_HEAD) + 64 + len(_MID)  # where the digested body starts


def seal(doc: dict[str, Any]) -> bytes:
    """A record file: ``{"sha256":"<hex of body>","doc":<body>}`` with ``body`` the canonical JSON of ``doc``."""
    body = canonical_json(doc)
    return _HEAD + hashlib.sha256(body).hexdigest().encode() + _MID + body + b"}"


def unseal(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """(the record document, None) when ``data`` is a sealed record whose body matches its digest; else
    (None, what is wrong). The digest makes an edited record evident; it is no signature (see docs/security.md)."""
    if not (data.startswith(_HEAD) and data[_BODY - len(_MID):_BODY] == _MID and data.endswith(b"}")):
        return None, "not a sealed minibuild cache record (edited by hand, or written by an older minibuild)"
    body = data[_BODY:-1]
    if hashlib.sha256(body).hexdigest().encode() != data[len(_HEAD):len(_HEAD) + 64]:
        return None, "content does not match its digest (the record was edited or damaged)"
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, "unreadable JSON"
    if not isinstance(doc, dict) or not isinstance(doc.get("key"), str) or not isinstance(doc.get("refs"), list) \
            or not isinstance(doc.get("record"), dict):
        return None, "not a minibuild cache record"
    return doc, None


class CacheStore:
    """Records at ``<dir>/<sha256(key)>.json`` sealing {"key", "record", "refs"} with the sha256 of their body;
    a record that does not match its digest, its name or its key is a miss, never trusted."""

    def __init__(self, directory: Path, *, tmp_dir: Path, has_blob: Any = None, root: Path | None = None) -> None:
        self.dir = directory
        self._root = root  # the store root: the directory is opened below it without following symlinks
        self._prefix = os.path.join(directory, "")  # string joins: a warm build reads two records per step
        self._tmp_dir = tmp_dir
        self._has_blob = has_blob

    def _path(self, key: str) -> str:
        return self._prefix + hashlib.sha256(key.encode("utf-8")).hexdigest() + ".json"

    def read(self, path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
        """(document, None) for a sound record file; (None, None) when absent; (None, why) when damaged: not
        sealed, not matching its digest, or stored under a name that is not the hash of its key."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"cannot be read ({exc.strerror})"
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        doc, why = unseal(data)
        if doc is not None and os.path.basename(path) != os.path.basename(self._path(doc["key"])):
            return None, "stored under a name that is not the hash of its key"
        return doc, why

    def _load(self, path: str | Path) -> dict[str, Any] | None:
        return self.read(path)[0]

    def lookup(self, key: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the record stored under ``key`` or None, why a record that is there was not used: damaged or
        dangling, else None)."""
        path = self._path(key)
        doc, why = self.read(path)
        if doc is None:
            return None, None if why is None else f"cache record {os.path.basename(path)}: {why}"
        if doc["key"] != key:
            return None, f"cache record {os.path.basename(path)}: holds another key"
        if self._has_blob is not None:
            for ref in doc["refs"]:
                try:
                    if not self._has_blob(Digest(ref)):
                        return None, None  # a pruned blob: an ordinary miss
                except (ImageFormatError, TypeError):
                    return None, f"cache record {os.path.basename(path)}: invalid blob reference"
        record: dict[str, Any] = doc["record"]
        return record, None

    def get(self, key: str) -> dict[str, Any] | None:
        """The record stored under ``key``, or None (also when a blob it refers to has gone, or it is damaged)."""
        return self.lookup(key)[0]

    def entry(self, key: str) -> tuple[dict[str, Any], tuple[Digest, ...]] | None:
        """(record, refs) stored under ``key`` without checking that the blobs exist (for exporting a cache)."""
        doc = self._load(self._path(key))
        if doc is None or doc["key"] != key:
            return None
        try:
            return doc["record"], tuple(Digest(r) for r in doc["refs"])
        except (ImageFormatError, TypeError):
            return None

    def put(self, key: str, record: dict[str, Any], refs: tuple[Digest, ...] = ()) -> None:
        """Store ``record`` (JSON-able) under ``key``; ``refs`` are blobs kept alive through prune."""
        try:
            data = seal({"key": key, "record": record, "refs": sorted({r.value for r in refs})})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"cache record for {key!r} is not JSON-serialisable: {exc}") from None
        # no fsync: a record is only a cache (a lost or torn one reads as a miss, and get() re-checks that its
        # blobs exist, which were fsynced when committed); two fsyncs per step made cold builds I/O-bound
        atomic_write(Path(self._path(key)), data, tmp_dir=self._tmp_dir, durable=False)

    def delete(self, key: str) -> bool:
        name = os.path.basename(self._path(key))
        with opened_below(self._root, self.dir) as fd:
            if fd is None or lstat_at(fd, name) is None:
                return False
            remove(fd, name)
        return True

    def records(self) -> Iterator[tuple[str, tuple[Digest, ...]]]:
        """(key, refs) of every sound record (a damaged one keeps nothing alive)."""
        with opened_below(self._root, self.dir) as fd:
            found = names(fd) if fd is not None else []
        for name in found:
            if not name.endswith(".json"):
                continue
            doc = self._load(self.dir / name)
            if doc is None:
                continue
            refs = []
            for ref in doc["refs"]:
                try:
                    refs.append(Digest(ref))
                except (ImageFormatError, TypeError):
                    continue
            yield doc["key"], tuple(refs)

    def clear(self) -> int:
        """Delete every record; return how many."""
        count = 0
        with opened_below(self._root, self.dir) as fd:
            for name in names(fd) if fd is not None else ():
                assert fd is not None
                if name.endswith(".json"):
                    remove(fd, name)
                    count += 1
        return count
