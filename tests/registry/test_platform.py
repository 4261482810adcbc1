"""Choosing a manifest from an index by platform (pure)."""

from __future__ import annotations

import pytest

from minibuild.digest import Digest
from minibuild.errors import RegistryError
from minibuild.oci.model import MEDIA_OCI_MANIFEST, Descriptor, Index, Platform
from minibuild.registry import choose_manifest, parse_platform


def desc(n: int, arch: str, variant: str | None = None, media_type: str = MEDIA_OCI_MANIFEST) -> Descriptor:
    return Descriptor(media_type=media_type, digest=Digest("sha256:" + f"{n:x}" * 64), size=10,
                      platform=Platform(os="linux", architecture=arch, variant=variant))


INDEX = Index(manifests=(desc(1, "arm", "v6"), desc(2, "arm", "v7"), desc(3, "amd64"), desc(4, "arm64", "v8"),
                         desc(5, "amd64", media_type="application/vnd.oci.image.index.v1+json")))


@pytest.mark.parametrize(("platform", "expected"), [
    ("linux/amd64", 3), ("linux/arm/v7", 2), ("linux/arm/v6", 1), ("linux/arm", 1), ("linux/arm64", 4),
])
def test_choose(platform: str, expected: int) -> None:
    assert choose_manifest(INDEX, parse_platform(platform)).digest.hex[0] == f"{expected:x}"


def test_missing_platform_lists_what_exists() -> None:
    with pytest.raises(RegistryError, match=r"linux/arm/v5 \(it has: linux/amd64, linux/arm/v6, linux/arm/v7, linux/arm64/v8\)"):
        choose_manifest(INDEX, parse_platform("linux/arm/v5"))


@pytest.mark.parametrize("bad", ["linux", "linux/", "a/b/c/d", ""])
def test_bad_platform(bad: str) -> None:
    with pytest.raises(RegistryError, match="invalid platform"):
        parse_platform(bad)
