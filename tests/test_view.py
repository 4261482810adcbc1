"""ImageView: merged filesystem from layer headers (whiteouts, opaque dirs, symlinked parents, hardlinks),
content on demand, config view, per-layer changes, materialize, minibuild.load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import minibuild
from minibuild.errors import ConfigError
from minibuild.oci.archive import save_image_tar
from minibuild.store import Store
from minibuild.store.tarlayer import opaque, whiteout
from minibuild.view import ImageView, go_mode_string
from tests.structure.imagekit import d, f, hl, ln, make_image


@pytest.fixture()
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


def view_of(store: Store, layers, **kw) -> ImageView:  # type: ignore[no-untyped-def]
    return ImageView(store, make_image(store, layers, **kw))


def test_single_layer_metadata_and_content(store: Store) -> None:
    v = view_of(store, [[d("etc"), f("etc/passwd", "root:x:0:0\n", uid=0), f("app/run", "#!/bin/sh\n", 0o4755, 10, 20)]])
    p = v.files["/etc/passwd"]
    assert (p.type, p.mode, p.size, p.layer) == ("file", 0o644, 11, 0)
    assert p.read() == b"root:x:0:0\n"
    assert v.files["etc/passwd"] is p  # relative lookups work too
    run = v.files["/app/run"]
    assert (run.uid, run.gid, run.mode) == (10, 20, 0o4755)
    assert run.permissions == "urwxr-xr-x"  # Go's FileMode.String puts setuid as a leading 'u'
    assert v.files["/app"].type == "dir" and v.files["/app"].permissions == "drwxr-xr-x"
    assert "/" in v.files and v.files["/"].is_dir
    assert "/nope" not in v.files
    assert list(v.files) == sorted(v.files)


def test_upper_layer_replaces_file(store: Store) -> None:
    v = view_of(store, [[f("a.txt", "one")], [f("a.txt", "two", 0o600)]])
    assert v.files["/a.txt"].read() == b"two"
    assert v.files["/a.txt"].layer == 1 and v.files["/a.txt"].mode == 0o600


def test_whiteout_hides_lower_file_and_subtree(store: Store) -> None:
    v = view_of(store, [[f("keep"), f("gone"), f("dir/x"), f("dir/sub/y")], [whiteout("gone"), whiteout("dir")]])
    assert "/keep" in v.files
    assert "/gone" not in v.files
    assert not any(p.startswith("/dir") for p in v.files)
    assert v.layers[1].removed == ("/gone", "/dir") or set(v.layers[1].removed) == {"/gone", "/dir"}
    assert set(v.layers[1].whiteouts) == {"/gone", "/dir"}
    assert v.layers[1].added == ()


def test_whiteout_of_missing_path_removes_nothing(store: Store) -> None:
    v = view_of(store, [[f("a")], [whiteout("b")]])
    assert v.layers[1].removed == () and v.layers[1].whiteouts == ("/b",)
    assert "/a" in v.files


def test_opaque_dir_hides_lower_children_keeps_own(store: Store) -> None:
    v = view_of(store, [[f("d/old1"), f("d/sub/old2"), f("other")], [opaque("d"), f("d/new")]])
    assert sorted(p for p in v.files if p.startswith("/d/")) == ["/d/new"]
    assert "/other" in v.files
    assert v.layers[1].opaque_dirs == ("/d",)
    assert set(v.layers[1].removed) == {"/d/old1", "/d/sub"}


def test_file_replaced_by_dir_and_back(store: Store) -> None:
    v = view_of(store, [[f("x", "file")], [f("x/inner", "in")], [f("x", "again")]])
    assert v.files["/x"].type == "file" and v.files["/x"].read() == b"again"
    assert "/x/inner" not in v.files


def _raw_layer(store: Store, members: list[tuple[str, bytes]]):  # type: ignore[no-untyped-def]
    """A layer written with tarfile, without parent directory entries (as some tools write them)."""
    import io
    import tarfile

    from minibuild.digest import Digest
    from minibuild.oci.image import Layer
    from minibuild.oci.model import MEDIA_OCI_LAYER, Descriptor

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    digest = store.blobs.put_bytes(raw)
    return Layer(descriptor=Descriptor(media_type=MEDIA_OCI_LAYER, digest=digest, size=len(raw)),
                 diff_id=Digest.of_bytes(raw))


def test_entry_under_symlinked_parent_lands_at_target(store: Store, tmp_path: Path) -> None:
    base = make_image(store, [[d("usr/lib"), ln("lib", "usr/lib")]])
    image = base.append_layer(_raw_layer(store, [("lib/libc.so", b"elf")]))
    store.put_image(image)
    v = ImageView(store, image)
    assert v.files["/usr/lib/libc.so"].read() == b"elf"
    assert "/lib/libc.so" not in v.files  # "lib" stays a symlink
    assert v.files["/lib"].is_symlink and v.files["/lib"].permissions == "Lrwxrwxrwx"
    assert v.stat("/lib/libc.so") is not None and v.read("/lib/libc.so") == b"elf"
    out = tmp_path / "root"
    v.materialize(out)  # the extraction agrees
    assert (out / "lib").is_symlink() and (out / "usr/lib/libc.so").read_bytes() == b"elf"


def test_dir_entry_replaces_symlink(store: Store) -> None:
    v = view_of(store, [[d("usr/lib"), ln("lib", "usr/lib")], [f("lib/libc.so", "elf")]])
    assert v.files["/lib"].is_dir and v.files["/lib/libc.so"].read() == b"elf"


def test_hardlink_shares_content_and_metadata(store: Store) -> None:
    v = view_of(store, [[f("bin/busybox", "BB", 0o755), hl("bin/sh", "bin/busybox")]])
    sh = v.files["/bin/sh"]
    assert sh.type == "file" and sh.hardlink_to == "/bin/busybox"
    assert sh.read() == b"BB" and sh.mode == 0o755 and sh.size == 2


def test_hardlink_survives_whiteout_of_its_target(store: Store) -> None:
    v = view_of(store, [[f("a", "data"), hl("b", "a")], [whiteout("a")]])
    assert "/a" not in v.files and v.files["/b"].read() == b"data"


def test_symlink_follow_and_read(store: Store) -> None:
    v = view_of(store, [[f("etc/real.conf", "x=1"), ln("etc/link.conf", "real.conf"), ln("abs", "/etc/real.conf")]])
    assert v.read("/etc/link.conf") == b"x=1"
    assert v.read("/abs") == b"x=1"
    assert v.realpath("/abs") == "/etc/real.conf"
    assert v.stat("/abs").is_symlink  # type: ignore[union-attr]
    assert v.stat("/abs", follow_symlinks=True).path == "/etc/real.conf"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="not a file"):
        v.files["/etc"].read()
    with pytest.raises(ConfigError, match="no such file"):
        v.read("/etc/missing")


def test_content_read_on_demand_from_the_right_layer(store: Store) -> None:
    big = os.urandom(200_000)
    v = view_of(store, [[f("big.bin", big)], [f("small", "s")]], compression="none")
    assert v.files["/big.bin"].read() == big
    assert v.files["/big.bin"].layer == 0 and v.files["/small"].layer == 1


def test_listdir_and_nearest(store: Store) -> None:
    v = view_of(store, [[f("etc/nginx/nginx.conf"), f("etc/nginx/mime.types"), f("etc/hosts")]])
    assert v.listdir("/etc") == ("hosts", "nginx")
    assert "/etc/nginx/nginx.conf" in v.files.nearest("/etc/nginx/ngin.conf")
    with pytest.raises(ConfigError):
        v.listdir("/etc/hosts")


def test_config_view(store: Store) -> None:
    v = view_of(store, [[f("a")]], env=["PATH=/bin", "A=1=2"], cmd=[], entrypoint=None, working_dir="/app",
                user="node", labels={"k": "v"}, exposed_ports=["80/tcp", "53/udp"], volumes=["/data"],
                stop_signal="SIGQUIT", healthcheck={"Test": ["CMD", "true"], "Interval": 1_000_000_000})
    c = v.config
    assert dict(c.env) == {"PATH": "/bin", "A": "1=2"}
    assert c.cmd == () and c.entrypoint is None  # empty list and unset stay distinct
    assert (c.workdir, c.user, dict(c.labels)) == ("/app", "node", {"k": "v"})
    assert c.exposed_ports == ("53/udp", "80/tcp") and c.volumes == ("/data",)
    assert c.stop_signal == "SIGQUIT" and c.healthcheck is not None and c.healthcheck.test == ("CMD", "true")
    plain = view_of(store, [[f("b")]]).config
    assert plain.cmd is None and plain.workdir == "" and plain.user == ""


def test_layers_record_history_and_changes(store: Store) -> None:
    v = view_of(store, [[f("app/a")], [f("app/b"), whiteout("app/a")]],
                created_by=["COPY a /app/ # buildkit", "/bin/sh -c #(nop) RUN make"])
    l0, l1 = v.layers
    assert l0.created_by == "COPY a /app/ # buildkit" and l0.instruction == "COPY a /app/"
    assert l1.instruction == "RUN make"
    assert set(l0.added) == {"/app", "/app/a"} and set(l1.added) == {"/app", "/app/b"}
    assert l1.removed == ("/app/a",)
    assert l0.diff_id == v.image.layers[0].diff_id and l0.size == v.image.layers[0].size


def test_materialize_matches_view(store: Store, tmp_path: Path) -> None:
    v = view_of(store, [[f("keep", "k"), f("gone"), d("d"), f("d/old")], [whiteout("gone"), opaque("d"), f("d/new", "n")]])
    out = tmp_path / "root"
    v.materialize(out)
    on_disk = sorted("/" + str(p.relative_to(out)) for p in out.rglob("*"))
    assert on_disk == sorted(p for p in v.files if p != "/")
    assert (out / "d" / "new").read_bytes() == b"n"
    with pytest.raises(ConfigError, match="not empty"):
        v.materialize(out)


def test_load_tarball_into_temporary_store(store: Store, tmp_path: Path) -> None:
    image = make_image(store, [[f("hello.txt", "hi")]], cmd=["cat", "/hello.txt"])
    tar = tmp_path / "img.tar"
    save_image_tar(store.blobs, image, ["example.com/hello:1"], tar)
    v = minibuild.load(tar)
    assert v.read("/hello.txt") == b"hi"
    assert v.config.cmd == ("cat", "/hello.txt")
    assert v.names == ("example.com/hello:1",)
    other = Store.open(tmp_path / "s2")
    v2 = minibuild.load(tar, store=other, name="example.com/hello:1")
    assert other.resolve("example.com/hello:1").digest == v2.digest
    with pytest.raises(ConfigError, match="no image named"):
        minibuild.load(tar, name="other:1")


def test_go_mode_string_forms() -> None:
    from minibuild.view import go_file_mode

    assert go_mode_string(go_file_mode("file", 0o644)) == "-rw-r--r--"
    assert go_mode_string(go_file_mode("dir", 0o1777)) == "dtrwxrwxrwx"
    assert go_mode_string(go_file_mode("dir", 0o2755)) == "dgrwxr-xr-x"
    assert go_mode_string(go_file_mode("char", 0o666)) == "Dcrw-rw-rw-"
    assert go_mode_string(go_file_mode("block", 0o660)) == "Drw-rw----"
    assert go_mode_string(go_file_mode("fifo", 0o644)) == "prw-r--r--"
    assert go_mode_string(go_file_mode("file", 0)) == "----------"
