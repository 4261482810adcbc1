"""Image names of the store, kept in its OCI index.json (so skopeo/umoci read the store as a layout)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from minibuild.errors import ImageFormatError, StoreError
from minibuild.oci.model import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor, Index, pairs
from minibuild.oci.reference import REF_NAME_RE, entry_name, parse_reference
from minibuild.record import record
from minibuild.store.lock import FileLock, atomic_write

LAYOUT_BYTES = b'{"imageLayoutVersion":"1.0.0"}'


@record
class RefEntry:
    """A tagged image: normalised name (docker.io/library/x:tag) and its manifest descriptor."""

    name: str
    descriptor: Descriptor

    @property
    def familiar(self) -> str:
        return parse_reference(self.name).familiar


def name_annotations(name: str) -> tuple[tuple[str, str], ...]:
    """The index.json annotations naming an image in the store: full name + short ref.name."""
    ref = parse_reference(name)
    out = {ANNOTATION_IMAGE_NAME: str(ref)}
    if REF_NAME_RE.match(ref.familiar):
        out[ANNOTATION_REF_NAME] = ref.familiar
    return pairs(out)


class RefStore:
    """Reads and atomically rewrites ``index.json`` under a lock; one entry per name, sorted by name."""

    def __init__(self, root: Path, *, lock_path: Path, tmp_dir: Path) -> None:
        self.root = root
        self.index_path = root / "index.json"
        self._lock_path = lock_path
        self._tmp_dir = tmp_dir

    def lock(self) -> FileLock:
        return FileLock(self._lock_path)

    def _read(self) -> Index:
        try:
            data = self.index_path.read_bytes()
        except FileNotFoundError:
            return Index()
        try:
            return Index.from_bytes(data, str(self.index_path))
        except ImageFormatError as exc:
            raise StoreError(f"the store's index.json is damaged: {exc}") from None

    def _write(self, index: Index) -> None:
        atomic_write(self.index_path, index.to_bytes(), tmp_dir=self._tmp_dir)

    def entries(self) -> tuple[RefEntry, ...]:
        """Every named image (entries with no usable name are ignored)."""
        out = []
        for desc in self._read().manifests:
            name = entry_name(desc)
            if name is not None:
                out.append(RefEntry(name=name, descriptor=desc))
        return tuple(out)

    def descriptors(self) -> tuple[Descriptor, ...]:
        """Every descriptor in index.json (named or not): the roots that prune keeps."""
        return self._read().manifests

    def get(self, name: str) -> RefEntry | None:
        full = str(parse_reference(name))
        for entry in self.entries():
            if entry.name == full:
                return entry
        return None

    def set(self, name: str, descriptor: Descriptor) -> str:
        """Point ``name`` at ``descriptor`` (replacing what it named); returns the normalised name."""
        full = str(parse_reference(name))
        desc = dataclasses.replace(descriptor, annotations=name_annotations(full))
        with self.lock():
            index = self._read()
            kept = [d for d in index.manifests if entry_name(d) != full]
            kept.append(desc)
            kept.sort(key=lambda d: (entry_name(d) or "", d.digest.value))
            if tuple(kept) != index.manifests:  # a rebuild that names the same image again writes nothing
                self._write(dataclasses.replace(index, manifests=tuple(kept)))
        return full

    def remove(self, name: str) -> RefEntry:
        """Drop ``name``; StoreError if it is not there."""
        full = str(parse_reference(name))
        with self.lock():
            index = self._read()
            found = [d for d in index.manifests if entry_name(d) == full]
            if not found:
                raise StoreError(f"no image named {name!r} in the store")
            self._write(dataclasses.replace(index, manifests=tuple(d for d in index.manifests if entry_name(d) != full)))
        return RefEntry(name=full, descriptor=found[0])
