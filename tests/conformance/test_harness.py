"""The conformance harness's own logic: reading exports, normalising configs, diffing, case files (no Docker)."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

import pytest

from tests.conformance.harness import (
    CaseError,
    ImageResult,
    all_cases,
    check_expect,
    compare,
    load_case,
    make_tar,
    normalise_config,
    prepare_context,
    read_export,
    step_images,
)


def _tar(*members: tuple[str, str, bytes | str]) -> io.BytesIO:
    """Members as (name, kind, payload): kind file|dir|symlink|hardlink; payload content or link target."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, kind, payload in members:
            ti = tarfile.TarInfo(name)
            ti.mode = 0o755 if kind == "dir" else 0o644
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind in ("symlink", "hardlink"):
                ti.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
                ti.linkname = str(payload)
                tf.addfile(ti)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_read_export_drops_what_docker_injects_and_keeps_the_rest() -> None:
    fs = read_export(_tar(
        (".dockerenv", "file", ""), ("etc", "dir", ""), ("etc/hostname", "file", "abc"), ("etc/hosts", "file", ""),
        ("etc/resolv.conf", "file", ""), ("etc/mtab", "symlink", "/proc/mounts"), ("etc/passwd", "file", "root\n"),
        ("dev", "dir", ""), ("dev/console", "file", ""), ("proc", "dir", ""), ("sys", "dir", ""),
        ("app", "dir", ""), ("app/a", "file", "A"), ("app/hard", "hardlink", "app/a"), ("app/l", "symlink", "a"),
    ))
    assert sorted(fs) == ["app", "app/a", "app/hard", "app/l", "dev", "etc", "etc/passwd", "proc", "sys"]
    assert fs["app/l"] == {"type": "symlink", "target": "a", "mode": "0644", "uid": 0, "gid": 0}
    assert fs["app/hard"]["type"] == "file" and fs["app/hard"]["sha256"] == fs["app/a"]["sha256"]
    assert fs["app"]["type"] == "dir" and fs["app"]["mode"] == "0755"
    assert "mtime" not in fs["app/a"]


def test_read_export_accepts_dot_slash_names() -> None:
    fs = read_export(_tar(("./", "dir", ""), ("./x", "file", "x"), ("./.dockerenv", "file", "")))
    assert list(fs) == ["x"]


def test_normalise_config_unifies_empty_spellings() -> None:
    a = normalise_config({"Cmd": [], "Labels": {}, "WorkingDir": "", "ExposedPorts": {"80/tcp": {}, "53/udp": {}}})
    b = normalise_config({"Cmd": None, "WorkingDir": "/", "ExposedPorts": {"53/udp": {}, "80/tcp": {}}})
    assert a == b
    assert a["ExposedPorts"] == ["53/udp", "80/tcp"]
    assert normalise_config({"Cmd": ["sh"]})["Cmd"] == ["sh"]


def _result(**fs: dict) -> ImageResult:  # type: ignore[type-arg]
    return ImageResult(fs=dict(fs), config=normalise_config({"Cmd": ["sh"]}))


F = {"type": "file", "mode": "0644", "uid": 0, "gid": 0, "size": 1, "sha256": "aa"}


def test_compare_reports_each_kind_of_difference() -> None:
    docker = _result(a=F, b=F, c=F)
    mini = ImageResult(fs={"a": F, "c": {**F, "mode": "0600"}, "d": F}, config=normalise_config({"Cmd": ["bash"]}))
    out = "\n".join(compare(docker, mini))
    assert "- /b" in out and "+ /d" in out
    assert "~ /c" in out and "mode: docker='0644' minibuild='0600'" in out
    assert 'config Cmd: docker=["sh"] minibuild=["bash"]' in out
    assert "/a" not in out


def test_compare_equal_and_ignores() -> None:
    assert compare(_result(a=F), _result(a=F)) == []
    docker, mini = _result(v=F, **{"v/x": F}), _result(v={**F, "uid": 5})
    assert compare(docker, mini) != []
    assert compare(docker, mini, ignore_paths=["/v"]) == []
    assert compare(docker, ImageResult(fs=docker.fs, config={}), ignore_config=list(docker.config)) == []


def test_check_expect() -> None:
    import hashlib

    r = _result(f={**F, "sha256": hashlib.sha256(b"hi\n").hexdigest()}, l={"type": "symlink", "target": "f", "mode": "0777", "uid": 0, "gid": 0})
    ok = {"files": {"/f": {"type": "file", "mode": "0644", "content": "hi\n"}, "/l": {"target": "f"}, "/g": "absent"},
          "config": {"Cmd": ["sh"]}}
    assert check_expect(r, ok, "x") == []
    bad = {"files": {"/f": {"content": "ho\n", "mode": "600"}, "/g": {"type": "file"}, "/l": "absent"},
           "config": {"Cmd": None}}
    problems = check_expect(r, bad, "x")
    assert len(problems) == 5, problems


