"""A hostile store on disk: symlinked store directories, stores others may write or own, edited cache records,
symlinked blobs. Each attack is performed for real; the sentinel files outside the store must survive and the
refusal must be one line."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from minibuild.digest import Digest
from minibuild.errors import StoreError
from minibuild.store import Store
from minibuild.store.fsck import fsck
from tests.support import unprivileged_user

REPO = str(Path(__file__).resolve().parents[2])


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MINIBUILD_ALLOW_SHARED_STORE"}
    return dict(env, PYTHONPATH=REPO, **extra)


def _cli(store: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "minibuild", "--store", str(store), *args]
    return subprocess.run(argv, capture_output=True, text=True, env=_env(**env), timeout=120)


def _one_error_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _snapshot(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath, name)
            out[str(p.relative_to(root))] = None if p.is_dir() else p.read_bytes()
    return out


def _victim(tmp_path: Path) -> Path:
    """A directory outside the store full of names prune, fsck --repair or a build's reaper would delete if they
    followed a symlink into it: 64-hex blob names, dead temp files and scratch trees, leases, records."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / ("ab" * 32)).write_bytes(b"not referenced by anything\n")
    (victim / "blob-999999-deadbeef").write_bytes(b"partial")
    (victim / "build-999999-abcdef" / "root").mkdir(parents=True)
    (victim / "build-999999-abcdef" / "root" / "precious").write_text("keep me\n")
    (victim / ".tmp-index.json-999999-0011").write_text("old")
    os.utime(victim / ".tmp-index.json-999999-0011", (0, 0))
    (victim / "999999-abc.lease").write_text("")
    (victim / ("0" * 64 + ".json")).write_text("{}")
    (victim / "precious.txt").write_text("the user's own file\n")
    return victim


STORE_DIRS = [("blobs", "sha256"), (".minibuild", "tmp"), (".minibuild", "leases"), (".minibuild", "cache"),
              (".minibuild",), ("blobs",)]


@pytest.mark.parametrize("parts", STORE_DIRS, ids=["/".join(p) for p in STORE_DIRS])
def test_symlinked_store_directory_is_refused_and_nothing_outside_is_deleted(tmp_path: Path,
                                                                              parts: tuple[str, ...]) -> None:
    store = tmp_path / "store"
    Store.open(store)
    victim = _victim(tmp_path)
    before = _snapshot(victim)
    target = store.joinpath(*parts)
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(victim)
    rel = "/".join(parts)
    for args in (["prune", "--all"], ["fsck", "--repair"], ["images"]):
        line = _one_error_line(_cli(store, *args), f"{store}/{rel}", "symlink")
        assert "never follows" in line
    assert _snapshot(victim) == before


@pytest.mark.parametrize("parts", STORE_DIRS[:4], ids=["/".join(p) for p in STORE_DIRS[:4]])
def test_directory_swapped_for_a_symlink_after_open_is_never_followed(tmp_path: Path,
                                                                      parts: tuple[str, ...]) -> None:
    # the opener's check passed; the directory is swapped afterwards (by whoever can write the store): every
    # walk and removal opens the store's directories with O_NOFOLLOW, so it is an error, never a deletion there
    store = Store.open(tmp_path / "store")
    victim = _victim(tmp_path)
    before = _snapshot(victim)
    target = store.root.joinpath(*parts)
    shutil.rmtree(target, ignore_errors=True)
    target.symlink_to(victim)
    for action in (lambda: store.prune(clear_cache=True), lambda: fsck(store, repair=True)):
        try:
            action()
        except StoreError as exc:
            assert "symlink" in str(exc) and "\n" not in str(exc)
    assert _snapshot(victim) == before


def test_world_writable_store_directories_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store.open(store)
    for rel in ("", "blobs/sha256", ".minibuild/tmp", ".minibuild/cache"):
        path = store / rel if rel else store
        os.chmod(path, 0o777)
        shown = str(path).rstrip("/")
        for args in (["images"], ["prune"]):
            _one_error_line(_cli(store, *args), shown, "writable by every user", f"chmod go-w {shown}")
        # the opt-in for a shared team store does not cover a store every user may write
        _one_error_line(_cli(store, "images", MINIBUILD_ALLOW_SHARED_STORE="1"), "writable by every user")
        os.chmod(path, 0o755)
    assert _cli(store, "images").returncode == 0


