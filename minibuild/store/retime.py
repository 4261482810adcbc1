"""A layer blob with every mtime clamped to SOURCE_DATE_EPOCH, streamed (BuildKit's rewrite-timestamp exporter).

The members keep their order, names, owners, modes, links, xattrs and content; each header is written again by
``tarlayer.encode_header`` with ``mtime = min(mtime, epoch)`` (``tarlayer.clamp_mtime``). A layer the store wrote
(``write_layer``) comes out exactly as ``write_layer(..., source_date_epoch=epoch)`` would have written it. The
output is an uncompressed tar; the caller keeps the input blob itself when ``changed`` is False (nothing was
newer than the epoch), so a layer that is already clamped (a base image's, a ``--cache-from`` image's) keeps its
digest and compression.
"""

from __future__ import annotations

import dataclasses
from typing import BinaryIO

from minibuild.record import record
from minibuild.store.tarlayer import (
    BLOCK,
    CHUNK,
    END_OF_ARCHIVE,
    MEDIA_TYPE_TAR,
    LayerInfo,
    LayerOut,
    _Sink,
    clamp_mtime,
    encode_header,
)
from minibuild.store.tarread import iter_layer


@record
class Retimed:
    """What rewriting a layer produced: the new layer's digests, and whether any mtime was newer than the epoch."""

    info: LayerInfo
    changed: bool


def clamp_layer_mtimes(blob: BinaryIO, out: LayerOut, *, epoch: int) -> Retimed:
    """Write the layer read from ``blob`` (any compression ``iter_layer`` reads) to ``out`` as a tar whose mtimes
    are clamped to ``epoch``."""
    sink = _Sink(out, "none", 0)
    changed = False
    for entry, stream in iter_layer(blob):
        mtime = clamp_mtime(entry.mtime, epoch)
        changed = changed or mtime != entry.mtime
        sink.write(encode_header(dataclasses.replace(entry, mtime=mtime)))
        if stream is not None and entry.size:
            while chunk := stream.read(CHUNK):
                sink.write(chunk)
            pad = -entry.size % BLOCK
            if pad:
                sink.write(b"\0" * pad)
    sink.write(END_OF_ARCHIVE)
    diff_id, digest = sink.close()
    return Retimed(info=LayerInfo(diff_id=diff_id, digest=digest, size=sink.blob_size,
                                  uncompressed_size=sink.tar_size, media_type=MEDIA_TYPE_TAR, compression="none"),
                   changed=changed)
