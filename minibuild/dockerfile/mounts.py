"""``RUN --mount`` values as BuildKit splits them: one CSV record of ``key=value`` fields (keys lower-cased)."""

from __future__ import annotations

import csv

from minibuild.record import record


@record
class MountFrom:
    """What a ``--mount`` reads from another stage or an image: ``from=``, and its source and target as written."""

    from_: str
    source: str = ""
    target: str = ""


def mount_fields(raw: str) -> list[tuple[str, str | None]]:
    """(lower-cased key, value; None for a bare key such as ``ro``) of each field of a ``--mount`` value."""
    try:
        fields = next(csv.reader([raw], strict=False), [])
    except csv.Error:
        fields = raw.split(",")
    out: list[tuple[str, str | None]] = []
    for field in fields:
        key, eq, value = field.partition("=")
        out.append((key.lower(), value if eq else None))
    return out


def from_variable(raw: str) -> bool:
    """Whether the ``from=`` of a ``--mount`` value uses a variable, which BuildKit refuses when it parses the
    Dockerfile (``'from' doesn't support variable expansion``): a ``$`` anywhere but as its last character."""
    return any(key == "from" and value is not None and "$" in value[:-1] for key, value in mount_fields(raw))


def mount_from(raw: str) -> MountFrom | None:
    """The stage or image a ``--mount`` value reads (``from=``, with ``source``/``src`` and
    ``target``/``dst``/``destination``), None when it names none."""
    fields = {key: value or "" for key, value in mount_fields(raw)}
    if not fields.get("from"):
        return None
    return MountFrom(from_=fields["from"], source=fields.get("source", fields.get("src", "")),
                     target=fields.get("target", fields.get("dst", fields.get("destination", ""))))