def test_group_writable_store_needs_the_explicit_opt_in(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store.open(store)
    os.chmod(store / ".minibuild" / "leases", 0o2775)
    _one_error_line(_cli(store, "images"), "writable by its group", "MINIBUILD_ALLOW_SHARED_STORE=1",
                    f"chmod go-w {store}/.minibuild/leases")
    assert _cli(store, "images", MINIBUILD_ALLOW_SHARED_STORE="1").returncode == 0
    index = store / "index.json"  # the store's own files too: a group-writable index.json renames images
    os.chmod(store / ".minibuild" / "leases", 0o755)
    os.chmod(index, 0o664)
    _one_error_line(_cli(store, "images"), f"store file {index}", "writable by its group")


def test_store_below_a_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)  # anyone could rename the store away and put their own in its place
    _one_error_line(_cli(shared / "store", "images"), f"inside {shared}", "no sticky bit")
    assert not (shared / "store").exists()
    os.chmod(shared, 0o1777)  # like /tmp: others cannot rename what is not theirs
    assert _cli(shared / "store", "images").returncode == 0


def test_store_files_that_are_symlinks_are_refused(tmp_path: Path) -> None:
    store = tmp_path / "store"
    Store.open(store)
    outside = tmp_path / "outside.json"
    outside.write_text('{"manifests":[],"schemaVersion":2}')
    before = outside.read_bytes()
    for rel in ("index.json", ".minibuild/lock", ".minibuild/refs.lock"):
        path = store / rel
        path.unlink(missing_ok=True)
        path.symlink_to(outside)
        _one_error_line(_cli(store, "prune"), f"store file {path} is a symlink")
        path.unlink()
        if rel == "index.json":
            path.write_text('{"manifests":[],"schemaVersion":2}')
    assert outside.read_bytes() == before


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A directory mbuser can reach (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mb-hostile-", dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_store_owned_by_another_user_is_refused(reachable_tmp: Path) -> None:
    import pwd

    uid = pwd.getpwnam(unprivileged_user()).pw_uid
    store = reachable_tmp / "store"
    Store.open(store)
    victim = _victim(reachable_tmp)
    before = _snapshot(victim)
    # mbuser owns the temp directory of root's store: mbuser could plant symlinks there for root's prune to follow
    tmp = store / ".minibuild" / "tmp"
    shutil.chown(tmp, "mbuser", "mbuser")
    subprocess.run(["runuser", "-u", "mbuser", "--", "ln", "-s", str(victim), str(tmp / "build-999999-aaaa")],
                   check=True)
    _one_error_line(_cli(store, "prune"), f"store directory {tmp} belongs to mbuser (uid {uid})", "not to you")
    assert _snapshot(victim) == before
    assert (tmp / "build-999999-aaaa").is_symlink()
    # a whole store of mbuser's, used by root
    shutil.chown(tmp, "root", "root")
    for dirpath, dirs, files in os.walk(store):
        for name in [*dirs, *files, ""]:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
    _one_error_line(_cli(store, "images"), f"belongs to mbuser (uid {uid})")
    assert _cli(store, "images", MINIBUILD_ALLOW_SHARED_STORE="1").returncode == 0  # the explicit opt-in
    # as mbuser (through the library: the CLI's interpreter lives under /root): its own store works, and root's
    # store is refused by the kernel, as one StoreError line
    python = shutil.which("python3", path="/usr/bin:/bin")
    assert python is not None
    probe = ("import sys\nfrom minibuild.errors import MinibuildError\nfrom minibuild.store import Store\n"
             "try:\n    print(Store.open(sys.argv[1]).prune().kept)\n"
             "except MinibuildError as e:\n    sys.exit(f'error: {e}')\n")
    as_mbuser = ["runuser", "-u", "mbuser", "--", "env", f"PYTHONPATH={REPO}", python, "-c", probe]
    own = subprocess.run([*as_mbuser, str(store)], capture_output=True, text=True, timeout=60)
    assert own.returncode == 0, own.stderr
    rootstore = reachable_tmp / "rootstore"
    Store.open(rootstore)
    _one_error_line(subprocess.run([*as_mbuser, str(rootstore)], capture_output=True, text=True, timeout=60),
                    "Permission denied")


def test_symlinked_blob_is_corrupt_and_never_followed(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    host = tmp_path / "host-file"
    host.write_bytes(b"a host file whose content hashes to the blob's name\n")
    digest = Digest("sha256:" + hashlib.sha256(host.read_bytes()).hexdigest())
    store.blobs.path(digest).symlink_to(host)  # following it would even verify
    assert not store.blobs.has(digest)
    store.cache.put("k", {"a": 1}, refs=(digest,))
    assert store.cache.get("k") is None  # its blob is not there
    with pytest.raises(StoreError, match="symlink"):
        store.blobs.read_bytes(digest)
    problems = fsck(store).problems
    assert [(p.kind, "symlink" in p.message) for p in problems if p.kind == "stray-file"] == [("stray-file", True)]
    fsck(store, repair=True)
    assert not os.path.lexists(store.blobs.path(digest)) and host.exists()


def _build(store: Path, ctx: Path, dockerfile: str, *extra: str) -> subprocess.CompletedProcess[str]:
    (ctx / "Dockerfile").write_text(dockerfile)
    return _cli(store, "build", "-t", "t:1", *extra, str(ctx))


def test_edited_cache_record_is_noticed_and_never_trusted(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "a.txt").write_text("a\n")
    df = "FROM busybox\nCOPY a.txt /a.txt\nRUN echo one > /one\n"
    first = _build(store_dir, ctx, df)
    assert first.returncode == 0, first.stderr
    store = Store.open(store_dir)
    digest = store.resolve_digest("t:1")
    # a naive edit: point the RUN step's record at the COPY step's layer, as someone editing the JSON would
    records = {}
    for path in sorted((store_dir / ".minibuild" / "cache").iterdir()):
        doc = json.loads(path.read_text())["doc"]
        if doc["record"].get("kind") == "layer":
            records[doc["record"]["inputs"]["instruction"]["keyword"]] = (path, doc["record"]["layer"]["digest"])
    (run_path, run_layer), (_, copy_layer) = records["RUN"], records["COPY"]
    run_path.write_text(run_path.read_text().replace(run_layer, copy_layer))
    edited = [run_path.name]
    assert edited, "no step record found to edit"
    proc = _cli(store_dir, "fsck")
    assert proc.returncode == 1, proc.stdout
    assert all(f"bad-cache-record: cache record {name}: content does not match its digest" in proc.stdout
               for name in edited), proc.stdout
    again = _build(store_dir, ctx, df, "--explain")
    assert again.returncode == 0, again.stderr
    assert "content does not match its digest" in again.stdout + again.stderr  # said, and the step ran again
    assert Store.open(store_dir).resolve_digest("t:1") == digest  # the same image: the edit was not trusted
    assert _cli(store_dir, "fsck").returncode == 0  # the rebuilt step wrote a sound record in its place


def test_edited_record_is_repaired_and_keeps_nothing_alive(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    blob = store.blobs.put_bytes(b"kept by a record\n")
    store.cache.put("k", {"v": 1}, refs=(blob,))
    path = next((store.meta_dir / "cache").iterdir())
    path.write_bytes(path.read_bytes().replace(b'"v":1', b'"v":2'))
    assert store.cache.get("k") is None
    assert store.cache.lookup("k")[1] is not None and "does not match its digest" in str(store.cache.lookup("k")[1])
    assert list(store.cache.records()) == []
    report = fsck(store, repair=True)
    assert [p.kind for p in report.problems] == ["bad-cache-record"] and report.ok and not path.exists()
    assert store.prune().removed == (blob,)  # an untrusted record pins nothing


def test_old_or_hand_written_record_without_a_digest_is_a_miss(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    key = "step"
    name = hashlib.sha256(key.encode()).hexdigest() + ".json"
    (store.meta_dir / "cache" / name).write_text('{"key":"step","record":{"v":1},"refs":[]}')
    assert store.cache.get(key) is None
    assert [p.kind for p in fsck(store).problems] == ["bad-cache-record"]


def test_writing_a_blob_replaces_a_symlink_in_its_place(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    host = tmp_path / "host-file"
    host.write_bytes(b"host\n")
    data = b"the real blob\n"
    digest = Digest("sha256:" + hashlib.sha256(data).hexdigest())
    store.blobs.path(digest).symlink_to(host)
    assert store.blobs.put_bytes(data) == digest
    assert not store.blobs.path(digest).is_symlink() and store.blobs.read_bytes(digest) == data
    assert host.read_bytes() == b"host\n"
