"""What the python-slim Dockerfiles produce, checked with minibuild's pytest plugin: no Docker daemon needed.

    MINIBUILD_FIXTURE_PADDING=0.01 pytest examples/python-slim/test_image.py

(the padding setting only makes the fixture base images' filler bytes small, so the builds are quick).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.fixtures_padding import padding_scale
from minibuild.testing import assert_config, assert_file, assert_no_file

HERE = Path(__file__).resolve().parent
SITE = "/venv/lib/python3.12/site-packages"

pytestmark = pytest.mark.minibuild(context=HERE)


def test_slim_image_holds_the_venv_and_the_app(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, f"{SITE}/flask-3.0.3.dist-info/METADATA", contains="Name: flask")
    assert_file(image, f"{SITE}/gunicorn-23.0.0.dist-info/METADATA")
    assert_file(image, "/venv/bin/gunicorn", mode=0o755)
    assert_file(image, "/venv/pyvenv.cfg", contains="include-system-site-packages = false")
    assert_file(image, "/app/app.py")
    assert_no_file(image, "/usr/local/lib/python3.12/site-packages/flask")
    assert_no_file(image, "/requirements.txt")
    assert_config(image, cmd=["gunicorn", "--bind", "0.0.0.0:8000", "app:app"], exposed_ports=[8000], workdir="/app")


@pytest.mark.minibuild(context=HERE, dockerfile="Dockerfile.user")
def test_user_install_pair_copies_root_local(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/root/.local/lib/python3.12/site-packages/flask-3.0.3.dist-info/METADATA")
    assert_file(image, "/root/.local/bin/gunicorn", mode=0o755)
    assert_no_file(image, "/venv")


def test_slim_image_is_much_smaller_than_the_builder(minibuild_build) -> None:  # type: ignore[no-untyped-def]
    if padding_scale() == 0:
        pytest.skip("MINIBUILD_FIXTURE_PADDING=0 removes the fixture images' size padding, so sizes say nothing")
    final = minibuild_build(HERE)
    build = minibuild_build(HERE, target="builder")
    assert final.size * 2 < build.size, (final.size, build.size)
