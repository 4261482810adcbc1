"""``minibuild build``: -t and -o checked before any step runs, buildx's -o forms, --label and --iidfile."""

from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path

import pytest

from tests.engine.engine_support import write_context
from tests.cli.support import mb
from tests.support import unprivileged_user

DOCKERFILE = "FROM busybox\nRUN echo hi > /hello\nCOPY a.txt /srv/a.txt\n"


def _ctx(tmp_path: Path) -> Path:
    return write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "a.txt": "a"})


def _nothing_built(store: Path, p: object) -> None:
    assert "#1 " not in str(getattr(p, "stderr"))  # no step started
    listing = mb(store, "images")
    assert listing.stdout.splitlines()[1:] == []


def test_bad_tag_fails_before_the_build(tmp_path: Path) -> None:
    s = tmp_path / "s"
    p = mb(s, "build", "-t", "My App", str(_ctx(tmp_path)), "--progress", "plain")
    assert p.returncode == 1
    assert p.stderr.strip().splitlines() == ["error: invalid tag 'My App' for -t: invalid image name 'My App' "
                                             "(repository names must be lowercase)"]
    _nothing_built(s, p)


@pytest.mark.parametrize("spec, message", [
    ("{d}/missing/out.tar", "is not a directory"),
    ("{d}", "is a directory"),
    ("type=docker,dest={d}/missing/out.tar", "is not a directory"),
    ("type=local,dest={d}/full", "is not empty"),
    ("type=zip,dest={d}/x", "type must be one of docker, oci, tar, local"),
    ("type=tar", "needs dest=PATH"),
])
def test_bad_output_fails_before_the_build(tmp_path: Path, spec: str, message: str) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    s = tmp_path / "s"
    p = mb(s, "build", "-o", spec.format(d=tmp_path), str(_ctx(tmp_path)), "--progress", "plain")
    assert p.returncode == 1, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and message in p.stderr, p.stderr
    _nothing_built(s, p)


def test_unwritable_output_dir_fails_before_the_build_as_non_root(tmp_path: Path) -> None:
    unprivileged_user()  # root only: runs the build as mbuser in directories it owns
    import pwd
    import shutil

    home = Path("/tmp") / f"mb-outputs-{os.getpid()}"
    home.mkdir(mode=0o755)
    try:
        uid = pwd.getpwnam("mbuser").pw_uid
        ctx = write_context(home / "ctx", {"Dockerfile": DOCKERFILE, "a.txt": "a"})
        ro = home / "ro"
        ro.mkdir()
        for path in (home, ctx, ctx / "Dockerfile", ctx / "a.txt"):
            os.chown(path, uid, uid)
        os.chmod(ro, 0o555)
        p = mb(home / "s", "build", "-o", str(ro / "out.tar"), str(ctx), "--progress", "plain", user="mbuser")
        assert p.returncode == 1, p.stderr
        assert p.stderr.strip() == f"error: cannot write -o type=docker {ro / 'out.tar'}: {ro} is not writable"
    finally:
        shutil.rmtree(home)


def test_output_forms(tmp_path: Path) -> None:
    s = tmp_path / "s"
    ctx = _ctx(tmp_path)
    for spec in (f"type=docker,dest={tmp_path}/d.tar", f"type=oci,dest={tmp_path}/o.tar",
                 f"type=tar,dest={tmp_path}/fs.tar", f"type=local,dest={tmp_path}/root", str(tmp_path / "plain.tar")):
        p = mb(s, "build", "-o", spec, str(ctx), "--progress", "quiet")
        assert p.returncode == 0, (spec, p.stderr)
    for name in ("d.tar", "o.tar", "plain.tar"):
        with tarfile.open(tmp_path / name) as tf:
            names = tf.getnames()
        assert "manifest.json" in names and "index.json" in names and "oci-layout" in names
    with tarfile.open(tmp_path / "fs.tar") as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert tf.extractfile(members["hello"]).read() == b"hi\n"  # type: ignore[union-attr]
        assert tf.extractfile(members["srv/a.txt"]).read() == b"a"  # type: ignore[union-attr]
        assert "bin/busybox" in members or "bin" in members
        assert "manifest.json" not in members
    assert (tmp_path / "root" / "hello").read_text() == "hi\n"
    assert (tmp_path / "root" / "srv" / "a.txt").read_text() == "a"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left beside


def test_label_and_iidfile(tmp_path: Path) -> None:
    s = tmp_path / "s"
    iid = tmp_path / "iid"
    p = mb(s, "build", "-t", "lab:1", "--label", "org.example.team=web", "--label", "empty", "--iidfile", str(iid),
           str(_ctx(tmp_path)), "--progress", "quiet")
    assert p.returncode == 0, p.stderr
    doc = json.loads(mb(s, "inspect", "lab:1").stdout)
    assert doc["Config"]["Labels"] == {"org.example.team": "web", "empty": ""}
    assert iid.read_text() == doc["Id"] and doc["Id"].startswith("sha256:")
    assert not any("LABEL" in str(h.get("created_by")) for h in doc["History"])  # config only, as BuildKit


def test_tar_output_keeps_the_layers_owners_as_non_root(tmp_path: Path) -> None:
    """type=tar is read from the layers, not from an extraction: a non-root user's tar still says 1234:1234."""
    unprivileged_user()
    home = Path("/tmp") / f"mb-outputs-tar-{os.getpid()}"
    home.mkdir(mode=0o755)
    try:
        import pwd
        import shutil

        uid = pwd.getpwnam("mbuser").pw_uid
        ctx = write_context(home / "ctx", {"Dockerfile": "FROM busybox\nRUN mkdir /srv && chown 1234:1234 /srv\n"})
        assert mb(home / "s", "build", str(ctx), "--progress", "quiet").returncode == 0  # root makes the layer
        for path in (home, *home.rglob("*")):
            os.lchown(path, uid, uid)
        # mbuser's build hits the cache; its tar is the layers' (an extraction as mbuser could not chown)
        p = mb(home / "s", "build", "-o", f"type=tar,dest={home}/fs.tar", str(ctx), "--progress", "quiet",
               user="mbuser")
        assert p.returncode == 0, p.stderr
        with tarfile.open(home / "fs.tar") as tf:
            srv = tf.getmember("srv")
            assert (srv.uid, srv.gid) == (1234, 1234)
            assert tf.getmember("bin/busybox").uid == 0
    finally:
        shutil.rmtree(home)
