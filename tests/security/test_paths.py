"""Path safety: hostile archives and trees never write, link, delete or read outside the root they target.

Each case of the generated corpus (tests/security/hostile.py) is fed to layer extraction (rootfs.apply_layer),
`minibuild load` (docker-save and OCI archives, then the loaded layer applied), ADD of a local archive
(copy_into(unpack=True)) and COPY --from a hostile root; a sentinel directory outside the root must be unchanged
and every refusal must be a MinibuildError with a one-line message.
"""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minibuild.engine.copy import copy_into, resolve_chown, source_checksum
from minibuild.fs.rootfs import apply_layer
from minibuild.errors import ContextError, ImageFormatError, MinibuildError, UnsafePathError
from minibuild.oci.archive import import_archive
from minibuild.store import Store
from tests.support import extract_all
from tests.security.hostile import (
    CASES,
    PRE_CASES,
    PRE_EXISTING,
    SENTINEL_TEXT,
    Guard,
    archive_of,
    docker_save_archive,
    make_tree,
    oci_archive,
    resolve_members,
    tar_of,
)

ALL = {**CASES, **PRE_CASES}
# cases that must be refused (whatever the consumer), and a word the message must contain
MUST_REFUSE = {
    "dotdot-file": ("..", "outside", "leave"),
    "dotdot-deep": ("..", "outside", "leave"),
    "hardlink-dotdot": ("..", "outside"),
    "symlink-loop": ("symbolic links",),
}


def _setup(tmp_path: Path, case: str, root_name: str = "root") -> tuple[Guard, Path, bytes]:
    guard = Guard(tmp_path)
    root = tmp_path / root_name
    root.mkdir()
    if case in PRE_CASES:
        make_tree(root, resolve_members(PRE_EXISTING[case], guard.dir))
    members = resolve_members(ALL[case], guard.dir)
    return guard, root, tar_of(members)


def _check_error(case: str, err: MinibuildError | None) -> None:
    if case in MUST_REFUSE:
        assert err is not None, f"{case} was accepted"
        assert any(word in str(err) for word in MUST_REFUSE[case]), str(err)
    if err is not None:
        msg = str(err)
        assert msg and "\n" not in msg and "Traceback" not in msg


def _no_host_inode(root: Path, guard: Guard) -> None:
    """No file in the root is a hard link of the sentinel (same inode)."""
    sino = os.stat(guard.sentinel).st_ino
    for dirpath, _dirs, files in os.walk(root):
        for n in files:
            st = os.lstat(os.path.join(dirpath, n))
            assert st.st_ino != sino, f"{n} in the root is a hard link to the host sentinel"


@pytest.mark.parametrize("case", sorted(ALL))
def test_apply_layer_stays_in_root(tmp_path: Path, case: str) -> None:
    guard, root, tar = _setup(tmp_path, case)
    err = None
    try:
        apply_layer(root, io.BytesIO(tar))
    except MinibuildError as exc:
        err = exc
    _check_error(case, err)
    guard.check(allowed=("root",))
    _no_host_inode(root, guard)


@pytest.mark.parametrize("case", sorted(ALL))
def test_add_local_archive_stays_in_root(tmp_path: Path, case: str) -> None:
    guard, root, tar = _setup(tmp_path, case, root_name="root")
    if case in PRE_CASES:  # ADD extracts into /dst: put the pre-existing trick there too
        make_tree(root / "dst", resolve_members(PRE_EXISTING[case], guard.dir))
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "evil.tar.gz").write_bytes(gzip.compress(tar, mtime=0))
    err = None
    try:
        copy_into(root, ctx, ["evil.tar.gz"], "/dst/", unpack=True, instruction="ADD")
    except MinibuildError as exc:
        err = exc
    _check_error(case, err)
    guard.check(allowed=("root", "ctx"))
    _no_host_inode(root, guard)


