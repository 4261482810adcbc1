"""What the java-maven Dockerfiles produce, checked with minibuild's pytest plugin: no Docker daemon needed.

    MINIBUILD_FIXTURE_PADDING=0.01 pytest examples/java-maven/test_image.py

(the padding setting only makes the fixture base images' filler bytes small, so the builds are quick).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from minibuild.fixtures_padding import padding_scale
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.minibuild(context=HERE)


def test_final_image_is_the_jre_with_the_jar(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/app/app.jar", type="file", mode="-rw-r--r--", uid=0, gid=0,
                contains=["Main-Class: com.example.App", "out: Hello from a JRE-only image built by minibuild!"])
    assert_file(image, "/usr/local/openjdk-21/bin/java", mode=0o755)
    for path in ("/usr/share/maven", "/usr/bin/mvn", "/root/.m2", "/app/src", "/app/pom.xml", "/app/target"):
        assert_no_file(image, path)
    assert_config(image, entrypoint=["java", "-jar", "app.jar"], workdir="/app", user="")
    assert_env(image, JAVA_HOME="/usr/local/openjdk-21", MAVEN_HOME=None)


def test_only_the_jar_crosses_from_the_build_stage(image) -> None:  # type: ignore[no-untyped-def]
    build = next(s for s in image.stages if s.name == "build")
    assert build.kept_by_final == ("COPY --from=build /app/target/hello-app-1.0.0.jar app.jar",)


@pytest.mark.minibuild(context=HERE, target="build")
def test_build_stage_has_maven_the_repository_and_target(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/usr/share/maven/bin/mvn", mode=0o755)
    assert_file(image, "/root/.m2/repository/org/junit/jupiter/junit-jupiter/5.11.3/junit-jupiter-5.11.3.pom")
    assert_file(image, "/app/target/classes/com/example/App.class")
    assert_file(image, "/app/target/maven-archiver/pom.properties", contains="artifactId=hello-app")


@pytest.mark.minibuild(context=HERE, dockerfile="Dockerfile.temurin")
def test_temurin_pair(image) -> None:  # type: ignore[no-untyped-def]
    assert_file(image, "/opt/java/openjdk/bin/java", mode=0o755)
    assert_file(image, "/opt/java/openjdk/release", contains='IMAGE_TYPE="JRE"')
    assert_file(image, "/app/app.jar", contains="out: Maven and the JDK stayed in the build stage.")


def test_jre_image_is_much_smaller_than_the_maven_stage(minibuild_build) -> None:  # type: ignore[no-untyped-def]
    if padding_scale() == 0:
        pytest.skip("MINIBUILD_FIXTURE_PADDING=0 removes the fixture images' size padding, so sizes say nothing")
    final = minibuild_build(HERE)
    build = minibuild_build(HERE, target="build")
    assert final.size * 1.7 < build.size, (final.size, build.size)
