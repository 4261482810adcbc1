"""The store commands end to end through the real CLI entry point (a subprocess per command)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from minibuild.oci.archive import save_image_tar
from minibuild.oci.image import Image
from minibuild.oci.model import History
from minibuild.store import Store
from tests.oci.layers import make_layer


def mb(store: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args],
                          capture_output=True, text=True, timeout=120)
    assert (proc.returncode == 0) == ok, proc.stderr
    return proc


def _archive(tmp_path: Path) -> tuple[Path, Image]:
    src = Store.open(tmp_path / "src")
    layer = make_layer({"hello.txt": "hi\n"})
    src.blobs.put_bytes(layer.blob)
    image = (Image.scratch().append_layer(layer, history=History(created_by="COPY hello.txt /"))
             .with_config(cmd=["cat", "/hello.txt"]))
    out = tmp_path / "in.tar"
    save_image_tar(src.blobs, image, ["demo:1"], out)
    return out, image


def test_cli_store_commands(tmp_path: Path) -> None:
    archive, image = _archive(tmp_path)
    store = tmp_path / "store"
    out = mb(store, "load", str(archive)).stdout
    assert "Loaded image: demo:1" in out and image.config_digest.value in out
    listing = mb(store, "images").stdout
    assert "demo:1" in listing and image.config_digest.hex[:12] in listing
    mb(store, "tag", "demo:1", "other/name:2")
    doc = json.loads(mb(store, "inspect", "other/name:2").stdout)
    assert doc["Id"] == image.config_digest.value and doc["Digest"] == image.digest.value
    assert doc["Layers"] == [{"digest": image.layers[0].digest.value, "diff_id": image.layers[0].diff_id.value,
                              "size": image.layers[0].size, "mediaType": "application/vnd.oci.image.layer.v1.tar"}]
    assert doc["History"] == [{"created": "1970-01-01T00:00:00Z", "created_by": "COPY hello.txt /"}]
    assert doc["Config"] == {"Cmd": ["cat", "/hello.txt"]}
    file_doc = json.loads(mb(store, "inspect", str(archive)).stdout)
    assert file_doc["Digest"] == image.digest.value and file_doc["Names"] == ["demo:1"]
    saved = tmp_path / "out.tar"
    out = mb(store, "save", "other/name:2", "-o", str(saved)).stdout
    assert image.digest.value in out
    assert "Untagged: demo:1" in mb(store, "rmi", "demo:1").stdout
    assert "Deleted 0 blobs" in mb(store, "prune").stdout  # other/name:2 still holds them
    mb(store, "rmi", "other/name:2")
    pruned = mb(store, "prune").stdout
    freed = image.layers[0].size + len(image.config_bytes) + len(image.manifest_bytes)
    assert "Deleted 3 blobs" in pruned and f"({freed} bytes)" in pruned


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    proc = mb(tmp_path / "store", "inspect", "nothing-here", ok=False)
    assert proc.stderr.startswith("error: no image 'nothing-here'") and proc.stderr.count("\n") == 1
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar at all" * 100)
    proc = mb(tmp_path / "store", "load", str(bad), ok=False)
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
