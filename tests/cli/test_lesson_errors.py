"""The lesson's mistakes get one line that says what is wrong: a COPY --from source missing from its stage, a
misspelt stage name, an undefined ARG in FROM (and nothing imported into the store for it)."""

from __future__ import annotations

from pathlib import Path

from tests.engine.engine_support import write_context
from tests.cli.support import mb


def _build(tmp_path: Path, dockerfile: str, *args: str) -> tuple[str, Path]:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": dockerfile})
    store = tmp_path / "s"
    p = mb(store, "build", str(ctx), "--progress", "quiet", *args)
    assert p.returncode == 1, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0], store


def _no_images(store: Path) -> None:
    assert mb(store, "images").stdout.splitlines()[1:] == []


def test_copy_from_names_the_stage_the_file_is_missing_from(tmp_path: Path) -> None:
    line, _ = _build(tmp_path, "FROM busybox AS builder\nRUN mkdir -p /root\nFROM busybox\n"
                               "COPY --from=builder /root/.local /root/.local\n")
    assert line == "error: Dockerfile:4: COPY --from=builder failed: /root/.local not found in stage builder"


def test_copy_from_an_unnamed_stage_by_index(tmp_path: Path) -> None:
    line, _ = _build(tmp_path, "FROM busybox\nRUN true\nFROM busybox\nCOPY --from=0 /nope /x\n")
    assert line == "error: Dockerfile:4: COPY --from=0 failed: /nope not found in stage stage-0"


def test_misspelt_stage_gets_did_you_mean(tmp_path: Path) -> None:
    line, store = _build(tmp_path, "FROM busybox AS build\nRUN true\nFROM busybox\nCOPY --from=biuld /x /x\n")
    assert line == ("error: Dockerfile:4: COPY --from=biuld: no stage is named 'biuld', and no image 'biuld' is in "
                    "the store or the fixtures: did you mean stage build?")


def test_unknown_from_name_says_it_is_taken_as_an_image(tmp_path: Path) -> None:
    line, _ = _build(tmp_path, "FROM busybox AS build\nRUN true\nFROM busybox\nCOPY --from=compiler /x /x\n")
    assert line.startswith("error: Dockerfile:4: COPY --from=compiler: 'compiler' is not a stage (stages: build), "
                           "so it is taken as an image name: base image 'compiler' is not in the store")


def test_undefined_arg_in_from_is_named_and_nothing_is_imported(tmp_path: Path) -> None:
    line, store = _build(tmp_path, "FROM node:${NODE_V}\nRUN true\n")
    assert line == ("error: Dockerfile:1: FROM: 'node:${NODE_V}' expands to 'node:', which is not a valid image "
                    "name; ARG NODE_V has no value (declare it before the first FROM with a default, or pass "
                    "--build-arg NODE_V=...)")
    _no_images(store)


def test_variable_in_copy_from_is_buildkits_error_and_imports_nothing(tmp_path: Path) -> None:
    """BuildKit never expands ``COPY --from`` (not even with a global ARG): its error, and no image imported."""
    line, store = _build(tmp_path, "ARG V\nFROM scratch\nCOPY --from=node:${V} /x /x\n")
    assert line == ("error: Dockerfile:3: variable expansion is not supported for --from, define a new stage with "
                    "FROM using ARG from global scope as a workaround")
    _no_images(store)


def test_invalid_copy_from_image_name_imports_nothing(tmp_path: Path) -> None:
    line, store = _build(tmp_path, "FROM scratch\nCOPY --from=node: /x /x\n")
    assert line.startswith("error: Dockerfile:2: COPY --from: 'node:' expands to 'node:', which is not a valid "
                           "image name")
    _no_images(store)


def test_a_store_inside_the_context_is_not_context(tmp_path: Path) -> None:
    """``--store ./store`` inside the project: COPY . . must not copy the store (and the build's temporary roots
    in it) into itself."""
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nCOPY . /app/\n", "a.txt": "a"})
    p = mb(ctx / "store", "build", "-t", "in:1", "-o", f"type=tar,dest={tmp_path}/fs.tar", str(ctx),
           "--progress", "quiet")
    assert p.returncode == 0, p.stderr
    import tarfile

    with tarfile.open(tmp_path / "fs.tar") as tf:
        names = tf.getnames()
    assert "app/a.txt" in names and "app/Dockerfile" in names
    assert not any(n.startswith("app/store") for n in names)


def test_missing_tag_of_a_fixture_lists_that_fixtures_tags(tmp_path: Path) -> None:
    line, store = _build(tmp_path, "FROM mcr.microsoft.com/dotnet/sdk:7.0\nRUN true\n")
    assert line.startswith("error: Dockerfile:1: base image 'mcr.microsoft.com/dotnet/sdk:7.0' is not in the store")
    assert "The fixture mcr.microsoft.com/dotnet/sdk has the tags: 8, 8-alpine," in line and ", 9.0, " in line
    assert "node:22" not in line  # not every fixture's every tag
    _no_images(store)


def test_unknown_image_lists_the_fixture_names(tmp_path: Path) -> None:
    line, _ = _build(tmp_path, "FROM nosuch:1\n")
    assert ("Fixtures: alpine, busybox, eclipse-temurin, golang, maven, mcr.microsoft.com/dotnet/aspnet, "
            "mcr.microsoft.com/dotnet/runtime, mcr.microsoft.com/dotnet/sdk, nginx, node, openjdk, python "
            "(their tags: docs/fixtures.md).") in line
