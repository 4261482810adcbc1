"""The layered stage root (minibuild.fs.layered): builds that fill a root on first touch give exactly the bytes of
builds that extract every layer first, without unpacking what the steps never read."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from minibuild.digest import Digest
from minibuild.store import Store
from minibuild.store.keptree import TreeFile, chain_key, encode_tree, tree_path
from minibuild.store.layerindex import INDEX_DIR
from minibuild.store.tarread import iter_layer
from tests.engine.engine_support import image_files, run_build, write_context

# A base of several layers: whiteouts, an opaque directory, hard links, symlinks, special modes and owners.
BASE = """\
FROM busybox
RUN mkdir -p /data/keep /data/gone /data/opq/sub /links /modes \\
 && echo keep > /data/keep/a && echo gone > /data/gone/b && echo x > /data/opq/sub/c && echo y > /data/opq/d \\
 && echo shared > /links/one && ln /links/one /links/two && ln -s ../data/keep/a /links/sym \\
 && echo secret > /modes/s && chmod 0600 /modes/s && chown 7:9 /modes/s && chmod 4755 /modes \\
 && mkdir -p /deep/a/b/c/d && echo deep > /deep/a/b/c/d/e
RUN rm -rf /data/gone && rm -rf /data/opq && mkdir -p /data/opq && echo new > /data/opq/n && touch -d '2001-02-03 04:05:06' /data/keep/a
"""

SCRIPTS = [
    # a directory removed and made again: none of the old children show through
    "RUN rm -rf /data/keep && mkdir /data/keep && ls -a /data/keep > /out",
    # a change through one hard link is seen through the other
    "RUN echo more >> /links/one && cat /links/two > /out",
    "RUN find / -xdev -path /proc -prune -o -print | sort > /out",
    "RUN ls -lR /data /links /modes > /out && ls -ld /deep/a/b > /out2",
    "RUN cp -a /data /copy && mv /deep /moved && chmod -R go-rwx /moved",
    "RUN sed -i s/keep/KEPT/ /data/keep/a && cat /links/sym > /out",
    "RUN tar -cf /t.tar /data /links && tar -tvf /t.tar > /out",
    "RUN echo /data/* /links/* > /out && [ -e /data/gone ] || echo absent >> /out",
    "RUN rm /links/two && ln -s /nowhere /links/two && rm -rf /modes",
    "WORKDIR /deep/a/b/c/new\nRUN pwd > here",
    "COPY f.txt /data/keep/\nCOPY f.txt /links/one",
    "RUN chown -R 5:6 /data && stat -c '%u %g %a %n' /data/keep/a /data/opq/n > /out",
    # a mounted directory of another image is read past the resolver: it is filled whole first
    "RUN --mount=type=bind,from=layered/base,source=/data,target=/mnt ls -R /mnt > /out && cat /mnt/keep/a >> /out",
    "RUN --mount=type=cache,target=/c,from=layered/base,source=/links cat /c/one /c/sym > /out",
]


def _layers(store: Store, digests: list[Any], since: float) -> list[list[tuple[object, ...]]]:
    """Each layer's entries: path, type, mode, owner, link, content and mtime (a time from this build: "new")."""
    out = []
    for digest in digests:
        with store.blobs.open(digest) as fh:
            out.append([(e.path, e.type, e.mode, e.uid, e.gid, e.linkname, e.devmajor, e.devminor, e.xattrs,
                         stream.read() if stream is not None else None, "new" if e.mtime >= since else e.mtime)
                        for e, stream in iter_layer(fh)])
    return out


def _build(tmp: Path, script: str, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], list[Any]]:
    """The own layers of one Dockerfile built FROM the same base, layered and extracted."""
    ctx = write_context(tmp / "ctx", {"f.txt": "from the context\n"})
    store = tmp / "store"
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "0")
    base = run_build(ctx, store, BASE, executor="emulate", tags=["layered/base"])
    df = "FROM layered/base\n" + script + "\nFROM layered/base AS other\nCOPY --from=0 / /from-first/\n"
    got = []
    for layered in ("1", "0"):
        monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", layered)
        since = time.time() - 1
        result = run_build(ctx, store, df, executor="emulate", no_cache=True)
        own = [la.digest for la in result.image.layers[len(base.image.layers):]]
        got.append(_layers(Store.open(store), own, since))
    return got[0], got[1]


