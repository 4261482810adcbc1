"""The build engine end to end (RUN through FakeExecutor): config, layers, history, stages, tarball."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from minibuild.executors.executor import FakeEffect, FakeExecutor
from minibuild.plan.scope import DEFAULT_PATH
from tests.engine.engine_support import image_files, run_build, write_context


@pytest.fixture(autouse=True)
def _small_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_FIXTURE_PADDING", "0")


def test_single_stage_config_and_layers(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a.txt": "hello\n"})
    ex = FakeExecutor({"echo hi > out": FakeEffect(writes=(("out", b"hi\n"),))})
    df = """FROM scratch
ENV A=1 B="two words"
WORKDIR /app
COPY a.txt .
RUN echo hi > out
LABEL x=$A
EXPOSE 80 53/udp
USER 1000:1000
VOLUME /data
STOPSIGNAL SIGTERM
ENTRYPOINT ["/app/run"]
"""
    r = run_build(ctx, tmp_path / "s", df, executor=ex, tags=("demo:1",), output=tmp_path / "o.tar")
    cfg = r.image.config
    assert cfg.env == (f"PATH={DEFAULT_PATH}", "A=1", "B=two words")
    assert cfg.working_dir == "/app" and cfg.user == "1000:1000"
    assert dict(cfg.labels) == {"x": "1"}
    assert cfg.exposed_ports == ("53/udp", "80/tcp") and cfg.volumes == ("/data",)
    assert cfg.entrypoint == ("/app/run",) and cfg.cmd is None and cfg.stop_signal == "SIGTERM"
    assert ex.requests[0].argv == ("/bin/sh", "-c", "echo hi > out")
    assert ex.requests[0].workdir == "/app"
    assert ("A", "1") in ex.requests[0].env
    fs = image_files(tmp_path / "s", r)
    assert fs["app/a.txt"][4] == b"hello\n" and fs["app/a.txt"][:4] == ("file", 0o644, 0, 0)
    assert fs["app/out"][4] == b"hi\n"
    assert r.layers == 3  # WORKDIR, COPY, RUN
    assert [h.empty_layer for h in cfg.history].count(False) == 3
    assert r.tags == ("docker.io/library/demo:1",)
    with tarfile.open(tmp_path / "o.tar") as t:
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == ["demo:1"]


def test_shell_forms_and_entrypoint_resets_cmd(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    df = """FROM scratch AS base
CMD ["inherited"]
FROM base
SHELL ["/bin/bash", "-xc"]
ENTRYPOINT run me
"""
    r = run_build(ctx, tmp_path / "s", df)
    assert r.image.config.entrypoint == ("/bin/bash", "-xc", "run me")
    assert r.image.config.cmd is None
    df2 = "FROM scratch\nCMD echo a\nENTRYPOINT [\"e\"]\n"
    r2 = run_build(ctx, tmp_path / "s", df2)
    assert r2.image.config.cmd == ("/bin/sh", "-c", "echo a")  # CMD set in the same stage survives


def test_multistage_keeps_only_copied_files(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    ex = FakeExecutor({"make": FakeEffect(writes=(("/out/app", b"BIN"), ("/junk/big", b"x" * 5000)))})
    df = """FROM scratch AS build
RUN make
FROM scratch AS unused
RUN never
FROM scratch
COPY --from=build /out/app /app
"""
    r = run_build(ctx, tmp_path / "s", df, executor=ex)
    fs = image_files(tmp_path / "s", r)
    assert set(fs) == {"app"} and fs["app"][4] == b"BIN"
    assert ex.commands == ("/bin/sh -c make",)
    status = {s.label: s.status for s in r.stages}
    assert status == {"build": "built", "unused": "skipped", "stage-2": "built"}
    build_stage = next(s for s in r.stages if s.label == "build")
    assert len(build_stage.layers) == 1 and build_stage.kept_by_final


def test_onbuild_runs_once_and_is_not_inherited(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    ex = FakeExecutor()
    df = """FROM scratch AS base
