"""The nginx configuration reader behind the stand-in nginx (values by hand from nginx's documentation)."""

from __future__ import annotations

import pytest

from minibuild.errors import ConfigError
from minibuild.run.nginxconf import load, static_servers

MAIN = "events {}\nhttp {\n  include /etc/nginx/mime.types;\n  include /etc/nginx/conf.d/*.conf;\n}\n"


def tree(files: dict[str, str]):  # type: ignore[no-untyped-def]
    def read(p: str) -> str | None:
        return files.get(p)

    def listdir(d: str) -> list[str]:
        return [p.rsplit("/", 1)[1] for p in files if p.rsplit("/", 1)[0] == d]

    return load("/etc/nginx/nginx.conf", read, listdir)


def test_servers_from_included_conf_d_files() -> None:
    files = {"/etc/nginx/nginx.conf": MAIN, "/etc/nginx/mime.types": "types { text/html html; }",
             "/etc/nginx/conf.d/a.conf": "server { listen 8080; listen [::]:8080; root /srv/a;\n"
                                         "  location / { index home.html; try_files $uri /home.html; } }",
             "/etc/nginx/conf.d/b.conf": "server { listen 127.0.0.1:81 default_server; location / { root html; } }",
             "/etc/nginx/conf.d/c.txt": "not a conf"}
    a, b = static_servers(tree(files))
    assert (a.ports, a.root, a.index, a.try_files) == ((8080,), "/srv/a", ("home.html",), ("$uri", "/home.html"))
    assert (b.ports, b.root, b.index) == ((81,), "/etc/nginx/html", ("index.html",))  # relative to the prefix


def test_quotes_comments_and_a_missing_listen() -> None:
    files = {"/etc/nginx/nginx.conf": 'http { # comment ;\n server { root "/srv/my site"; } }'}
    (s,) = static_servers(tree(files))
    assert (s.ports, s.root) == ((80,), "/srv/my site")


@pytest.mark.parametrize("text,where", [("http { server { root /x; }", "unexpected end of file"),
                                        ("http { root /x }", "unexpected \"}\""),
                                        ("http { include /nope.conf; }", "No such file")])
def test_errors(text: str, where: str) -> None:
    with pytest.raises(ConfigError, match=where):
        tree({"/etc/nginx/nginx.conf": text})