@pytest.mark.parametrize("fmt", ["docker", "oci", "oci-gz"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_load_then_extract_stays_in_root(tmp_path: Path, case: str, fmt: str) -> None:
    guard, root, tar = _setup(tmp_path, case)
    archive = tmp_path / "evil.tar"
    archive.write_bytes(docker_save_archive(tar) if fmt == "docker" else oci_archive(tar, gz=fmt == "oci-gz"))
    store = Store.open(tmp_path / "store")
    loaded = import_archive(store, archive)  # loading only stores verified blobs: hostile names are data here
    image = store.resolve(loaded[0].names[0])
    err = None
    try:
        for layer in image.layers:
            with store.blobs.open(layer.digest) as fh:
                apply_layer(root, fh)
    except MinibuildError as exc:
        err = exc
    _check_error(case, err)
    guard.check(allowed=("root", "store", "evil.tar"))
    _no_host_inode(root, guard)


# ----------------------------------------------------------------------------------- hostile archive structure
def _load_error(tmp_path: Path, data: bytes | None = None, path: Path | None = None) -> str:
    guard = Guard(tmp_path) if not (tmp_path / "outside").exists() else None
    if path is None:
        path = tmp_path / "evil.tar"
        assert data is not None
        path.write_bytes(data)
    store = Store.open(tmp_path / "store")
    with pytest.raises(ImageFormatError) as info:
        import_archive(store, path)
    if guard is not None:
        guard.check(allowed=("store", "evil.tar", "layout"))
    assert list(store.refs.entries()) == []
    return str(info.value)


def test_load_manifest_paths_cannot_name_host_files(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    for config in (str(guard.sentinel), "../outside/sentinel", "../../../../../../../../" + str(guard.sentinel)):
        manifest = ('[{"Config": "%s", "RepoTags": ["x:1"], "Layers": []}]' % config).encode()
        msg = _load_error(tmp_path, archive_of({"manifest.json": manifest}))
        assert "missing" in msg or "escapes" in msg
    guard.check(allowed=("store", "evil.tar"))


def test_load_archive_symlink_member_cannot_reach_host(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    manifest = b'[{"Config": "cfg.json", "RepoTags": ["x:1"], "Layers": []}]'
    data = archive_of({"manifest.json": manifest}, symlinks={"cfg.json": str(guard.dir / "passwd")})
    msg = _load_error(tmp_path, data)
    assert "missing" in msg
    guard.check(allowed=("store", "evil.tar"))


def test_load_layout_directory_symlink_out_is_refused(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    src = tmp_path / "src.tar"
    src.write_bytes(oci_archive(tar_of(())))
    layout = tmp_path / "layout"
    layout.mkdir()
    import tarfile

    with tarfile.open(src) as tf:
        extract_all(tf, layout)
    blob = next(p for p in (layout / "blobs" / "sha256").iterdir() if p.read_bytes().startswith(b'{"architecture"'))
    host_copy = guard.dir / "config-copy"  # a host file with the very bytes the layout expects
    host_copy.write_bytes(blob.read_bytes())
    guard._before = guard._state()
    blob.unlink()
    blob.symlink_to(host_copy)
    msg = _load_error(tmp_path, path=layout)
    assert "outside the layout" in msg
    guard.check(allowed=("store", "src.tar", "layout"))


# ----------------------------------------------------------------------------------- COPY and the context
def _hostile_source_root(tmp_path: Path, guard: Guard) -> Path:
    src = tmp_path / "stage"
    (src / "dir").mkdir(parents=True)
    (src / "dir" / "file").write_text("stage file\n")
    os.symlink(str(guard.dir), src / "esc")
    os.symlink("../" * 12 + str(guard.dir).lstrip("/"), src / "rel")
    os.symlink(str(guard.dir), src / "dir" / "inner")
    os.symlink(str(guard.sentinel), src / "dir" / "to-sentinel")
    return src


@pytest.mark.parametrize("source", ["esc/sentinel", "rel/sentinel", "dir/inner/sentinel", "esc", "../outside/sentinel",
                                    "dir/../../outside/sentinel"])
def test_copy_from_hostile_root_never_reads_host(tmp_path: Path, source: str) -> None:
    guard = Guard(tmp_path)
    src = _hostile_source_root(tmp_path, guard)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(ContextError) as info:
        copy_into(dest, src, [source], "/got", from_context=False)
    assert "not found" in str(info.value)
    guard.check(allowed=("stage", "dest"))


def test_copy_from_copies_symlinks_as_symlinks(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    src = _hostile_source_root(tmp_path, guard)
    dest = tmp_path / "dest"
    dest.mkdir()
    copy_into(dest, src, ["dir"], "/d/", from_context=False)
    assert os.readlink(dest / "d" / "inner") == str(guard.dir)
    assert os.readlink(dest / "d" / "to-sentinel") == str(guard.sentinel)
    _assert_no_sentinel_content(dest)
    guard.check(allowed=("stage", "dest"))


def test_copy_into_destination_symlink_stays_in_root(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    src = _hostile_source_root(tmp_path, guard)
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(guard.dir), dest / "dst")  # the destination root already has a symlink to the host dir
    os.symlink("../../../../../../../../../" + str(guard.dir).lstrip("/"), dest / "up")
    copy_into(dest, src, ["dir/file"], "/dst/sentinel", from_context=False)
    copy_into(dest, src, ["dir/file"], "/up/sentinel", from_context=False)
    copy_into(dest, src, ["dir/file"], "../../../../outside/sentinel", from_context=False, workdir="/a/b")
    guard.check(allowed=("stage", "dest"))
    assert (dest / str(guard.sentinel).lstrip("/")).read_text() == "stage file\n"


def _assert_no_sentinel_content(tree: Path) -> None:
    for dirpath, _dirs, files in os.walk(tree):
        for n in files:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                assert SENTINEL_TEXT not in Path(p).read_text(errors="replace")


def _context_with_links(tmp_path: Path, guard: Guard) -> Path:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.txt").write_text("app\n")
    os.symlink(str(guard.sentinel), ctx / "link")
    os.symlink(str(guard.dir), ctx / "dirlink")
    os.symlink("../outside/sentinel", ctx / "rellink")
    return ctx


def test_context_symlink_out_is_copied_as_symlink(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    ctx = _context_with_links(tmp_path, guard)
    root = tmp_path / "root"
    root.mkdir()
    copy_into(root, ctx, ["."], "/app/")
    assert os.readlink(root / "app" / "link") == str(guard.sentinel)
    assert os.readlink(root / "app" / "dirlink") == str(guard.dir)
    assert os.readlink(root / "app" / "rellink") == "../outside/sentinel"
    _assert_no_sentinel_content(root)
    guard.check(allowed=("ctx", "root"))


@pytest.mark.parametrize("source", ["link", "dirlink/sentinel", "rellink", "dirlink"])
def test_context_symlink_out_is_never_followed(tmp_path: Path, source: str) -> None:
    guard = Guard(tmp_path)
    ctx = _context_with_links(tmp_path, guard)
    root = tmp_path / "root"
    root.mkdir()
    try:
        copy_into(root, ctx, [source], "/x/")
    except ContextError as err:
        assert "not found" in str(err)
    _assert_no_sentinel_content(root)
    guard.check(allowed=("ctx", "root"))


def test_context_checksum_does_not_depend_on_host_files(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    ctx = _context_with_links(tmp_path, guard)
    before = source_checksum(ctx, ["."])
    guard.sentinel.write_text("changed on the host\n")
    assert source_checksum(ctx, ["."]) == before


@pytest.mark.parametrize("source", ["../outside/sentinel", "..", "a/../../outside/sentinel", "./../outside"])
def test_copy_dotdot_from_context_is_refused(tmp_path: Path, source: str) -> None:
    guard = Guard(tmp_path)
    ctx = tmp_path / "ctx"
    (ctx / "a").mkdir(parents=True)
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(ContextError) as info:
        copy_into(root, ctx, [source], "/x")
    assert "outside the build context" in str(info.value)
    guard.check(allowed=("ctx", "root"))


# ----------------------------------------------------------------------------------- --chown
@pytest.mark.parametrize("layout", ["etc-symlink", "passwd-symlink", "passwd-relative-symlink"])
def test_chown_names_resolve_only_inside_the_destination(tmp_path: Path, layout: str) -> None:
    guard = Guard(tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    if layout == "etc-symlink":
        os.symlink(str(guard.dir), root / "etc")
    else:
        (root / "etc").mkdir()
        target = str(guard.dir / "passwd") if layout == "passwd-symlink" else "../../outside/passwd"
        os.symlink(target, root / "etc" / "passwd")
    with pytest.raises(ContextError) as info:
        resolve_chown("evil", root)
    assert "unable to find user evil" in str(info.value)
    guard.check(allowed=("root",))


@pytest.mark.parametrize("spec", ["../../outside/passwd", "/etc/passwd", "evil:../group", ":0", "0:", "a:b:c"])
def test_chown_specs_that_try_paths_are_refused(tmp_path: Path, spec: str) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\n")
    with pytest.raises(ContextError):
        resolve_chown(spec, root)


# ----------------------------------------------------------------------------------- through the CLI
def test_cli_load_of_hostile_archive_is_one_line(tmp_path: Path) -> None:
    guard = Guard(tmp_path)
    bad = tmp_path / "evil.tar"
    bad.write_bytes(archive_of({"manifest.json": ('[{"Config": "%s", "Layers": []}]' % guard.sentinel).encode()}))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.run([sys.executable, "-m", "minibuild", "--store", str(tmp_path / "store"), "load", str(bad)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    guard.check(allowed=("store", "evil.tar"))


def test_unsafe_path_error_is_a_minibuild_error() -> None:
    assert issubclass(UnsafePathError, MinibuildError)
