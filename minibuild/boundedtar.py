"""The one tar reader for untrusted archives: tarfile with extension headers capped before they are read.

Every tar minibuild reads (layers applied, checked or listed, ``load``, ADD of a local archive, ``cp`` out of an
image, the emulated shell's ``tar``) is opened with ``open_tar``.  tarfile itself reads a PAX extended header, a
GNU long name/link or a sparse map whole into memory; here, before tarfile reads one:

* the payloads of the extension headers in front of one member (PAX ``x``, GNU ``L``/``K``, GNU sparse extension
  blocks, a PAX 1.0 sparse map) may total at most ``MAX_HEADER_BYTES`` (1 MiB; a path is at most 4 KiB, xattrs
  of one file a few KiB to 64 KiB on Linux), and at most ``MAX_EXTENSION_HEADERS`` of them may precede it;
* global PAX headers (``g``) may total ``MAX_HEADER_BYTES`` over the whole archive (they accumulate);
* the bytes the members' contents extract to -- a sparse member's full size, not the few bytes it stores --
  count against ``MINIBUILD_MAX_LAYER_BYTES`` (``minibuild.limits``), checked at each header, before any
  content is produced.

A streamed (``r|``) archive keeps no list of its members, so memory stays flat however many there are.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from typing import IO, Any, BinaryIO, cast

from minibuild.errors import ImageFormatError, MinibuildError
from minibuild.limits import ExpansionCounter, max_layer_bytes

MAX_HEADER_BYTES = 1 << 20
MAX_EXTENSION_HEADERS = 16
_BLOCK = tarfile.BLOCKSIZE
_GLOBAL = tarfile.XGLTYPE
_SPARSE = tarfile.GNUTYPE_SPARSE
_EXTENSION_TYPES = frozenset({tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME,
                              tarfile.GNUTYPE_LONGLINK})
_PROC_MEMBER = cast("Callable[[tarfile.TarInfo, tarfile.TarFile], tarfile.TarInfo]",
                    getattr(tarfile.TarInfo, "_proc_member"))
_NTI = cast("Callable[[bytes], int]", getattr(tarfile, "nti"))


class _Budget:
    """What one archive has spent: extension-header bytes of the pending member, global headers, content."""

    def __init__(self, what: str, error: type[MinibuildError], limit: int | None) -> None:
        self.what = what
        self.error = error
        self.pending = 0
        self.pending_headers = 0
        self.global_bytes = 0
        self.extracted = ExpansionCounter(f"{what} (its files' contents, sparse files at full size)", limit=limit,
                                          error=error)

    def extension(self, size: int, kind: str, *, header: bool = True) -> None:
        """Account for an extension header (or a block of a sparse map: ``header=False``) before it is read."""
        self.pending += size
        self.pending_headers += header
        if self.pending_headers > MAX_EXTENSION_HEADERS:
            raise self.error(f"{self.what}: more than {MAX_EXTENSION_HEADERS} extension headers precede one member "
                             "(a hostile archive)")
        if self.pending > MAX_HEADER_BYTES:
            raise self.error(f"{self.what}: a {kind} of more than {MAX_HEADER_BYTES} bytes precedes one member "
                             "(a hostile archive; minibuild does not read it)")

    def global_header(self, size: int) -> None:
        self.global_bytes += size
        if self.global_bytes > MAX_HEADER_BYTES:
            raise self.error(f"{self.what}: its global PAX headers total more than {MAX_HEADER_BYTES} bytes "
                             "(a hostile archive; minibuild does not read them)")

    def member(self) -> None:
        self.pending = 0
        self.pending_headers = 0


def _budget(tf: tarfile.TarFile) -> _Budget:
    budget = getattr(tf, "budget", None)
    if not isinstance(budget, _Budget):
        raise ImageFormatError("internal: a bounded tar member read through an unbounded TarFile")
    return budget


class BoundedTarInfo(tarfile.TarInfo):
    """A TarInfo whose extension headers are accounted for (and refused when too large) before tarfile reads them."""

    def _proc_member(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        budget = _budget(tf)
        if self.size < 0:  # base-256 allows it; tarfile would then read(-n): the whole rest of the stream
            raise budget.error(f"{budget.what}: member {self.name!r} has a negative size (a hostile archive)")
        if self.type in _EXTENSION_TYPES:
            budget.extension(_padded(self.size), "PAX or GNU long-name header")
        elif self.type == _GLOBAL:
            budget.extension(0, "global PAX header")
            budget.global_header(_padded(self.size))
        elif self.type != _SPARSE:  # a sparse member accounts for its extension blocks as it reads them
            budget.member()
        return _PROC_MEMBER(self, tf)

    def _proc_sparse(self, tf: tarfile.TarFile) -> tarfile.TarInfo:
        """An old-GNU sparse member: the sparse map in its header plus extension blocks, each one accounted for."""
        budget = _budget(tf)
        structs, extended, realsize = cast("tuple[list[tuple[int, int]], bool, int]",
                                           getattr(self, "_sparse_structs"))
        del self._sparse_structs  # type: ignore[attr-defined]
        fileobj = cast("BinaryIO", tf.fileobj)
        budget.extension(0, "GNU sparse member")
        while extended:
            budget.extension(_BLOCK, "GNU sparse map", header=False)
            buf = fileobj.read(_BLOCK)
            if len(buf) != _BLOCK:
                raise tarfile.ReadError("unexpected end of data in a GNU sparse map")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset, numbytes = _NTI(buf[pos:pos + 12]), _NTI(buf[pos + 12:pos + 24])
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            extended = bool(buf[504])
        budget.member()
        setattr(self, "sparse", structs)  # typeshed types the attribute as bytes
        self.offset_data = fileobj.tell()
        tf.offset = self.offset_data + _padded(self.size)
        self.size = realsize
        return self

    def _proc_gnusparse_10(self, member: tarfile.TarInfo, pax_headers: dict[str, str], tf: tarfile.TarFile) -> None:
        """A PAX 1.0 sparse member: the map (decimal lines) at the start of its data, read bounded."""
        budget = _budget(tf)
        fileobj = cast("BinaryIO", tf.fileobj)
        numbers: list[int] = []
        buf = b""
        wanted: int | None = None
        while wanted is None or len(numbers) < wanted:
            while b"\n" not in buf:
                budget.extension(_BLOCK, "PAX sparse map", header=False)
                block = fileobj.read(_BLOCK)
                if len(block) != _BLOCK:
                    raise tarfile.ReadError("unexpected end of data in a PAX sparse map")
                buf += block
            line, buf = buf.split(b"\n", 1)
            try:
                value = int(line)
            except ValueError:
                raise tarfile.ReadError("invalid PAX sparse map") from None
            if wanted is None:
                wanted = 2 * value
            else:
                numbers.append(value)
        member.offset_data = fileobj.tell()
        setattr(member, "sparse", list(zip(numbers[::2], numbers[1::2])))



def _padded(size: int) -> int:
    return -(-size // _BLOCK) * _BLOCK


class BoundedTarFile(tarfile.TarFile):
    """A TarFile reading members as BoundedTarInfo; counts what members extract to; a stream keeps no member list."""

    tarinfo = BoundedTarInfo

    def __init__(self, *args: Any, budget: _Budget | None = None, stream: bool = False, **kwargs: Any) -> None:
        self.budget = budget if budget is not None else _Budget("archive", ImageFormatError, max_layer_bytes())
        self._forget = stream
        super().__init__(*args, **kwargs)

    def next(self) -> tarfile.TarInfo | None:
        again = getattr(self, "firstmember", None) is not None  # read by __init__, counted then
        ti = super().next()
        if ti is not None and not again:
            if ti.isreg():
                self.budget.extracted.add(ti.size)
            if self._forget:
                cast("list[tarfile.TarInfo]", getattr(self, "members")).clear()  # a stream is read once, in order: the list would only grow
        return ti


def open_tar(fileobj: BinaryIO | IO[bytes] | None = None, *, name: str | None = None, mode: str = "r|",
             what: str = "archive", error: type[MinibuildError] = ImageFormatError,
             limit: int | None | bool = True) -> tarfile.TarFile:
    """Open a tar for reading through the bounded reader (``mode``: ``r|`` streamed, ``r:`` or ``r:*`` seekable).

    ``limit`` bounds what the members extract to (``True``: ``MINIBUILD_MAX_LAYER_BYTES``); a header or
    content over its limit raises ``error`` with one line naming ``what``; a broken tar raises tarfile's errors.
    """
    if not mode.startswith("r"):
        raise ValueError("open_tar reads archives only")
    bound = max_layer_bytes() if limit is True else (None if limit is False else limit)
    budget = _Budget(what, error, bound)
    tf = BoundedTarFile.open(name, mode, fileobj, budget=budget, stream=mode.startswith("r|"))  # type: ignore[call-overload]
    return cast("tarfile.TarFile", tf)
