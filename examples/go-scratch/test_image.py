"""What the go-scratch Dockerfile produces, checked with minibuild's pytest plugin: no Docker daemon needed.

    MINIBUILD_FIXTURE_PADDING=0.01 pytest examples/go-scratch/test_image.py

(the padding setting only makes the golang fixture image's filler bytes small, so the build is quick).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.fixtures_padding import padding_scale
from minibuild.testing import assert_config, assert_file, assert_no_file

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.minibuild(context=HERE)


def test_final_image_holds_only_the_program(image) -> None:  # type: ignore[no-untyped-def]
    assert sorted(image.files) == ["/", "/app"]
    assert_file(image, "/app", type="file", mode="-rwxr-xr-x", uid=0, gid=0)
    assert_no_file(image, "/bin/sh")
    assert_no_file(image, "/src")
    assert len(image.layers) == 1
    assert image.layers[0].instruction == "COPY --from=build /out/app /app"


def test_final_image_config(image) -> None:  # type: ignore[no-untyped-def]
    assert_config(image, entrypoint=["/app"], cmd=None, exposed_ports=[], user="", workdir="")


@pytest.mark.minibuild(context=HERE, target="build")
def test_target_build_is_the_go_toolchain_image(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/usr/local/go/bin/go", mode=0o755)
    assert_file(image, "/out/app", mode=0o755)
    assert_file(image, "/src/main.go", contains="fmt.Println")
    assert_config(image, workdir="/src")


def test_scratch_image_is_much_smaller_than_the_build_stage(minibuild_build) -> None:  # type: ignore[no-untyped-def]
    if padding_scale() == 0:
        pytest.skip("MINIBUILD_FIXTURE_PADDING=0 removes the fixture images' size padding, so sizes say nothing")
    final = minibuild_build(HERE)
    build = minibuild_build(HERE, target="build")
    assert final.size * 100 < build.size, (final.size, build.size)
