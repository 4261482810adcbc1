"""``RUN --mount`` values as BuildKit splits them: one CSV record of ``key=value`` fields (keys lower-cased)."""

from __future__ import annotations

import posixpath
import re

from minibuild.dockerfile.suggest import with_suggestion
from minibuild.record import record


@record
class MountFrom:
    """What a ``--mount`` reads from another stage or an image: ``from=``, and its source and target as written."""

    from_: str
    source: str = ""
    target: str = ""


def mount_fields(raw: str) -> list[tuple[str, str | None]]:
    """(lower-cased key, value; None for a bare key such as ``ro``) of each field of a ``--mount`` value."""
    import csv  # only for RUN --mount values (a Dockerfile without them never imports it)

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


MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_ALL_KEYS = ("type", "from", "source", "target", "readonly", "id", "sharing", "required", "mode", "uid", "gid",
             "src", "dst", "ro", "rw", "readwrite", "env", "size", "destination")
_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_FALSE = ("0", "f", "F", "FALSE", "false", "False")
_RAM = re.compile(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?")


@record
class Mount:
    """One ``RUN --mount`` as BuildKit reads it (values already expanded), with BuildKit's defaults applied:
    ``readonly`` is True for bind, secret and ssh mounts unless ``rw`` is given, False for cache and tmpfs."""

    type: str = "bind"
    target: str = ""  # as written ("" = not given)
    source: str = ""
    from_: str = ""
    readonly: bool = True
    id: str = ""
    sharing: str = ""  # "" = not given (shared)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    size: int | None = None  # tmpfs upper limit in bytes
    required: bool = False
    env: str | None = None  # secret: also (or only) the value of this environment variable


class MountError(ValueError):
    """A ``--mount`` value BuildKit refuses; the message is BuildKit's."""


def _bool(key: str, value: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise MountError(f"invalid value for {key}: {value}")


def ram_bytes(value: str) -> int:
    """docker/go-units RAMInBytes: ``64m``, ``1g``, ``1.5GiB``, ``4096`` (binary multipliers)."""
    m = _RAM.fullmatch(value)
    if m is None:
        raise ValueError(value)
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}[(m.group(2) or "").lower()]
    return int(float(m.group(1)) * mult)


def _uint(value: str, base: int, what: str) -> int:
    try:
        n = int(value, base)
    except ValueError:
        n = -1
    if n < 0 or n > 0xFFFFFFFF or value.strip() != value or value.startswith(("+", "-")) or "_" in value:
        raise MountError(f"invalid value {value} for {what}")
    return n


def parse_mount(raw: str) -> Mount:
    """A ``--mount`` value (expanded) as BuildKit's ``parseMount`` reads it: fields in order, keys lower-cased,
    BuildKit's error for each bad option (MountError)."""
    import csv

    try:
        fields = next(csv.reader([raw], strict=True), [])
    except csv.Error as exc:
        raise MountError(f"failed to parse csv mounts: {exc}") from None
    m: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for field in fields:
        key, eq, value = field.partition("=")
        key = key.lower()
        typ = str(m["type"])
        if not eq:
            if key in ("readonly", "ro"):
                m["readonly"], ro_auto = True, False
            elif key in ("readwrite", "rw"):
                m["readonly"], ro_auto = False, False
            elif key == "required" and typ in ("secret", "ssh"):
                m["required"] = True
            elif key == "required":
                raise MountError(f"unexpected key '{key}' for mount type '{typ}'")
            else:
                raise MountError(f"invalid field '{field}' must be a key=value pair")
            continue
        if key == "type":
            if value.lower() not in MOUNT_TYPES:
                raise MountError(with_suggestion(f'unsupported mount type "{value}"', value, MOUNT_TYPES,
                                                 case_sensitive=True))
            m["type"] = value.lower()
        elif key == "from":
            m["from_"] = value
        elif key in ("source", "src"):
            m["source"] = value
        elif key in ("target", "dst", "destination"):
            m["target"] = value
        elif key in ("readonly", "ro"):
            m["readonly"], ro_auto = _bool(key, value), False
        elif key in ("readwrite", "rw"):
            m["readonly"], ro_auto = not _bool(key, value), False
        elif key == "required":
            if typ not in ("secret", "ssh"):
                raise MountError(f"unexpected key '{key}' for mount type '{typ}'")
            m["required"] = _bool(key, value)
        elif key == "size":
            if typ != "tmpfs":
                raise MountError(f"unexpected key '{key}' for mount type '{typ}'")
            try:
                m["size"] = ram_bytes(value)
            except ValueError:
                raise MountError(f"invalid value for {key}: {value}") from None
        elif key == "env":
            if typ != "secret":
                raise MountError(f"unexpected key '{key}' for mount type '{typ}'")
            m["env"] = value
        elif key == "id":
            m["id"] = value
        elif key == "sharing":
            if value.lower() not in SHARING_MODES:
                raise MountError(with_suggestion(f'unsupported sharing value "{value}"', value, SHARING_MODES,
                                                 case_sensitive=True))
            m["sharing"] = value.lower()
        elif key == "mode":
            m["mode"] = _uint(value, 8, "mode")
        elif key == "uid":
            m["uid"] = _uint(value, 10, "uid")
        elif key == "gid":
            m["gid"] = _uint(value, 10, "gid")
        else:
            raise MountError(with_suggestion(f"unexpected key '{key}' in '{field}'", key, _ALL_KEYS,
                                             case_sensitive=True))
    typ = str(m["type"])
    if typ not in ("secret", "ssh", "cache"):
        for name in ("mode", "uid", "gid"):
            if m.get(name) is not None:
                raise MountError(f'{name} not allowed for "{typ}" type mounts')
    if ro_auto:
        m["readonly"] = typ not in ("cache", "tmpfs")
    if typ == "secret":
        if m.get("from_"):
            raise MountError("secret mount should not have a from")
        if m.get("sharing"):
            raise MountError("secret mount should not define sharing")
        if not m.get("source") and not m.get("target") and not m.get("id"):
            raise MountError("invalid secret mount. one of source, target required")
        if m.get("source") and m.get("id"):
            raise MountError("both source and id can't be set")
    if m.get("sharing") and typ != "cache":
        raise MountError(f"invalid cache sharing set for {typ} mount")
    return Mount(**m)  # type: ignore[arg-type]


def mount_target(m: Mount, workdir: str, ssh_index: int = 0) -> str:
    """The absolute, normalised path a mount appears at: a relative target is taken from the WORKDIR (as
    BuildKit joins it); a secret defaults to ``/run/secrets/<id>`` and an ssh socket to
    ``/run/buildkit/ssh_agent.<N>``. MountError for ``/`` (BuildKit: ``invalid mount target "/"``)."""
    target = m.target
    if not target and m.type == "secret":
        target = "/run/secrets/" + posixpath.basename(secret_id(m))
    if not target and m.type == "ssh":
        target = f"/run/buildkit/ssh_agent.{ssh_index}"
    full = posixpath.normpath(posixpath.join("/", workdir or "/", target))
    if full.startswith("//"):
        full = "/" + full.lstrip("/")
    if full == "/":
        raise MountError(f'invalid mount target "{full}"')
    return full


def secret_id(m: Mount) -> str:
    """The secret a ``type=secret`` mount reads: ``source`` or ``id``, else the basename of its target."""
    return m.source or m.id or posixpath.basename(m.target.rstrip("/"))


def cache_id(m: Mount) -> str:
    """The identity of a ``type=cache`` mount's persistent directory: ``id``, defaulting to the target."""
    return m.id or m.target
