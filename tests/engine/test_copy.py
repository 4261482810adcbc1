"""Tests of COPY/ADD semantics (cases from BuildKit's integration tests as summarised in INTEGRATION_BEHAVIORS.md)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibuild.engine.copy import (
    HeredocSource,
    copy_into,
    extract_archive_into,
    is_archive,
    parse_chmod,
    resolve_chown,
    source_checksum,
)
from minibuild.engine.dockerignore import IgnoreMatcher
from minibuild.errors import ContextError, UnsafePathError


def make(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def tree(root: Path) -> dict[str, tuple[str, int, int, int, str]]:
    """path -> (type, perm, uid, gid, content-or-link) for everything under root, as the image has them (the
    root's ownership overlay, as root and as any user)."""
    from minibuild.fs.ownership import overlay_of

    overlay = overlay_of(root)
    out: dict[str, tuple[str, int, int, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            info = overlay.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                out[rel] = ("l", 0, info.st_uid, info.st_gid, os.readlink(p))
            elif stat.S_ISDIR(info.st_mode):
                out[rel] = ("d", stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, "")
            else:
                out[rel] = ("f", stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid, p.read_text(errors="replace"))
    return out


@pytest.fixture
def roots(tmp_path: Path) -> tuple[Path, Path]:
    ctx, dest = tmp_path / "ctx", tmp_path / "root"
    ctx.mkdir()
    dest.mkdir()
    (dest / "etc").mkdir()
    (dest / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\nuser:x:1000:1001::/home/user:/bin/sh\n")
    (dest / "etc" / "group").write_text("root:x:0:\ndaemon:x:1:\nusers:x:1001:\nnobody:x:65534:\n")
    return ctx, dest


def test_wildcards_and_directory_contents(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"foo.go": "foo-contents", "bar.go": "bar", "sub/dir1/dir2/foo": "deep"})
    for srcs, d in [
        (["*.go"], "/gofiles/"), (["f*.go"], "foo2.go"), (["sub/*"], "/subdest/"), (["sub/*/dir2/foo"], "/subdest2/"),
        (["sub/*/dir2/foo"], "/subdest3/bar"), (["."], "all/"), (["sub/dir1/"], "subdest4"), (["sub/dir1/."], "subdest5"),
        (["sub/dir1"], "subdest6"),
    ]:
        copy_into(dest, ctx, srcs, d)
    t = tree(dest)
    for path in ("gofiles/foo.go", "gofiles/bar.go", "foo2.go", "subdest/dir2/foo", "subdest2/foo", "subdest3/bar",
                 "all/foo.go", "subdest4/dir2/foo", "subdest5/dir2/foo", "subdest6/dir2/foo"):
        assert t[path][0] == "f", path
    assert t["foo2.go"][4] == "foo-contents"
    assert t["gofiles/foo.go"][2:4] == (0, 0)


def test_workdir_relative_destinations(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"foo": "hello"})
    copy_into(dest, ctx, ["foo"], "./", workdir="/test1/test2")
    copy_into(dest, ctx, ["foo"], "./bar/baz", workdir="/test1/test2")
    copy_into(dest, ctx, ["foo"], "../", workdir="/test5/test6")
    copy_into(dest, ctx, ["foo"], "", workdir="/empty")  # ENV empty="" then COPY testfile $empty
    t = tree(dest)
    assert t["test1/test2/foo"][4] == t["test1/test2/bar/baz"][4] == t["test5/foo"][4] == t["empty/foo"][4] == "hello"


def test_empty_wildcard_and_missing_literal(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"foo": "x"})
    copy_into(dest, ctx, ["foo", "nomatch*"], "/")
    assert (dest / "foo").read_text() == "x"
    copy_into(dest, ctx, ["nomatch*"], "/none/")  # BuildKit: no error (the classic builder fails here)
    with pytest.raises(ContextError, match="file not found in build context.*missing"):
        copy_into(dest, ctx, ["missing"], "/")
    with pytest.raises(ContextError, match="missing"):
        source_checksum(ctx, ["missing"])


def test_source_outside_context_is_refused(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    (ctx.parent / "outside").write_text("o")
    # checked against the classic builder: "COPY failed: forbidden path outside the build context: ../outside ()"
    with pytest.raises(ContextError, match=r"forbidden path outside the build context: \.\./outside"):
        copy_into(dest, ctx, ["../outside"], "/out/")


def test_several_sources_need_a_directory(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"a": "a", "b": "b"})
    with pytest.raises(ContextError, match="must be a directory and end with a /"):
        copy_into(dest, ctx, ["a", "b"], "/out")
    copy_into(dest, ctx, ["a", "b"], "/out/")
    assert sorted(os.listdir(dest / "out")) == ["a", "b"]
    copy_into(dest, ctx, ["a", "b"], "/out")  # an existing directory is fine (BuildKit copies into it)


def test_symlinks_top_level_followed_nested_kept(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"bar": "bar-contents", "sub/lfile": "lfile", "sub/subfile": "subfile", "sub/baz": "baz", "d/x": "x"})
    (ctx / "foo").symlink_to("bar")
    (ctx / "sub" / "l0").symlink_to("subfile")
    (ctx / "sub" / "l1").symlink_to("second")
    (ctx / "sub" / "second").symlink_to("baz")
    (ctx / "d" / "up").symlink_to("../bar")
    (ctx / "d" / "dangling").symlink_to("nowhere")
    (ctx / "host").symlink_to("/etc/hostname")
    copy_into(dest, ctx, ["foo"], "/")
    copy_into(dest, ctx, ["sub/l*"], "alllinks/")
    copy_into(dest, ctx, ["d"], "/d/")
    t = tree(dest)
    assert t["foo"] == ("f", 0o644, 0, 0, "bar-contents")
    assert t["alllinks/l0"][4] == "subfile" and t["alllinks/l1"][4] == "baz" and t["alllinks/lfile"][4] == "lfile"
    assert t["d/up"] == ("l", 0, 0, 0, "../bar") and t["d/dangling"][4] == "nowhere"
    # checked against the classic builder: an absolute link to a host file is resolved inside the context
    with pytest.raises(ContextError, match="host"):
        copy_into(dest, ctx, ["host"], "/h")


