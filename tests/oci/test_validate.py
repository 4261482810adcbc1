"""The §6.9 self-check refuses what real consumers reject (image-format.md §7 checklist)."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import ImageFormatError
from minibuild.oci.archive import save_image_tar
from minibuild.oci.image import Image, Layer
from minibuild.oci.model import MEDIA_DOCKER_LAYER, Descriptor, History
from minibuild.oci.validate import check_layer_tar, validate_image
from minibuild.store import Store
from tests.oci.layers import make_layer


def _image(store: Store, **files: object) -> Image:
    layer = make_layer(**files)  # type: ignore[arg-type]
    store.blobs.put_bytes(layer.blob)
    return Image.scratch().append_layer(layer)


def test_good_image_passes(store: Store, two_layer_image: Image) -> None:
    assert validate_image(store.blobs, two_layer_image) == ()


@pytest.mark.parametrize("entries, message", [
    ([("a", "other", ""), ("a", "other", "")], "duplicate"),                       # §1.6 duplicate entries
    ([("d/", "dir", ""), ("d/x", "other", ""), ("d/.wh.x", "other", "")], "whiteout"),  # §7.3
    ([("d/", "dir", ""), ("d/.wh.x", "other", ""), ("d/x", "other", "")], "whiteout"),
    ([("b", "hardlink", "a"), ("a", "other", "")], "hardlink"),                     # §7.4 target later
    ([("b", "hardlink", "lower/file")], "hardlink"),                               # §7.4 cross-layer
    ([("/etc/passwd", "other", "")], "unsafe"),
    ([("../x", "other", "")], "unsafe"),
])
def test_layer_structure_errors(entries: list[tuple[str, str, str]], message: str) -> None:
    with pytest.raises(ImageFormatError, match=message):
        check_layer_tar(entries, "layer 0")


def test_missing_parent_is_a_warning() -> None:  # §7.2: loads, but engines reset the parent's attributes
    assert check_layer_tar([("a/b", "other", "")], "layer 0") != ()
    assert check_layer_tar([("./", "dir", ""), ("./a/", "dir", ""), ("./a/b", "other", "")], "layer 0") == ()


def test_hardlink_after_target_is_fine(store: Store) -> None:
    img = _image(store, files={"a": "x"}, hardlinks={"b": "a"})
    assert validate_image(store.blobs, img) == ()


def test_diff_id_over_compressed_bytes_is_refused(store: Store) -> None:  # §7.1
    layer = make_layer({"f": "1"}, gz=True)
    store.blobs.put_bytes(layer.blob)
    wrong = Layer(descriptor=Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size),
                  diff_id=layer.digest)
    with pytest.raises(ImageFormatError, match="diff_id"):
        validate_image(store.blobs, Image.scratch().append_layer(wrong))


def test_wrong_descriptor_size_is_refused(store: Store) -> None:  # §7.12
    layer = make_layer({"f": "1"})
    store.blobs.put_bytes(layer.blob)
    wrong = Layer(descriptor=Descriptor(media_type=layer.media_type, digest=layer.digest, size=layer.size + 1),
                  diff_id=layer.diff_id)
    with pytest.raises(ImageFormatError, match="bytes"):
        validate_image(store.blobs, Image.scratch().append_layer(wrong))


def test_too_many_history_entries_is_refused(store: Store) -> None:  # §7.8
    img = _image(store, files={"f": "1"})
    img = img.with_config(history=img.history + (History(created_by="RUN x"),))
    with pytest.raises(ImageFormatError, match="history"):
        validate_image(store.blobs, img)


def test_docker_media_types_are_refused(store: Store) -> None:  # §7.11 umoci rejects them
    img = _image(store, files={"f": "1"})
    docker_typed = Image(config=img.config, layers=(dataclasses.replace(
        img.layers[0], descriptor=dataclasses.replace(img.layers[0].descriptor, media_type=MEDIA_DOCKER_LAYER)),))
    with pytest.raises(ImageFormatError, match="media type"):
        validate_image(store.blobs, docker_typed)


def test_zero_layer_image_is_saved_with_the_empty_layer(store: Store, tmp_path: Path) -> None:  # §7.16
    written = save_image_tar(store.blobs, Image.scratch().with_config(cmd=["x"]), ["empty:1"], tmp_path / "e.tar")
    assert [layer.diff_id for layer in written.layers] == [
        Digest("sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef")]
    assert Store.open(tmp_path / "o") is not None


def test_gzip_layers_are_checked_through_decompression(store: Store) -> None:
    layer = make_layer({"f": "1" * 5000}, gz=True)
    store.blobs.put_bytes(layer.blob)
    assert gzip.decompress(layer.blob)[:1] == b"f"
    assert validate_image(store.blobs, Image.scratch().append_layer(layer)) == ()


@pytest.mark.parametrize("gz", [False, True])
def test_checking_while_copying_writes_the_same_bytes_and_refuses_the_same_blobs(store: Store, tmp_path: Path,
                                                                                 gz: bool) -> None:
    import io

    from minibuild.oci.archive import ArchiveEntry, write_archive

    image = Image.scratch()
    for files in ({"a": "1" * 3000, "d/": None}, {"b": "2"}):
        layer = make_layer(files, gz=gz)
        store.blobs.put_bytes(layer.blob)
        image = image.append_layer(layer)
    entry = [ArchiveEntry(image=image, names=("x:1",))]
    before, inline = io.BytesIO(), io.BytesIO()
    write_archive(before, store.blobs, entry)
    write_archive(inline, store.blobs, entry, check_while_copying=True)
    assert inline.getvalue() == before.getvalue()
    # a layer whose diff_id the config gets wrong: refused in both modes, and save leaves no file
    bad = dataclasses.replace(image.layers[1], diff_id=Digest("sha256:" + "0" * 64))
    wrong = Image.scratch().append_layer(image.layers[0]).append_layer(bad)
    for mode in (False, True):
        with pytest.raises(ImageFormatError, match="diff_id"):
            write_archive(io.BytesIO(), store.blobs, [ArchiveEntry(image=wrong, names=("x:1",))],
                          check_while_copying=mode)
    with pytest.raises(ImageFormatError, match="diff_id"):
        save_image_tar(store.blobs, wrong, ["x:1"], tmp_path / "w.tar")
    assert list(tmp_path.glob("*w.tar*")) == []
