"""One image size (minibuild.units.image_size, docs/image-size.md): the sum of the distinct layer blobs' sizes
as the manifest lists them. Every place that shows a size agrees with that number read back from the saved tar."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from minibuild.api import build
from minibuild.cli import cli
from minibuild.store import Store


def _sizes_in_tarball(path: Path) -> tuple[int, int]:
    """(sum of distinct layer sizes from the manifest, sum of those blobs' real lengths) of an OCI/docker tar."""
    with tarfile.open(path) as tar:
        def blob(digest: str) -> bytes:
            f = tar.extractfile("blobs/" + digest.replace(":", "/"))
            assert f is not None
            return f.read()

        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        layers = {d["digest"]: d["size"] for d in manifest["layers"]}
        return sum(layers.values()), sum(len(blob(d)) for d in layers)


@pytest.mark.parametrize("cache_to", [(), ("type=inline",)])
def test_every_command_shows_the_same_image_size(tmp_path: Path, cache_to: tuple[str, ...]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a").write_bytes(b"a" * 3000)
    (ctx / "b").write_bytes(b"b" * 10)
    # the same layer twice (COPY of the same content to the same place) must be counted once
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY a /a\nCOPY b /b\nCOPY b /b\nLABEL x=y\n")
    store_dir = tmp_path / "store"
    out, report = tmp_path / "img.tar", tmp_path / "report.json"
    result = build(ctx, store=store_dir, tags=["sized:1"], output=out, report=report, cache_to=list(cache_to))

    expected, real = _sizes_in_tarball(out)
    assert expected == real

    assert result.size == expected
    [record] = [r for r in Store.open(store_dir).images() if r.familiar == "sized:1"]
    assert record.size == expected
    assert json.loads(report.read_text())["totals"]["final_bytes"] == expected

    runner = CliRunner()
    inspected = runner.invoke(cli, ["--store", str(store_dir), "inspect", "sized:1"])
    assert inspected.exit_code == 0, inspected.output
    assert json.loads(inspected.output)["Size"] == expected

    du = runner.invoke(cli, ["--store", str(store_dir), "du", "--json"])
    assert du.exit_code == 0, du.output
    [row] = [i for i in json.loads(du.output)["images"] if any("sized:1" in n for n in i["names"])]
    assert row["size"] == expected

    from minibuild.units import human_bytes

    listing = runner.invoke(cli, ["--store", str(store_dir), "images"])
    assert listing.exit_code == 0, listing.output
    [line] = [ln for ln in listing.output.splitlines() if ln.startswith("sized:1")]
    assert line.split()[-1] == human_bytes(expected)
