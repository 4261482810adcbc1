"""Docker image references: parse, normalise (docker.io/library/...) and shorten names."""

from __future__ import annotations

import re

from minibuild.errors import ConfigError
from minibuild.oci.model import ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME, Descriptor
from minibuild.record import record

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_DOMAIN_RE = re.compile(r"^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
# org.opencontainers.image.ref.name grammar (annotations.md), as umoci enforces it
REF_NAME_RE = re.compile(r"^[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*$")


@record
class Reference:
    """A parsed, normalised image reference: ``domain/path[:tag][@digest]``."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """``docker.io/library/busybox``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """``busybox`` for docker.io/library/busybox, ``me/x`` for docker.io/me/x."""
        if self.domain == DEFAULT_REGISTRY:
            if self.path.startswith("library/") and self.path.count("/") == 1:
                return self.path[len("library/"):]
            return self.path
        return self.repository

    def __str__(self) -> str:
        """The fully normalised form: ``docker.io/library/busybox:latest``."""
        out = self.repository
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    @property
    def familiar(self) -> str:
        """The short form Docker shows: ``busybox:latest``."""
        out = self.familiar_repository
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out


def parse_reference(name: str, *, default_tag: bool = True) -> Reference:
    """Parse ``name`` like Docker's ParseNormalizedNamed (+ default tag ``latest`` unless a digest is given)."""
    if not name or name != name.strip():
        raise ConfigError(f"invalid image name {name!r}")
    rest = name
    digest: str | None = None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise ConfigError(f"invalid image name {name!r}: bad digest {digest!r}")
    tag: str | None = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG_RE.match(tag):
            raise ConfigError(f"invalid image name {name!r}: bad tag {tag!r}")
    first, sep, remainder = rest.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        domain, path = first, remainder
        if not _DOMAIN_RE.match(domain):
            raise ConfigError(f"invalid image name {name!r}: bad registry {domain!r}")
    else:
        domain, path = DEFAULT_REGISTRY, rest
    if domain == "index.docker.io":
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in path:
        path = "library/" + path
    if not _PATH_RE.match(path):
        hint = " (repository names must be lowercase)" if path.lower() != path else ""
        raise ConfigError(f"invalid image name {name!r}{hint}")
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain=domain, path=path, tag=tag, digest=digest)


def normalize_name(name: str) -> str:
    """``busybox`` -> ``docker.io/library/busybox:latest``."""
    return str(parse_reference(name))


def familiar_name(name: str) -> str:
    """``docker.io/library/busybox:latest`` -> ``busybox:latest``."""
    return parse_reference(name).familiar


def entry_name(desc: Descriptor) -> str | None:
    """The normalised name of an index entry (io.containerd.image.name, else org.opencontainers.image.ref.name)."""
    for key in (ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME):
        value = desc.annotation(key)
        if value:
            try:
                return str(parse_reference(value))
            except ConfigError:
                continue
    return None
