"""Immutable Image: transforms return new images, history/diff_ids stay aligned, IDs are deterministic."""

from __future__ import annotations

import json

import pytest

from minibuild.errors import ConfigError, ImageFormatError
from minibuild.oci.image import EMPTY_LAYER_DIGEST, Image
from minibuild.oci.model import History
from minibuild.store import Store
from tests.oci.jsonschema_lite import validate_bytes
from tests.oci.layers import make_layer


def test_transforms_do_not_mutate(two_layer_image: Image) -> None:
    changed = two_layer_image.with_config(cmd=["other"])
    assert two_layer_image.config.cmd == ("/bin/tool",)
    assert changed.config.cmd == ("other",)
    assert changed.layers == two_layer_image.layers
    assert changed.config_digest != two_layer_image.config_digest


def test_history_and_layers(two_layer_image: Image) -> None:
    img = two_layer_image
    assert len(img.layers) == 2 == len(img.diff_ids)
    assert [h.empty_layer for h in img.history] == [False, True, False]
    assert img.config.created == "2023-11-14T22:13:20Z"
    assert img.layers[1].descriptor.media_type.endswith("tar+gzip")
    assert img.layers[0].digest == img.layers[0].diff_id  # uncompressed: blob digest is the diff_id
    assert img.layers[1].digest != img.layers[1].diff_id


def test_written_json_validates_against_oci_schemas(two_layer_image: Image) -> None:
    assert validate_bytes(two_layer_image.config_bytes, "config") == []
    assert validate_bytes(two_layer_image.manifest_bytes, "manifest") == []
    assert json.loads(two_layer_image.config_bytes)["history"][1]["empty_layer"] is True


def test_same_steps_same_digests(store: Store) -> None:
    def build() -> Image:
        layer = make_layer({"a": "1"})
        return Image.scratch(source_date_epoch=5).append_layer(layer).with_config(env=["X=1"])
    assert build().digest == build().digest
    assert build().config.created == "1970-01-01T00:00:05Z"


def test_add_history_needs_empty_layer() -> None:
    with pytest.raises(ConfigError):
        Image.scratch().add_history(History(created_by="RUN x"))
    with pytest.raises(ConfigError):
        Image.scratch().append_layer(make_layer({"a": "1"}), history=History(empty_layer=True))


def test_with_config_rejects_unknown_fields() -> None:
    with pytest.raises(ConfigError, match="nope"):
        Image.scratch().with_config(nope=1)


def test_mismatched_layers_rejected(two_layer_image: Image) -> None:
    with pytest.raises(ImageFormatError):
        Image(config=two_layer_image.config, layers=two_layer_image.layers[:1])


def test_empty_image_gets_the_empty_layer() -> None:
    img = Image.scratch().with_empty_layer()
    assert img.layers[0].diff_id == EMPTY_LAYER_DIGEST
    assert len(img.history) == 1 and not img.history[0].empty_layer


def test_store_round_trip_keeps_bytes(store: Store, two_layer_image: Image) -> None:
    digest = store.put_image(two_layer_image)
    assert digest == two_layer_image.digest
    back = store.get_image(digest)
    assert back.config_bytes == two_layer_image.config_bytes
    assert back.manifest_bytes == two_layer_image.manifest_bytes
    assert back == two_layer_image


def test_with_layers_swaps_blobs_and_diff_ids_keeping_history(two_layer_image: Image) -> None:
    from minibuild.oci.image import Layer

    other = make_layer({"etc/other": "x"})
    swapped = two_layer_image.with_layers((two_layer_image.layers[0], Layer.from_info(other)))
    assert swapped.diff_ids == (two_layer_image.diff_ids[0], other.diff_id)
    assert swapped.history == two_layer_image.history and swapped.digest != two_layer_image.digest
    assert two_layer_image.with_layers(two_layer_image.layers) is two_layer_image
    with pytest.raises(ConfigError, match="with_layers"):
        two_layer_image.with_layers(two_layer_image.layers[:1])