def test_destination_symlinks_never_lead_out_of_the_root(roots: tuple[Path, Path], tmp_path: Path) -> None:
    ctx, dest = roots
    make(ctx, {"f": "payload"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (dest / "usr").mkdir()
    (dest / "usr" / "bin").symlink_to(str(outside))  # absolute: means <root>/.../outside, not the host dir
    (dest / "rel").symlink_to("../../../../outside")
    copy_into(dest, ctx, ["f"], "/usr/bin/")
    copy_into(dest, ctx, ["f"], "/rel/x")
    assert list(outside.iterdir()) == []
    assert (dest / str(outside).lstrip("/") / "f").read_text() == "payload"
    assert (dest / "outside" / "x").read_text() == "payload"


def test_chmod_octal_sets_files_and_created_parents(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"foo": "f", "bar": "b"})
    os.chmod(ctx / "foo", 0o600)
    os.chmod(ctx / "bar", 0o700)
    copy_into(dest, ctx, ["foo"], "/", chmod="0644")
    copy_into(dest, ctx, ["bar"], "/baz", chmod="777")
    copy_into(dest, ctx, ["foo"], "/foobis", chmod="0")
    copy_into(dest, ctx, ["foo"], "/parent/foo", chmod="777")
    copy_into(dest, ctx, ["foo"], "/parent/sub/foo", chmod="770")
    copy_into(dest, ctx, ["foo"], "/plain/foo")
    t = tree(dest)
    assert t["foo"][1] == 0o644 and t["baz"][1] == 0o777 and t["foobis"][1] == 0
    assert t["parent"][1] == 0o777 and t["parent/sub"][1] == 0o770 and t["plain"][1] == 0o755
    assert t["plain/foo"][1] == 0o600  # the source mode is kept without --chmod


@pytest.mark.parametrize("bad", ["64a", "10000"])
def test_invalid_chmod_message(bad: str) -> None:
    with pytest.raises(ContextError, match=f"invalid chmod parameter: '{bad}'. it should be octal string and between 0 and 07777"):
        parse_chmod(bad)


@pytest.mark.parametrize("spec", ["go-w", "u=rw,g=r,o=r", "a+X", "u+rw,g+r,o-x,o+w", "+x", "g=u", "u=rwX,go=rX", "o=", "u+s,+t",
                                  "a=rX", "=rw,+X", "a=u", "go=u-w", "u=g", "a-x+X"])
@pytest.mark.parametrize("start", [0o600, 0o755, 0o640, 0o4711, 0o744])
def test_symbolic_chmod_matches_chmod1(tmp_path: Path, spec: str, start: int) -> None:
    chmod = shutil.which("chmod")
    assert chmod is not None
    for is_dir in (False, True):
        p = tmp_path / ("d" if is_dir else "f")
        p.mkdir() if is_dir else p.write_text("")
        os.chmod(p, start)
        subprocess.run([chmod, spec, str(p)], check=True, env={"PATH": "/usr/bin:/bin"}, preexec_fn=lambda: os.umask(0))
        expected = stat.S_IMODE(os.lstat(p).st_mode)
        if is_dir and not (start & 0o6000) and "s" not in spec:
            expected &= ~0o6000  # GNU chmod keeps a directory's setgid; BuildKit's mode package has no such rule
        got = parse_chmod(spec).apply(start, is_dir=is_dir, rules="chmod1")
        assert got & ~(0o6000 if is_dir else 0) == expected & ~(0o6000 if is_dir else 0)
        os.chmod(p, 0o700)  # a 0000 directory: its owner may remove it only once it may read it again
        shutil.rmtree(p) if is_dir else p.unlink()


def test_chown_names_resolve_in_destination_root(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    assert resolve_chown("daemon", dest) == (1, 1)  # user only: the user's primary group
    assert resolve_chown("user", dest) == (1000, 1001)
    assert resolve_chown("1000:nobody", dest) == (1000, 65534)
    assert resolve_chown("55", dest) == (55, 55)  # numeric user only: gid = uid
    assert resolve_chown("user:0", dest) == (1000, 0)
    with pytest.raises(ContextError, match="unable to find user nosuch"):
        resolve_chown("nosuch", dest)
    with pytest.raises(ContextError, match="unable to find group nogroup"):
        resolve_chown("user:nogroup", dest)
    make(ctx, {"bar/x": "x", "foo": "f"})
    copy_into(dest, ctx, ["bar"], "/baz", chown="1000:nobody")
    copy_into(dest, ctx, ["foo"], "/newdir/foo", chown="daemon")
    t = tree(dest)
    assert t["baz"][2:4] == (1000, 65534) and t["baz/x"][2:4] == (1000, 65534)
    assert t["newdir"][2:4] == (1, 1) and t["newdir/foo"][2:4] == (1, 1)


def test_from_stage_ownership_rules(tmp_path: Path) -> None:
    """A stage's owners are the ones its ownership overlay holds (set here as a RUN chown would)."""
    from minibuild.fs.ownership import overlay_of

    src, dest = tmp_path / "src", tmp_path / "dest"
    make(src, {"file": "", "dir/subdir/nestedfile": ""})
    overlay_of(src).set_owner(src / "file", 100, 200)
    overlay_of(src).set_owner(src / "dir", 100, 200)
    overlay_of(src).set_owner(src / "dir" / "subdir", 101, 201)
    overlay_of(src).set_owner(src / "dir" / "subdir" / "nestedfile", 102, 202)
    make(dest, {"existingdir/existingfile": "", "existingdir/existingsubdir/.keep": ""})
    overlay_of(dest).set_owner(dest / "existingdir", 500, 600)
    overlay_of(dest).set_owner(dest / "existingdir" / "existingsubdir", 501, 601)
    copy_into(dest, src, ["/file"], ".", from_context=False)
    copy_into(dest, src, ["/dir"], "/dir", from_context=False)
    copy_into(dest, src, ["/dir/."], "/existingdir", from_context=False)
    t = tree(dest)
    assert t["file"][2:4] == (100, 200)
    assert t["dir"][2:4] == (0, 0) and t["dir/subdir"][2:4] == (101, 201) and t["dir/subdir/nestedfile"][2:4] == (102, 202)
    assert t["existingdir"][2:4] == (500, 600) and t["existingdir/existingsubdir"][2:4] == (501, 601)
    assert t["existingdir/subdir"][2:4] == (101, 201)
    dest2 = tmp_path / "dest2"
    make(dest2, {"existingdir/x": ""})
    overlay_of(dest2).set_owner(dest2 / "existingdir", 500, 600)
    copy_into(dest2, src, ["/dir"], "/dir", from_context=False, chown=(300, 400))
    copy_into(dest2, src, ["/dir/."], "/existingdir", from_context=False, chown=(300, 400))
    t = tree(dest2)
    assert t["dir"][2:4] == (300, 400) and t["dir/subdir/nestedfile"][2:4] == (300, 400)
    assert t["existingdir"][2:4] == (500, 600) and t["existingdir/subdir"][2:4] == (300, 400)


def test_from_stage_sources_resolve_symlinks_inside_that_root(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make(src, {"out/sub/foo": "data"})
    (src / "sub").symlink_to("/out/sub")
    (src / "sub2").symlink_to("out/sub")
    dest.mkdir()
    copy_into(dest, src, ["/sub/foo"], ".", from_context=False)
    copy_into(dest, src, ["/sub2/foo"], "bar", from_context=False)
    assert (dest / "foo").read_text() == "data" and (dest / "bar").read_text() == "data"


def test_parents_and_pivot(tmp_path: Path) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    make(src, {"test/a/b/c/d/e": "e", "test/a/b2/c/d/e": "e2", "foo1/foo2/bar": "b", "foo1/foo2/baz": "z",
               "x/a.txt": "xa", "y/a.txt": "ya", "src/a.txt": "1", "src/x/b.txt": "2", "src/x/y/c.txt": "3", "src/x/n.md": ""})
    dest.mkdir()
    copy_into(dest, src, ["foo1/foo2/bar"], "/", parents=True)
    copy_into(dest, src, ["foo1/foo2/ba*"], ".", parents=True, workdir="/test")
    copy_into(dest, src, ["./x/a.txt", "./y/a.txt"], "/parents/", parents=True)
    copy_into(dest, src, ["./x/a.txt", "./y/a.txt"], "/no_parents/")
    copy_into(dest, src, ["/test/a/b/./c/d"], "/out1/", parents=True, from_context=False)
    copy_into(dest, src, ["/test/a/./b/./c"], "/out2/", parents=True, from_context=False)
    copy_into(dest, src, ["/test/a/./*/c"], "/out3/", parents=True, from_context=False)
    copy_into(dest, src, ["/test/a/b*/./c/**/e"], "/out4/", parents=True, from_context=False)
    copy_into(dest, src, ["./src/**/*.txt"], "/out5/", parents=True)
    copy_into(dest, src, ["/nomatch*/x"], "/out6/", parents=True, from_context=False)
    t = tree(dest)
    assert t["foo1/foo2/bar"][4] == "b"
    assert t["test/foo1/foo2/bar"][4] == "b" and t["test/foo1/foo2/baz"][4] == "z"
    assert t["parents/x/a.txt"][4] == "xa" and t["parents/y/a.txt"][4] == "ya"
    assert t["no_parents/a.txt"][4] == "ya"  # BuildKit silently overwrites
    assert "out1/c/d/e" in t and "out1/a" not in t
    assert "out2/b/c/d/e" in t
    assert "out3/b/c/d/e" in t and "out3/b2/c/d/e" in t
    assert "out4/c/d/e" in t
    assert {k for k in t if k.startswith("out5/")} == {"out5/src", "out5/src/a.txt", "out5/src/x", "out5/src/x/b.txt", "out5/src/x/y", "out5/src/x/y/c.txt"}
    assert t["out6"][0] == "d"
    with pytest.raises(ContextError, match="nonexistent-file"):
        copy_into(dest, src, ["/test/nonexistent-file"], "/out7/", parents=True, from_context=False)


def test_exclude_patterns(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"dir1/file-101.png": "2", "dir1/file-102.txt": "3", "dir1/file-103.jpeg": "4", "dir2/file-201.pdf": "6",
               "dir2/file-202.jpeg": "7", "dir2/file-203.png": "8", "dir3/file-301.mp3": "9", "dir3/file-302.mpeg": "10",
               "dir4/file-401.txt": "11"})
    (ctx / "dir4" / "file-402.txt").symlink_to("file-401.txt")
    (ctx / "dir4" / "file-403.txt").symlink_to("file-404.txt")
    copy_into(dest, ctx, ["."], "/1", exclude=["*/*.png", "*/*.jpeg"])
    copy_into(dest, ctx, ["dir3/"], "/3/", exclude=["*.mp3"], unpack=True, instruction="ADD")
    copy_into(dest, ctx, ["dir*"], "/4/", exclude=["*.mp3", "*.jpeg", "*.png", "*.pdf", "*.txt"])
    copy_into(dest, ctx, ["dir*"], "/6", exclude=["*"], unpack=True, instruction="ADD")
    t = tree(dest)
    assert {k for k in t if k.startswith("1/") and t[k][0] != "d"} == {
        "1/dir1/file-102.txt", "1/dir2/file-201.pdf", "1/dir3/file-301.mp3", "1/dir3/file-302.mpeg",
        "1/dir4/file-401.txt", "1/dir4/file-402.txt", "1/dir4/file-403.txt"}
    assert t["1/dir4/file-403.txt"] == ("l", 0, 0, 0, "file-404.txt")
    assert {k for k in t if k.startswith("3/")} == {"3/file-302.mpeg"}
    assert {k for k in t if k.startswith("4/")} == {"4/file-302.mpeg"}
    assert os.listdir(dest / "6") == []


def _tar_bytes(entries: dict[str, bytes], *, extra: list[tarfile.TarInfo] = ()) -> bytes:  # type: ignore[assignment]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.uid, info.gid = len(data), 0o640, 7, 8
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info)
    return buf.getvalue()


@pytest.mark.parametrize("compress", ["none", "gz", "bz2", "xz"])
def test_add_extracts_local_archives_by_content(roots: tuple[Path, Path], compress: str) -> None:
    import bz2
    import lzma

    ctx, dest = roots
    raw = _tar_bytes({"top/a.txt": b"A", "b.txt": b"B"})
    data = {"none": raw, "gz": gzip.compress(raw), "bz2": bz2.compress(raw), "xz": lzma.compress(raw)}[compress]
    (ctx / "archive.bin").write_bytes(data)  # the name says nothing: detection is by content
    (dest / "ext").mkdir()
    (dest / "ext" / "b.txt").write_text("old")
    assert is_archive(ctx / "archive.bin")
    copy_into(dest, ctx, ["archive.bin"], "/ext", unpack=True, instruction="ADD")
    t = tree(dest)
    assert t["ext/top/a.txt"] == ("f", 0o640, 7, 8, "A") and t["ext/b.txt"][4] == "B"
    copy_into(dest, ctx, ["archive.bin"], "/copied/")  # COPY never extracts
    assert (dest / "copied" / "archive.bin").read_bytes() == data


def test_add_hard_link_header_sets_the_shared_inodes_owner_and_mode(roots: tuple[Path, Path]) -> None:
    """As Docker's classic builder extracts it (moby pkg/archive, seen with case add-tar-hardlinks' tar with link
    headers of 0:0 0644): the link's own header chowns and chmods the inode both names share."""
    ctx, dest = roots
    link = tarfile.TarInfo("d/h")
    link.type, link.linkname, link.mode, link.uid, link.gid = tarfile.LNKTYPE, "d/f", 0o644, 0, 0
    (ctx / "links.tar").write_bytes(_tar_bytes({"d/f": b"shared"}, extra=[link]))
    copy_into(dest, ctx, ["links.tar"], "/x/", unpack=True, instruction="ADD")
    t = tree(dest)
    assert t["x/d/f"] == ("f", 0o644, 0, 0, "shared") and t["x/d/h"] == ("f", 0o644, 0, 0, "shared")
    assert os.stat(dest / "x/d/f").st_ino == os.stat(dest / "x/d/h").st_ino


def test_add_of_non_archives_copies_them(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    (ctx / "empty.tar.gz").write_bytes(b"")
    (ctx / "zeros.tar").write_bytes(b"\0" * 1024)
    for name in ("empty.tar.gz", "zeros.tar"):
        assert not is_archive(ctx / name)
    copy_into(dest, ctx, ["empty.tar.gz", "zeros.tar"], "/x/", unpack=True, instruction="ADD")
    assert sorted(os.listdir(dest / "x")) == ["empty.tar.gz", "zeros.tar"]


def test_archive_entries_cannot_escape(tmp_path: Path) -> None:
    dest = tmp_path / "root"
    dest.mkdir()
    evil = tmp_path / "evil.tar"
    evil.write_bytes(_tar_bytes({"../../escape": b"x"}))
    with pytest.raises(UnsafePathError):
        extract_archive_into(dest, evil, "/d")
    link = tarfile.TarInfo("ln")
    link.type, link.linkname = tarfile.SYMTYPE, "/"
    through = tarfile.TarInfo("ln/etc/owned")
    through.size = 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(link)
        tar.addfile(through, io.BytesIO(b""))
    (tmp_path / "sym.tar").write_bytes(buf.getvalue())
    extract_archive_into(dest, tmp_path / "sym.tar", "/d2")
    assert (dest / "d2" / "etc" / "owned").exists()  # "/" in the archive means the extraction directory


def test_remote_sources_refused_offline(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    for src in ("https://example.com/a.tar.gz", "git@github.com:user/repo.git"):
        with pytest.raises(ContextError, match="offline"):
            copy_into(dest, ctx, [src], "/x/", instruction="ADD")


def test_heredocs(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    copy_into(dest, None, [], "double/", heredocs=[HeredocSource(name="EOF", data=b"a\n"), HeredocSource(name="EOF2", data=b"b\n")])
    copy_into(dest, None, [], "single", heredocs=[HeredocSource(name="EOF", data=b"s\n")], workdir="/w")
    copy_into(dest, None, [], "/x/", heredocs=[HeredocSource(name="EOF", data=b"m\n")], chmod="777", chown="user:users")
    t = tree(dest)
    assert t["double/EOF"] == ("f", 0o644, 0, 0, "a\n") and t["double/EOF2"][4] == "b\n"
    assert t["w/single"][4] == "s\n"
    assert t["x/EOF"][1:4] == (0o777, 1000, 1001)


def test_ignored_files_are_not_copyable(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"a/b/f": "x", "a/g": "y", "Dockerfile": "FROM scratch"})
    ign = IgnoreMatcher(["a", "!a/b/f", "Dockerfile"])
    copy_into(dest, ctx, ["."], "/out/", ignore=ign)
    assert sorted(k for k in tree(dest) if k.startswith("out")) == ["out", "out/a", "out/a/b", "out/a/b/f"]
    with pytest.raises(ContextError, match="Dockerfile"):
        copy_into(dest, ctx, ["Dockerfile"], "/df", ignore=ign)


def test_changed_paths_and_source_checksum(roots: tuple[Path, Path]) -> None:
    ctx, dest = roots
    make(ctx, {"app/main.py": "print()", "app/lib/x.py": ""})
    before = source_checksum(ctx, ["app"])
    result = copy_into(dest, ctx, ["app"], "/srv/app/")
    assert result.changed_paths == ("srv", "srv/app", "srv/app/lib", "srv/app/lib/x.py", "srv/app/main.py")
    assert source_checksum(ctx, ["app"]) == before  # copying reads, never changes, the sources
    os.utime(ctx / "app" / "main.py", (5, 5))
    assert source_checksum(ctx, ["app"]) == before
    (ctx / "app" / "new.py").write_text("")
    assert source_checksum(ctx, ["app"]) != before
    assert source_checksum(ctx, ["app/*.py"]) != source_checksum(ctx, ["app/m*.py"])  # the match set counts


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=32), st.sampled_from([0o644, 0o755, 0o4755]), st.integers(min_value=0, max_value=2**31))
def test_checksum_tracks_content_and_mode_not_mtime(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, mode: int, stamp: int
) -> None:
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "f").write_bytes(b"base")
    os.chmod(ctx / "f", 0o644)
    base = source_checksum(ctx, ["f"])
    (ctx / "f").write_bytes(data)
    os.chmod(ctx / "f", mode)
    os.utime(ctx / "f", (stamp, stamp))
    assert (source_checksum(ctx, ["f"]) == base) == (data == b"base" and mode == 0o644)


