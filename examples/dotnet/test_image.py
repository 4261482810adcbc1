"""What the dotnet Dockerfile produces, checked with minibuild's pytest plugin: no Docker daemon needed.

    MINIBUILD_FIXTURE_PADDING=0.01 pytest examples/dotnet/test_image.py

(the padding setting only makes the fixture base images' filler bytes small, so the builds are quick).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.fixtures_padding import padding_scale
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.minibuild(context=HERE)


def test_final_image_is_the_runtime_with_the_published_app(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/app/hello.dll", type="file", mode="-rw-r--r--",
                contains="out: Hello from an ASP.NET Core runtime image built by minibuild!")
    for name in ("hello.deps.json", "hello.runtimeconfig.json", "hello.pdb"):
        assert_file(image, f"/app/{name}")
    assert_file(image, "/app/hello", mode=0o755)  # the apphost launcher
    for path in ("/usr/share/dotnet/sdk", "/root/.nuget", "/app/Program.cs", "/app/hello.csproj", "/src"):
        assert_no_file(image, path)
    assert_config(image, entrypoint=["dotnet", "hello.dll"], workdir="/app", user="1654")
    assert_env(image, ASPNET_VERSION="8.0.11", DOTNET_SDK_VERSION=None)


@pytest.mark.minibuild(context=HERE, target="build")
def test_build_stage_restored_and_published(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/src/obj/project.assets.json", contains="Microsoft.Extensions.Configuration.Json/8.0.1")
    assert_file(image, "/root/.nuget/packages/microsoft.extensions.configuration.json/8.0.1/.nupkg.metadata")
    assert_file(image, "/app/publish/hello.dll")
    assert_no_file(image, "/src/Dockerfile")  # .dockerignore


def test_runtime_image_is_much_smaller_than_the_sdk_stage(minibuild_build) -> None:  # type: ignore[no-untyped-def]
    if padding_scale() == 0:
        pytest.skip("MINIBUILD_FIXTURE_PADDING=0 removes the fixture images' size padding, so sizes say nothing")
    final = minibuild_build(HERE)
    build = minibuild_build(HERE, target="build")
    assert final.size * 3 < build.size, (final.size, build.size)