@pytest.mark.parametrize("script", SCRIPTS)
def test_layered_and_extracted_roots_build_the_same_layers(tmp_path: Path, script: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    layered, extracted = _build(tmp_path, script, monkeypatch)
    assert layered == extracted
    assert layered, "the stage made layers"


def test_an_emulated_build_unpacks_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    events: list[dict[str, Any]] = []
    ctx = write_context(tmp_path / "ctx", {"a.txt": "a\n"})
    run_build(ctx, tmp_path / "store", BASE, executor="emulate", tags=["layered/base"])
    run_build(ctx, tmp_path / "store", "FROM layered/base\nRUN echo one > /one\nCOPY a.txt /a.txt\n"
              "RUN cat /a.txt >> /one\n", executor="emulate", progress=events.append)
    assert [e for e in events if e["type"] == "step" and not e.get("cached")], "the steps ran"
    assert not [e for e in events if e["type"] in ("unpack_start", "unpack")]
    # and the folded tree of the base is kept in the store for the next build
    st = Store.open(tmp_path / "store")
    image = st.resolve("layered/base")
    assert tree_path(st.meta_dir / INDEX_DIR, chain_key([la.digest for la in image.layers])).exists()


# the last RUN alone misses on the second build: its root is the base's kept tree with the earlier steps' layers
# (whiteouts, opaque directories, replaced directories, hard links, owners) applied onto it
INSPECT = ("ARG R\nRUN echo $R > /r && find / -xdev -path /proc -prune -o -print | sort > /tree"
           " && ls -lnR /data /links /modes /deep > /ls && { cat /links/one /links/two /data/keep/* > /cat 2>&1 || true; }"
           " && echo again >> /links/one && rm -rf /data/opq && mkdir -p /data/keep/more")
STACKED = [
    "RUN rm -rf /data/keep && mkdir /data/keep && echo k > /data/keep/k",
    "RUN echo more >> /links/one && rm /links/sym && ln /links/two /links/three",
    "RUN rm /links/two && ln -s /nowhere /links/two && rm -rf /modes && echo m > /modes",
    "RUN rm -rf /deep/a/b && echo file > /deep/a/b && chown -R 5:6 /data",
    "COPY f.txt /data/keep/\nCOPY f.txt /links/one\nRUN mv /data/opq /data/opq2",
]


@pytest.mark.parametrize("script", STACKED)
def test_a_miss_above_cached_steps_applies_their_layers_onto_the_kept_base(tmp_path: Path, script: str,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = write_context(tmp_path / "ctx", {"f.txt": "from the context\n"})
    store = tmp_path / "store"
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    base = run_build(ctx, store, BASE, executor="emulate", tags=["layered/base"])
    df = "FROM layered/base\n" + script + "\n" + INSPECT + "\n"
    run_build(ctx, store, df, executor="emulate", build_args={"R": "1"})
    events: list[dict[str, Any]] = []
    since = time.time() - 1
    stacked = run_build(ctx, store, df, executor="emulate", build_args={"R": "2"}, progress=events.append)
    missed = [e for e in events if e["type"] == "step" and not e.get("cached")]
    assert len(missed) == 1, "only the last RUN missed"
    own = len(stacked.image.layers) - len(base.image.layers) - 1  # the cached steps' layers, applied
    assert [e["layers"] for e in events if e["type"] == "unpack"] == [own], "the base was not unpacked"
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "0")
    extracted = run_build(ctx, store, df, executor="emulate", build_args={"R": "2"}, no_cache=True)
    st = Store.open(store)
    assert _layers(st, [stacked.image.layers[-1].digest], since) == \
        _layers(st, [extracted.image.layers[-1].digest], since)
    assert image_files(store, stacked) == image_files(store, extracted)


def test_a_chain_with_much_above_its_kept_base_is_folded_once_and_kept(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.engine import layertree

    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    monkeypatch.setattr(layertree, "STACK_BYTES", 0)  # every layer above the base counts as big
    ctx = write_context(tmp_path / "ctx", {"f.txt": "from the context\n"})
    store = tmp_path / "store"
    run_build(ctx, store, BASE, executor="emulate", tags=["layered/base"])
    df = "FROM layered/base\n" + STACKED[0] + "\n" + INSPECT + "\n"
    first = run_build(ctx, store, df, executor="emulate", build_args={"R": "1"})
    directory = Store.open(store).meta_dir / INDEX_DIR

    def trees() -> list[int]:
        return sorted(len(TreeFile.of_file(p).layers) for p in directory.glob("tree-*"))

    before = trees()
    events: list[dict[str, Any]] = []
    run_build(ctx, store, df, executor="emulate", build_args={"R": "2"}, progress=events.append)
    assert not [e for e in events if e["type"] == "unpack"], "nothing applied: the chain was folded"
    kept = sorted(before + [len(first.image.layers) - 1])
    assert trees() == kept, "and its fold kept for the next build"
    run_build(ctx, store, df, executor="emulate", build_args={"R": "3"})
    assert trees() == kept, "which the next build found (nothing folded again)"


def _checksums(store: Path) -> dict[str, object]:
    """The COPY --from source checksums a store keeps, by the sources they are of."""
    st = Store.open(store)
    out = {}
    for key, _ in st.cache.records():
        rec = st.cache.get(key)
        if rec is not None and rec.get("kind") == "copy-from-checksum":
            out[json.dumps(rec["inputs"]["sources"])] = rec["checksum"]
    return out


def test_a_copy_from_a_layered_stage_reads_only_what_it_copies_and_hashes_as_an_extracted_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = write_context(tmp_path / "ctx", {})
    df = ("FROM layered/base AS a\nRUN echo hi > /data/keep/new && ln /links/one /data/hard\n"
          "FROM busybox\nCOPY --from=a /data /d\nCOPY --from=a /links /modes /deep/ /many/\n"
          "COPY --from=layered/base /links/sym /data/opq /one/\n")
    got = {}
    for layered in ("1", "0"):
        monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", layered)
        store = tmp_path / f"store-{layered}"
        run_build(ctx, store, BASE, executor="emulate", tags=["layered/base"])
        events: list[dict[str, Any]] = []
        result = run_build(ctx, store, df, executor="emulate", progress=events.append)
        got[layered] = (result.image.digest, _checksums(store), image_files(store, result))
        if layered == "1":
            assert not [e for e in events if e["type"] == "unpack"], "no stage was unpacked"
    assert got["1"][1] and got["1"] == got["0"]


def test_without_layering_the_base_is_unpacked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "0")
    events: list[dict[str, Any]] = []
    ctx = write_context(tmp_path / "ctx", {})
    run_build(ctx, tmp_path / "store", "FROM busybox\nRUN echo one > /one\n", executor="emulate",
              progress=events.append)
    assert [e for e in events if e["type"] == "unpack"]


def _rows_poison(change: Any) -> Any:
    """A poison that rewrites a kept tree's rows and encodes them again (each file well formed but for the rows)."""
    def poison(data: bytes) -> bytes:
        tree = TreeFile.of_bytes(data)
        return encode_tree(tree.layers, change(list(tree.rows())))
    return poison


def _groups_poison(data: bytes) -> bytes:
    tree = TreeFile.of_bytes(data)
    rows = list(tree.rows())
    out = encode_tree(tree.layers, rows)
    return out.replace(b'"groups":[["links/one","links/two"]]', b'"groups":[["links/one","../../../escaped"]]')


@pytest.mark.parametrize("poison", [
    _rows_poison(lambda rows: [["../../escaped", "file", 0o644, 0, 0, 1, 0, "", None, 0, 0, [], [0, 512, 1, False]]]
                 + rows),
    _rows_poison(lambda rows: [["data/../../x", "dir", 0o755, 0, 0, 0, 0, "", None, 0, 0, [], None]] + rows),
    _rows_poison(lambda rows: [[r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                                [0, 3, r[5], False] if r[12] else None] for r in rows]),  # off the tar's blocks
    _rows_poison(lambda rows: [[r[0], r[1], "0755", *r[3:]] for r in rows]),
    _groups_poison,
    lambda data: data[:len(data) // 2],  # truncated
    lambda data: data[:-40] + b"\xff" * 40,  # the last row's bytes
    lambda data: data[:200] + b"\x7f" * 64 + data[264:],  # the offsets
    lambda data: b"not a tree at all",
])
def test_a_hostile_kept_tree_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, poison: Any) -> None:
    """The store on disk may be hostile: a kept tree that is not well formed is folded again, never used."""
    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    ctx = write_context(tmp_path / "ctx", {})
    run_build(ctx, tmp_path / "store", BASE, executor="emulate", tags=["layered/base"])
    st = Store.open(tmp_path / "store")
    image = st.resolve("layered/base")
    path = tree_path(st.meta_dir / INDEX_DIR, chain_key([la.digest for la in image.layers]))
    df = ("FROM layered/base\nRUN cat /data/keep/a /links/two > /out && ls -lnR / > /ls && echo x >> /links/one"
          " && rm -rf /data/opq\n")
    first = run_build(ctx, tmp_path / "store", df, executor="emulate", no_cache=True)
    good = path.read_bytes()
    path.write_bytes(poison(good))
    assert path.read_bytes() != good
    again = run_build(ctx, tmp_path / "store", df, executor="emulate", no_cache=True)
    assert again.image.digest == first.image.digest
    assert not (tmp_path / "escaped").exists() and not list(tmp_path.glob("**/escaped"))
    if path.read_bytes() != good:  # a row no lookup reached: it stays, and fsck says so
        from minibuild.store.fsck import fsck

        assert {p.subject.rpartition("/")[2] for p in fsck(st).of_kind("bad-layer-index")} == {path.name}


def test_prune_forgets_the_kept_trees_of_layers_that_are_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.store.gc import prune

    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    ctx = write_context(tmp_path / "ctx", {})
    run_build(ctx, tmp_path / "store", BASE, executor="emulate", tags=["layered/base"])
    run_build(ctx, tmp_path / "store", "FROM layered/base\nRUN echo x > /x\n", executor="emulate", tags=["layered/top"])
    st = Store.open(tmp_path / "store")
    directory = st.meta_dir / INDEX_DIR
    base = st.resolve("layered/base")
    kept = tree_path(directory, chain_key([la.digest for la in base.layers]))
    assert kept.exists()
    (directory / ".tmp-half-written").write_text("{")
    earlier = directory / ("tree-" + "0" * 64 + ".json")  # a kept tree of an earlier minibuild (JSON rows)
    earlier.write_text('{"version":1,"layers":[],"rows":[]}')
    from minibuild.store.fsck import fsck

    report = fsck(st)
    assert [p.subject.rpartition("/")[2] for p in report.of_kind("stale-index")] == [earlier.name]
    assert report.ok, "debris, not damage"
    prune(st)
    assert not earlier.exists()
    assert kept.exists(), "the base is still stored: its tree is kept"
    assert not (directory / ".tmp-half-written").exists()
    st.untag("layered/top")
    st.untag("layered/base")
    st.cache.clear()
    gone = [la.digest for la in base.layers if la.digest not in {x.digest for x in st.resolve("busybox").layers}]
    assert gone
    prune(st)
    assert not kept.exists(), "its own layers are gone, and with them its folded tree"
    left = {p.name for p in directory.iterdir()}
    assert not {f"sha256-{d.hex}.json" for d in gone} & left
    assert all(st.blobs.has(Digest("sha256:" + n.removesuffix(".json").partition("-")[2]))
               for n in left if not n.startswith("tree-")), left


def test_fsck_checks_the_kept_headers_and_trees_against_their_blobs(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from minibuild.engine.layertree import tree_matches
    from minibuild.store.fsck import fsck

    monkeypatch.setenv("MINIBUILD_LAYERED_ROOT", "1")
    ctx = write_context(tmp_path / "ctx", {})
    run_build(ctx, tmp_path / "store", BASE, executor="emulate", tags=["layered/base"])
    run_build(ctx, tmp_path / "store", "FROM layered/base\nRUN cat /data/keep/a > /x\n", executor="emulate")
    st = Store.open(tmp_path / "store")
    assert fsck(st, tree_check=tree_matches).ok
    directory = st.meta_dir / INDEX_DIR
    image = st.resolve("layered/base")
    tree = tree_path(directory, chain_key([la.digest for la in image.layers]))
    kept = TreeFile.of_bytes(tree.read_bytes())
    rows = list(kept.rows())
    row = next(r for r in rows if r[0] == "data/keep/a")
    row[2] = 0o4777  # well formed, but not what the layers say
    tree.write_bytes(encode_tree(kept.layers, rows))
    header = next(p for p in directory.iterdir() if not p.name.startswith("tree-"))
    hraw = json.loads(header.read_text())
    hraw["entries"][0][3] = 4242
    header.write_text(json.dumps(hraw))
    report = fsck(st, tree_check=tree_matches)
    bad = {p.subject.rpartition("/")[2] for p in report.of_kind("bad-layer-index")}
    assert bad == {tree.name, header.name}, report.problems
    assert not report.ok
    assert fsck(st, repair=True, tree_check=tree_matches).of_kind("bad-layer-index")
    assert not tree.exists() and not header.exists()
    assert fsck(st, tree_check=tree_matches).ok


CHROOT_SCRIPTS = [
    "RUN echo one > /one && rm -rf /data/gone /links/two && mkdir -p /data/new && echo n > /data/new/f",
    "RUN rm -rf /data && mkdir /data && echo fresh > /data/only",  # an opaque directory
    "RUN echo more >> /links/one && chmod 600 /data/keep/a && ln -s /one /data/sym",
    "RUN cat /data/keep/a > /read-only-seen && touch -d @86400 /data/keep/a",
    "RUN mv /deep /moved && mkdir -p /tmp/x && echo t > /tmp/x/y",
    "RUN : > /data/keep/a",  # truncated in place: same path, new content
]

CHROOT_BASE = """\
FROM scratch
COPY rootfs/ /
RUN mkdir -p /data/keep /data/gone /links /deep/a/b && echo keep > /data/keep/a && echo g > /data/gone/b \\
 && echo shared > /links/one && ln /links/one /links/two && echo d > /deep/a/b/c
"""


@pytest.mark.parametrize("script", CHROOT_SCRIPTS)
def test_chroot_runs_on_an_overlay_give_the_layers_of_a_diffed_tree(tmp_path: Path, script: str,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    busybox_rootfs: Path) -> None:
    import shutil

    from minibuild.executors.chroot import overlay_problem, platform_problem
    from tests.support import require

    require(platform_problem() is None, f"the chroot executor cannot run here: {platform_problem()}")
    require(overlay_problem() is None, f"no overlay mount here: {overlay_problem()}")
    ctx = tmp_path / "ctx"
    shutil.copytree(busybox_rootfs, ctx / "rootfs", symlinks=True)
    store = tmp_path / "store"
    base = run_build(ctx, store, CHROOT_BASE, executor="chroot", tags=["bb/base"])
    got = []
    for overlay in ("1", "0"):
        monkeypatch.setenv("MINIBUILD_OVERLAY_RUN", overlay)
        result = run_build(ctx, store, "FROM bb/base\n" + script + "\nRUN cat /one /data/only 2>/dev/null; true\n",
                           executor="chroot", no_cache=True)
        assert len(result.image.layers) > len(base.image.layers), "the RUN changed something"
        got.append(image_files(store, result))
    # the same files; the layers may differ where a diff of the tree sees more than the upper directory holds (a
    # hard link removed: the tree's diff stores the other name again, as its link count changed; Docker's overlay2
    # layer, like this upper directory, does not)
    assert got[0] == got[1]


STAGE_SCRIPTS = [  # after a base whose layers hold whiteouts and opaque directories (unpacked: 0:0 devices, xattrs)
    # (no link counts: a merged directory's is 1 on the overlay, as under Docker's overlay2, and a file keeps the
    # count its lower layer gave it)
    "RUN stat -c '%A %u %g %s %Y %n' /data /data/* /data/keep/* /links/* /one > /seen && cat /data/keep/a "
    "/links/one /one >> /seen; test ! -e /data/gone && echo gone-stays-gone >> /seen; find / -xdev | sort >> /seen",
    "RUN echo changed > /data/only && rm -rf /deep && rm /links/one && mkdir -p /data/keep/n && echo z > /data/keep/n/z",
]


@pytest.mark.parametrize("script", STAGE_SCRIPTS)
def test_a_mounted_chroot_stage_gives_the_files_of_a_filled_one(tmp_path: Path, script: str,
                                                               monkeypatch: pytest.MonkeyPatch,
                                                               busybox_rootfs: Path) -> None:
    """As root the stage's tree is an overlay of its unpacked layers (MINIBUILD_STAGE_MOUNT=1), else a copy of
    every file: the same image either way, and only the first unpacks into the store."""
    import os
    import shutil

    from minibuild.executors.chroot import overlay_problem, platform_problem
    from minibuild.store.unpacked import unpacked_root
    from tests.support import require

    require(platform_problem() is None, f"the chroot executor cannot run here: {platform_problem()}")
    require(overlay_problem() is None, f"no overlay mount here: {overlay_problem()}")
    require(os.geteuid() == 0, "stage roots are mounted only as root")
    ctx = tmp_path / "ctx"
    shutil.copytree(busybox_rootfs, ctx / "rootfs", symlinks=True)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    got = []
    for mount in ("1", "0"):
        monkeypatch.setenv("MINIBUILD_STAGE_MOUNT", mount)
        store = tmp_path / f"store{mount}"
        base = CHROOT_BASE + CHROOT_SCRIPTS[0] + "\n" + CHROOT_SCRIPTS[1] + "\n"
        base_layers = run_build(ctx, store, base, executor="chroot", tags=["bb/base"]).image.layers
        result = run_build(ctx, store, "FROM bb/base\n" + script + "\nRUN cat /seen /data/only 2>/dev/null; true\n",
                           executor="chroot")
        folders = sorted(p.name for p in unpacked_root(Store(store)).iterdir()) if unpacked_root(
            Store(store)).exists() else []
        assert folders == (sorted(la.digest.hex for la in base_layers) if mount == "1" else [])  # each base layer once
        got.append((image_files(store, result), result.image.digest))
    assert got[0] == got[1]