def test_hard_links_are_kept_within_one_source_argument_only(tmp_path: Path) -> None:
    """BuildKit copies each source argument by itself (one fsutil copier per argument, whose inode map covers its
    wildcard matches and directory trees): `/a` and `/b`, links of each other, given as two arguments are two
    files; within one directory, or one wildcard's matches, they stay linked (the classic builder agrees on the
    first two: tests/conformance/cases/copy-from-hardlinks)."""
    src = make(tmp_path / "src", {"a": "x", "dir/c": "y", "h1": "z"})
    os.link(src / "a", src / "b")
    os.link(src / "dir/c", src / "dir/e")
    os.link(src / "h1", src / "h2")
    dst = tmp_path / "dst"
    dst.mkdir()
    copy_into(dst, src, ["/a", "/b"], "/d/", from_context=False)
    copy_into(dst, src, ["/dir", "/a"], "/m/", from_context=False)
    copy_into(dst, src, ["/h*"], "/w/", from_context=False)

    def ino(rel: str) -> int:
        return os.lstat(dst / rel).st_ino

    assert ino("d/a") != ino("d/b") and os.lstat(dst / "d/a").st_nlink == 1
    assert (dst / "d/b").read_text() == "x"
    assert ino("m/c") == ino("m/e") != ino("m/a")
    assert ino("w/h1") == ino("w/h2")
