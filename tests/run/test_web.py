"""What the stand-in servers answer (web.lookup), by hand from nginx's and http.server's documented behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from minibuild.run.web import Site, lookup
from minibuild.sh.fs import RootFS


@pytest.fixture
def fs(tmp_path: Path) -> RootFS:
    root = tmp_path / "root"
    html = root / "usr" / "share" / "nginx" / "html"
    (html / "docs").mkdir(parents=True)
    (html / "empty").mkdir()
    (html / "index.html").write_text("home\n")
    (html / "docs" / "index.html").write_text("docs\n")
    (html / "app.js").write_text("js\n")
    (root / "etc").mkdir()
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("/etc/passwd", html / "pw")
    os.symlink("../../../../../../../../../../etc/hostname", html / "host")
    return RootFS(root=root)


NGINX = Site(root="/usr/share/nginx/html", server="nginx/1.27.2", types={"html": "text/html",
                                                                         "js": "application/javascript"},
             default_type="application/octet-stream")


def test_nginx_static_rules(fs: RootFS) -> None:
    r = lookup(NGINX, fs, "/")
    assert (r.status, Path(r.file).read_text(), r.content_type) == (200, "home\n", "text/html")
    assert lookup(NGINX, fs, "/app.js").content_type == "application/javascript"
    r = lookup(NGINX, fs, "/docs")
    assert (r.status, r.location) == (301, "/docs/")  # a directory without its slash
    assert Path(lookup(NGINX, fs, "/docs/?q=1").file).read_text() == "docs\n"
    assert lookup(NGINX, fs, "/empty/").status == 403  # a directory without index, autoindex off
    assert lookup(NGINX, fs, "/nope").status == 404
    assert b"<center><h1>404 Not Found</h1></center>" in lookup(NGINX, fs, "/nope").body
    assert lookup(NGINX, fs, "/../etc/passwd").status == 400
    assert lookup(NGINX, fs, "/docs/../app.js").status == 200  # folded inside the root: fine


def test_symlinks_resolve_inside_the_root(fs: RootFS) -> None:
    assert Path(lookup(NGINX, fs, "/pw").file).read_text() == "root:x:0:0::/root:/bin/sh\n"  # the image's passwd
    assert lookup(NGINX, fs, "/host").status == 404  # /etc/hostname of the image: absent; the host's never read


def test_try_files(fs: RootFS) -> None:
    spa = Site(root=NGINX.root, try_files=("$uri", "$uri/", "/index.html"))
    assert Path(lookup(spa, fs, "/a/route").file).read_text() == "home\n"
    assert Path(lookup(spa, fs, "/docs").file).read_text() == "docs\n"  # $uri/ matched: its index
    strict = Site(root=NGINX.root, try_files=("$uri", "=404"))
    assert lookup(strict, fs, "/a/route").status == 404


def test_python_http_server_rules(fs: RootFS) -> None:
    py = Site(root="/usr/share/nginx/html", style="python", index=("index.html", "index.htm"))
    r = lookup(py, fs, "/empty/")
    assert r.status == 200 and b"<title>Directory listing for /empty/</title>" in r.body
    assert lookup(py, fs, "/app.js").content_type in ("text/javascript", "application/javascript")
    assert lookup(py, fs, "/nope").status == 404


def test_express_rules(fs: RootFS) -> None:
    ex = Site(root="/usr/share/nginx/html", style="express")
    assert b"<pre>Cannot GET /nope</pre>" in lookup(ex, fs, "/nope").body
    assert lookup(Site(root="/", style="express", body=b"hi"), fs, "/any").body == b"hi"
