"""A Dockerfile that is not valid UTF-8: BuildKit accepts it, so every reader does, with one decoding
(minibuild.dockerfile.decode_dockerfile): the words BuildKit splits by runes (ENV, LABEL, ARG) and what RUN runs
get U+FFFD, JSON (cache keys, image config) never fails and keeps bytes apart, no command prints a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild.digest import canonical_json
from minibuild.dockerfile import parse_dockerfile
from tests.engine.engine_support import image_files

DOCKERFILE = b"FROM busybox\nENV A=x\xffy B=\xfe\nLABEL l=\xff\nARG Z=\xff\nRUN echo \xff > /f\n"


def test_split_words_turn_each_invalid_byte_into_u_fffd_and_commands_keep_it_until_run() -> None:
    df = parse_dockerfile(DOCKERFILE)
    env, label, arg, run = df.stages[0].instructions
    assert [(kv.key, kv.value) for kv in env.env] == [("A", "x\ufffdy"), ("B", "\ufffd")]  # type: ignore[attr-defined]
    assert [(kv.key, kv.value) for kv in label.labels] == [("l", "\ufffd")]  # type: ignore[attr-defined]
    assert [(a.key, a.value) for a in arg.args] == [("Z", "\ufffd")]  # type: ignore[attr-defined]
    assert run.command == ("echo \udcff > /f",)  # type: ignore[attr-defined]
    assert os.fsencode(run.command[0]) == b"echo \xff > /f"  # type: ignore[attr-defined]
    # an encoded surrogate (ED A0 80) is three invalid bytes to Go, so three U+FFFD
    encoded_surrogate = parse_dockerfile(b"FROM x\nENV K=\xed\xa0\x80\n").stages[0].instructions[0]
    assert encoded_surrogate.env[0].value == "\ufffd" * 3  # type: ignore[attr-defined]


def test_canonical_json_keeps_invalid_bytes_apart_and_stays_utf8() -> None:
    a, b = canonical_json({"argv": "echo \udcff"}), canonical_json({"argv": "echo \udcfe"})
    assert a != b
    assert a == b'{"argv":"echo \\udcff"}'
    assert json.loads(a.decode("utf-8")) == {"argv": "echo \udcff"}


def _mb(store: Path, cwd: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MINIBUILD_FIXTURE_PADDING": "0"}
    return subprocess.run([sys.executable, "-m", "minibuild", "--store", str(store), *args], cwd=cwd, env=env,
                          input=stdin, capture_output=True, timeout=300)


@pytest.mark.parametrize("args", [
    ("parse", "-f", "Dockerfile"), ("parse", "--json", "-f", "Dockerfile"), ("parse", "--ast", "-f", "-"),
    ("plan", "."), ("plan", "--json", "-f", "-", "."), ("graph", "."), ("graph", "-f", "-", "."),
    ("build", "."), ("build", "--progress", "json", "-f", "-", "."),
])
def test_every_command_reads_it_without_a_traceback(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "Dockerfile").write_bytes(DOCKERFILE)
    res = _mb(tmp_path / "s", tmp_path, *args, stdin=DOCKERFILE if "-" in args else None)
    assert (res.returncode, b"Traceback" in res.stderr) == (0, False), res.stderr.decode(errors="replace")


def test_the_command_runs_with_u_fffd_and_the_key_keeps_the_byte(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker and BuildKit pass a RUN's argv and env to the process through the runtime's JSON config, which
    writes U+FFFD (tests/conformance/cases/dockerfile-invalid-utf8); the cache key keeps the byte itself."""
    from minibuild.api import build

    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")
    (tmp_path / "Dockerfile").write_bytes(DOCKERFILE)
    first = build(tmp_path, store=tmp_path / "s")
    assert image_files(tmp_path / "s", first)["f"][4] == "\ufffd\n".encode()
    assert dict(first.image.config.labels) == {"l": "\ufffd"}
    (tmp_path / "Dockerfile").write_bytes(DOCKERFILE.replace(b"echo \xff", b"echo \xfe"))
    other = build(tmp_path, store=tmp_path / "s")
    assert not other.steps[-1].cached
    (tmp_path / "Dockerfile").write_bytes(DOCKERFILE)
    again = build(tmp_path, store=tmp_path / "s")
    assert again.cached and again.digest == first.digest