def test_make_tar_is_deterministic_and_keeps_owners() -> None:
    entries = [{"path": "d", "dir": True, "mode": "0750"}, {"path": "d/f", "content": "x", "uid": 7, "gid": 8},
               {"path": "d/l", "symlink": "f"}]
    assert make_tar(entries, "gz") == make_tar(entries, "gz")
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(make_tar(entries, "gz")))) as tf:
        members = {m.name: m for m in tf.getmembers()}
    assert members["d"].mode == 0o750 and members["d/f"].uid == 7 and members["d/l"].linkname == "f"
    for comp in ("bz2", "xz", "none"):
        with tarfile.open(fileobj=io.BytesIO(make_tar(entries, comp))) as tf:
            assert tf.getnames() == ["d", "d/f", "d/l"]


def test_prepare_context_normalises_modes_and_applies_steps(tmp_path: Path) -> None:
    case_dir = tmp_path / "c"
    (case_dir / "context" / "sub").mkdir(parents=True)
    (case_dir / "context" / "sub" / "f").write_text("f")
    os.chmod(case_dir / "context" / "sub" / "f", 0o664)
    (case_dir / "Dockerfile").write_text("FROM scratch\n")
    (case_dir / "case.yaml").write_text(
        "description: d\nprepare:\n  - {symlink: sub/l, target: f}\n  - {chmod: sub/f, mode: '0600'}\n"
        "  - {tar: a.tar, entries: [{path: x, content: y}]}\n")
    ctx = prepare_context(load_case(case_dir), tmp_path / "ctx")
    assert (ctx / "Dockerfile").read_text() == "FROM scratch\n"
    assert os.stat(ctx / "sub" / "f").st_mode & 0o7777 == 0o600
    assert os.readlink(ctx / "sub" / "l") == "f"
    assert tarfile.open(ctx / "a.tar").getnames() == ["x"]


@pytest.mark.parametrize("yaml_text, message", [
    ("build_args: {}\n", "description"),
    ("description: d\nbogus: 1\n", "unknown case.yaml keys"),
    ("description: d\ndiffers: {reason: r, classic: fails}\n", "expected values"),
    ("description: d\ndiffers: {reason: r, classic: maybe}\nexpect: {files: {/a: absent}}\n", "classic: fails|builds"),
    ("description: d\nexpect: {files: {a: absent}}\n", "absolute"),
    ("description: d\nexpect: {config: {Cmdd: []}}\n", "not one of"),
    ("description: d\nexecutors: [chroot]\nexpect: {files: {/a: absent}}\n", "executors_reason"),
    ("description: d\nexecutors_reason: r\nexpect: {files: {/a: absent}}\n", "every executor runs"),
    ("description: d\nfails: {classic_error: x}\n", "minibuild_error"),
    ("description: d\nfails: {classic_error: x, minibuild_error: y}\nexpect: {files: {/a: absent}}\n", "no expect"),
])
def test_load_case_rejects_bad_yaml(tmp_path: Path, yaml_text: str, message: str) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "case.yaml").write_text(yaml_text)
    with pytest.raises(CaseError, match=message):
        load_case(tmp_path)


def test_every_case_states_something_checkable() -> None:
    for case in all_cases():
        if case.fails:  # both builders must fail, with the stated errors
            continue
        assert case.expect or case.differs is None, case.name
        assert case.expect.get("files") or case.expect.get("config"), f"{case.name}: no expected values"


def test_step_images_skips_base_images() -> None:
    out = (
        "Step 1/4 : FROM minibuild-test/busybox:latest AS b\n ---> 1fdb7d9ca63a\nStep 2/4 : RUN echo\n"
        " ---> Running in 0123456789ab\nRemoving intermediate container 0123456789ab\n ---> aaaaaaaaaaaa\n"
        "Step 3/4 : FROM scratch\n ---> \nStep 4/4 : COPY --from=b /x /x\n ---> bbbbbbbbbbbb\n"
        "Successfully built bbbbbbbbbbbb\n"
    )
    assert step_images(out) == ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]


def test_cases_run_under_both_executors_by_default(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "case.yaml").write_text("description: d\nexpect: {files: {/a: absent}}\n")
    assert load_case(tmp_path).executors == ("emulate", "chroot")
