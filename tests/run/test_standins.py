"""The stand-in program registry: a marked script with a registered program runs as that program; the rest runs
as in a build (what another stand-in base, e.g. Java's, plugs into)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.run import standins
from minibuild.run.emulated import Passthrough, run_emulated
from minibuild.run.spec import ContainerSpec


class Sink:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    def flush(self) -> None:
        pass


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "usr" / "bin").mkdir(parents=True)
    for name, marker in (("hello", "# hello: minibuild teaching stand-in."), ("plain", "# plain: a script")):
        p = r / "usr" / "bin" / name
        p.write_text(f"#!/bin/sh\n{marker}\necho script ran \"$@\"\n")
        os.chmod(p, 0o755)
    return r


def run(root: Path, *argv: str) -> tuple[int, bytes]:
    out = Sink()
    spec = ContainerSpec(argv=argv, env=(("PATH", "/usr/bin"),), workdir="/", user="")
    code = run_emulated(root, spec, {}, stdout=Passthrough(out), stderr=Passthrough(Sink()),  # type: ignore[arg-type]
                        note=Passthrough(Sink()))  # type: ignore[arg-type]
    return code, out.data


def test_a_registered_program_takes_over_its_marked_script(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[standins.Call] = []

    def hello(call: standins.Call) -> int | None:
        calls.append(call)
        if call.argv[1:] == ("--as-script",):
            return None
        call.say("the program ran\n")
        return 5

    monkeypatch.setitem(standins.PROGRAMS, "hello", hello)
    assert run(root, "hello", "x") == (5, b"the program ran\n")
    assert calls[0].script == "/usr/bin/hello" and calls[0].argv == ("hello", "x")
    assert run(root, "sh", "-c", "hello --as-script") == (0, b"script ran --as-script\n")  # None: the script runs


def test_scripts_without_the_marker_or_a_program_run_as_in_a_build(root: Path) -> None:
    assert "plain" not in standins.PROGRAMS and "hello" not in standins.PROGRAMS
    assert run(root, "plain", "1") == (0, b"script ran 1\n")
    assert run(root, "hello", "2") == (0, b"script ran 2\n")


def test_marker_names() -> None:
    assert standins.standin_name(b"#!/bin/sh\n# nginx: minibuild teaching stand-in. The real\n") == "nginx"
    assert standins.standin_name(b"#!/bin/sh\n# nginx is not a stand-in\n") is None