ONBUILD RUN trigger
ONBUILD ENV T=1
FROM base AS mid
FROM mid
"""
    r = run_build(ctx, tmp_path / "s", df, executor=ex)
    assert ex.commands == ("/bin/sh -c trigger",)
    assert r.image.config.onbuild is None
    assert "T=1" in r.image.config.env


def test_build_args_and_warnings(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    ex = FakeExecutor()
    df = "ARG G=g\nFROM scratch\nARG G\nARG L=l\nRUN echo $G $L\n"
    r = run_build(ctx, tmp_path / "s", df, executor=ex, build_args={"L": "over", "UNUSED": "1"})
    env = dict(ex.requests[0].env)
    assert env["G"] == "g" and env["L"] == "over"
    assert "G=g" not in r.image.config.env  # ARG values are not persisted
    assert any("UNUSED" in w for w in r.warnings)


def test_workdir_existing_dir_adds_no_layer(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    r = run_build(ctx, tmp_path / "s", "FROM busybox\nWORKDIR /bin\nWORKDIR rel/sub\n")
    base_layers = 1
    assert r.layers == base_layers + 1
    assert r.image.config.working_dir == "/bin/rel/sub"


def test_run_heredoc_and_copy_heredoc(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    ex = FakeExecutor()
    df = "FROM scratch\nARG N=x\nRUN <<EOF\necho $N\nEOF\nCOPY <<F1 /f\nval=${N}\nF1\n"
    r = run_build(ctx, tmp_path / "s", df, executor=ex)
    assert ex.requests[0].argv == ("/bin/sh", "-c", "echo $N\n")
    assert image_files(tmp_path / "s", r)["f"][4] == b"val=x\n"


def test_deterministic_in_fresh_store(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a": "1", "d/b": "2"})
    df = "FROM busybox\nCOPY . /src\nRUN x\nLABEL a=b\n"
    ex = lambda: FakeExecutor({"x": FakeEffect(writes=(("/made", b"m"),))})  # noqa: E731
    r1 = run_build(ctx, tmp_path / "s1", df, executor=ex())
    r2 = run_build(ctx, tmp_path / "s2", df, executor=ex())
    assert r1.digest == r2.digest
    assert r1.image.config.created == "1970-01-01T00:00:00Z"
    r3 = run_build(ctx, tmp_path / "s3", df, executor=ex(), source_date_epoch=1700000000)
    assert r3.image.config.created == "2023-11-14T22:13:20Z" and r3.digest != r1.digest


def test_temp_dirs_cleaned(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"a": "1"})
    run_build(ctx, tmp_path / "s", "FROM scratch\nCOPY a /a\nRUN x\n")
    assert list((tmp_path / "s" / ".minibuild" / "tmp").iterdir()) == []


def test_stat_cache_persists_across_builds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second build does not read context files whose stat is unchanged (the stat cache lives in the store);
    a changed file is read again and the build misses."""
    import os
    import time

    from minibuild.engine import context as context_mod

    ctx = write_context(tmp_path / "ctx", {"a": "1", "d/b": "2"})
    past = time.time() - 10  # older than the racy-clean margin, so the hash may be trusted next time
    for p in (ctx / "a", ctx / "d" / "b"):
        os.utime(p, (past, past))
    reads: list[str] = []
    real_open = os.open

    def counting_open(path: object, flags: int, *a: object, **kw: object) -> int:
        if str(path).startswith(str(ctx)):
            reads.append(str(path))
        return real_open(path, flags, *a, **kw)  # type: ignore[arg-type]

    df = "FROM scratch\nCOPY . /src\n"
    time.sleep(1.1)  # ctime of the files is now older than the racy margin when they are hashed
    run_build(ctx, tmp_path / "s", df)
    assert (tmp_path / "s" / ".minibuild" / "stat-cache.json").is_file()
    monkeypatch.setattr(context_mod.os, "open", counting_open)
    r2 = run_build(ctx, tmp_path / "s", df)
    assert r2.cached and reads == []
    (ctx / "a").write_text("changed")
    r3 = run_build(ctx, tmp_path / "s", df)
    assert not r3.cached and str(ctx / "a") in reads  # (the copy then reads every file it copies)
