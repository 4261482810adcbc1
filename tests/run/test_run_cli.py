"""`minibuild run` as a user runs it: the built lesson example serves its page over HTTP until SIGINT, docker run's
options (-e, --entrypoint, CMD), bad input in one line, and servers that stay inside the image root."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from tests.cli.support import mb
from tests.run.support import Running, free_port, start

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the README's lesson image (examples/node-nginx) as my-app."""
    st = tmp_path_factory.mktemp("run-store")
    res = mb(st, "build", "-t", "my-app", str(REPO / "examples" / "node-nginx"))
    assert res.returncode == 0, res.stderr
    return st


def test_the_built_example_serves_its_index_html_until_sigint(store: Path, tmp_path: Path,
                                                               running: list[Running]) -> None:
    res = mb(store, "cp", "my-app:/usr/share/nginx/html/index.html", str(tmp_path / "index.html"))
    assert res.returncode == 0, res.stderr
    expected = (tmp_path / "index.html").read_bytes()
    assert b"<script" in expected  # the built page (vite's output), not the nginx base's welcome page
    port = free_port()
    r = start(running, store, "-p", f"{port}:80", "my-app")
    status, headers, body = r.get(f"http://127.0.0.1:{port}/")
    assert (status, body) == (200, expected)
    assert headers["Server"] == "nginx/1.27.2" and headers["Content-Type"] == "text/html"
    # the example's nginx.conf: try_files $uri $uri/ /index.html (a single-page app's routes answer index.html)
    assert r.get(f"http://127.0.0.1:{port}/some/client/route")[::2] == (200, expected)
    code, out, err = r.stop(signal.SIGINT)
    assert code == 0, err  # nginx exits 0 on SIGINT (fast shutdown), so docker run does
    assert b"Traceback" not in err
    assert b"/docker-entrypoint.sh: Configuration complete; ready for start up" in out
    assert b'"GET / HTTP/1.1" 200 ' in out  # nginx's access log goes to the container's stdout


def test_sigterm_stops_it_with_status_0(store: Path, running: list[Running]) -> None:
    port = free_port()
    r = start(running, store, "-p", f"127.0.0.1:{port}:80", "my-app")
    assert r.get(f"http://127.0.0.1:{port}/index.html")[0] == 200
    assert r.stop(signal.SIGTERM)[0] == 0


def test_env_cmd_and_exit_status(store: Path) -> None:
    res = mb(store, "run", "-e", "GREETING=hello", "-e", "NGINX_VERSION=9.9", "my-app", "sh", "-c",
             'echo "$GREETING $NGINX_VERSION $PWD"; exit 7')
    assert (res.returncode, res.stdout) == (7, "hello 9.9 /\n"), res.stderr


def test_cmd_after_the_image_replaces_cmd_and_keeps_the_entrypoint(store: Path) -> None:
    # /docker-entrypoint.sh prints its "Configuration complete" line only when the command is nginx
    res = mb(store, "run", "my-app", "echo", "hi")
    assert (res.returncode, res.stdout) == (0, "hi\n"), res.stderr


def test_entrypoint_replaces_the_entrypoint_and_drops_the_image_cmd(store: Path) -> None:
    res = mb(store, "run", "--entrypoint", "echo", "my-app")
    assert (res.returncode, res.stdout) == (0, "\n"), res.stderr  # docker run --entrypoint echo nginx: one empty line
    res = mb(store, "run", "--entrypoint", "nginx", "my-app", "-v")
    assert (res.returncode, res.stderr) == (0, "nginx version: nginx/1.27.2\n")


def test_the_stored_image_is_never_changed(store: Path) -> None:
    before = mb(store, "images").stdout
    res = mb(store, "run", "my-app", "sh", "-c", "rm /usr/share/nginx/html/index.html && echo x > /new")
    assert res.returncode == 0, res.stderr
    res = mb(store, "run", "my-app", "ls", "/usr/share/nginx/html/index.html", "/new")
    assert res.returncode != 0 and "index.html" in res.stdout and "/new" in res.stderr
    assert mb(store, "images").stdout == before


def test_unknown_image_is_one_line_status_125(store: Path) -> None:
    res = mb(store, "run", "no-such-image")
    assert res.returncode == 125
    assert res.stderr.count("\n") == 1 and "Unable to find image 'no-such-image'" in res.stderr


def test_unknown_command_is_status_127(store: Path) -> None:
    res = mb(store, "run", "--entrypoint", "/no/such/program", "my-app")
    assert res.returncode == 127
    assert res.stderr == 'error: exec: "/no/such/program": no such file or directory\n'


def test_a_port_already_in_use_is_one_line_and_nothing_runs(store: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = mb(store, "run", "-p", f"{port}:80", "my-app")
    assert res.returncode == 125
    assert res.stderr == f"error: cannot publish 127.0.0.1:{port}: port is already allocated\n"
    assert res.stdout == ""  # the entrypoint never ran


def test_bad_publish_is_one_line(store: Path) -> None:
    res = mb(store, "run", "-p", "8080:http", "my-app")
    assert res.returncode == 125 and res.stderr.count("\n") == 1 and "-p 8080:http" in res.stderr


def test_a_hostile_nginx_root_and_symlinks_stay_inside_the_image(tmp_path: Path, running: list[Running]) -> None:
    secret = tmp_path / "host-secret"
    secret.mkdir()
    (secret / "secret.txt").write_text("HOST SECRET\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    climb = "../" * 30
    (ctx / "default.conf").write_text(
        "server {\n  listen 80;\n"
        f"  location / {{ root {climb}{str(secret).lstrip('/')}; }}\n"
        "  location /img/ { root ../../..; }\n}\n")
    (ctx / "Dockerfile").write_text(
        "FROM nginx:alpine\nCOPY default.conf /etc/nginx/conf.d/default.conf\n"
        f"RUN mkdir -p {secret} && echo IMAGE COPY > {secret}/inside.txt"
        f" && ln -s {climb}{str(secret).lstrip('/')}/secret.txt {secret}/leak.txt"
        f" && ln -s /etc/passwd {secret}/passwd\n")
    st = tmp_path / "store"
    res = mb(st, "build", "-t", "hostile", str(ctx))
    assert res.returncode == 0, res.stderr
    image_passwd = tmp_path / "passwd"
    assert mb(st, "cp", "hostile:/etc/passwd", str(image_passwd)).returncode == 0
    port = free_port()
    r = start(running, st, "-p", f"{port}:80", "hostile")
    base = f"http://127.0.0.1:{port}"
    # the root climbs out of the image: it stops at the image's / (as under chroot), where only the copy lives
    assert r.get(f"{base}/inside.txt")[::2] == (200, b"IMAGE COPY\n")
    assert r.get(f"{base}/secret.txt")[0] == 404
    assert r.get(f"{base}/leak.txt")[0] == 404  # a symlink climbing out ends inside the image too
    assert r.get(f"{base}/passwd")[::2] == (200, image_passwd.read_bytes())  # the image's, not the host's
    assert r.get(f"{base}/%2e%2e/%2e%2e/etc/passwd")[0] == 400  # above / is a bad request, as nginx answers
    code, out, err = r.stop()
    assert code == 0 and b"HOST SECRET" not in out + err


def test_python_http_server_serves_the_working_directory(tmp_path: Path, running: list[Running]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "hello.txt").write_text("hello from the image\n")
    (ctx / "Dockerfile").write_text('FROM python:3.12-slim\nWORKDIR /srv\nCOPY hello.txt .\n'
                                    'CMD ["python3", "-m", "http.server", "8000"]\n')
    st = tmp_path / "store"
    assert mb(st, "build", "-t", "py", str(ctx)).returncode == 0
    port = free_port()
    r = start(running, st, "-p", f"{port}:8000", "py")
    status, headers, body = r.get(f"http://127.0.0.1:{port}/hello.txt")
    assert (status, body, headers["Content-Type"]) == (200, b"hello from the image\n", "text/plain")
    status, _, listing = r.get(f"http://127.0.0.1:{port}/")
    assert status == 200 and b'<a href="hello.txt">hello.txt</a>' in listing
    code, out, err = r.stop(signal.SIGINT)
    assert code == 0, err  # http.server catches KeyboardInterrupt and exits 0
    assert out == b"Serving HTTP on 0.0.0.0 port 8000 (http://0.0.0.0:8000/) ...\n\nKeyboard interrupt received, exiting.\n"


def test_node_server_serves_its_static_directory_on_env_port(tmp_path: Path, running: list[Running]) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "public").mkdir(parents=True)
    (ctx / "public" / "index.html").write_text("<h1>node app</h1>\n")
    (ctx / "server.js").write_text(
        "const express = require('express');\nconst path = require('path');\nconst app = express();\n"
        "app.use(express.static(path.join(__dirname, 'public')));\n"
        "const PORT = process.env.PORT || 3000;\napp.listen(PORT, () => console.log('listening'));\n")
    (ctx / "Dockerfile").write_text('FROM node:22-alpine\nWORKDIR /app\nCOPY . .\nENV PORT=4000\n'
                                    'CMD ["node", "server.js"]\n')
    st = tmp_path / "store"
    assert mb(st, "build", "-t", "nodeapp", str(ctx)).returncode == 0
    port = free_port()
    r = start(running, st, "-p", f"{port}:4000", "nodeapp")
    status, headers, body = r.get(f"http://127.0.0.1:{port}/")
    assert (status, body, headers["X-Powered-By"]) == (200, b"<h1>node app</h1>\n", "Express")
    status, _, body = r.get(f"http://127.0.0.1:{port}/nope")
    assert status == 404 and b"Cannot GET /nope" in body
    code, out, _ = r.stop(signal.SIGINT)
    assert code == 130 and out == b"listening\n"  # node has no SIGINT handler: killed by the signal


def test_the_go_scratch_program_prints_what_it_would(tmp_path: Path) -> None:
    st = tmp_path / "store"
    assert mb(st, "build", "-t", "goapp", str(REPO / "examples" / "go-scratch")).returncode == 0
    res = mb(st, "run", "goapp")
    main_go = (REPO / "examples" / "go-scratch" / "main.go").read_text()
    assert res.returncode == 0, res.stderr
    for line in res.stdout.splitlines():
        assert f'"{line}' in main_go  # each line is one of the program's fmt.Print literals
    assert res.stdout.count("\n") >= 1


def _vite_app(tmp_path: Path, start_script: str) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "dist").mkdir(parents=True)
    (ctx / "dist" / "index.html").write_text("<p>built</p>\n")
    (ctx / "package.json").write_text('{\n  "name": "v",\n  "version": "1.0.0",\n  "scripts": {\n'
                                      f'    "start": "{start_script}"\n  }},\n  "devDependencies": {{\n'
                                      '    "vite": "^5.4.10"\n  }\n}\n')
    (ctx / "Dockerfile").write_text('FROM node:22-alpine\nWORKDIR /app\nCOPY package.json .\nRUN npm install\n'
                                    'COPY dist dist\nCMD ["npm", "start"]\n')
    st = tmp_path / "store"
    res = mb(st, "build", "-t", "viteapp", str(ctx))
    assert res.returncode == 0, res.stderr
    return st


def test_npm_start_vite_preview_serves_dist_as_a_single_page_app(tmp_path: Path, running: list[Running]) -> None:
    st = _vite_app(tmp_path, "vite preview --host --port 3000")
    port = free_port()
    r = start(running, st, "-p", f"{port}:3000", "viteapp")
    assert r.get(f"http://127.0.0.1:{port}/")[::2] == (200, b"<p>built</p>\n")
    assert r.get(f"http://127.0.0.1:{port}/a/route")[::2] == (200, b"<p>built</p>\n")
    code, out, _ = r.stop(signal.SIGINT)
    assert code == 130 and b"> vite preview --host --port 3000" in out


def test_vite_preview_without_host_is_unreachable_as_under_docker(tmp_path: Path, running: list[Running]) -> None:
    st = _vite_app(tmp_path, "vite preview --port 3000")
    port = free_port()
    r = start(running, st, "-p", f"{port}:3000", "viteapp")
    assert r.proc.stderr is not None
    line = r.proc.stderr.readline()
    assert b"listens on the container's own localhost only" in line, line
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.request("GET", "/")
        conn.getresponse()  # closed unanswered, as Docker's proxy does when nothing listens
    assert r.stop(signal.SIGINT)[0] == 130


def test_an_image_tarball_runs_too(store: Path, tmp_path: Path) -> None:
    tar = tmp_path / "app.tar"
    assert mb(store, "save", "my-app", "-o", str(tar)).returncode == 0
    res = mb(tmp_path / "empty-store", "run", str(tar), "cat", "/etc/nginx/conf.d/default.conf")
    assert res.returncode == 0, res.stderr
    assert res.stdout == (REPO / "examples" / "node-nginx" / "nginx.conf").read_text()
    res = mb(tmp_path / "empty-store", "run", str(tmp_path / "missing.tar"))
    assert res.returncode == 125 and res.stderr.count("\n") == 1


def test_shell_form_entrypoint_workdir_user_env(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN adduser -D -u 1234 app\nENV GREETING=hi\nWORKDIR /srv/app\nUSER app\n"
        'ENTRYPOINT echo "$GREETING from $(pwd) as $(id -un):$(id -u) home $HOME, args: $0 $*"\nCMD ["ignored"]\n')
    st = tmp_path / "store"
    assert mb(st, "build", "-t", "sf", str(ctx)).returncode == 0
    # docker run: a shell-form ENTRYPOINT is /bin/sh -c '...'; CMD and run arguments become $0 $1 ... of it
    res = mb(st, "run", "sf")
    assert (res.returncode, res.stdout) == (0, "hi from /srv/app as app:1234 home /home/app, args: ignored \n"), \
        res.stderr
    res = mb(st, "run", "-e", "GREETING=hello", "-w", "/tmp", "-u", "0", "sf", "a", "b")
    assert res.stdout == "hello from /tmp as root:0 home /root, args: a b\n", res.stderr


def test_node_http_server_answers_the_string_it_sends(tmp_path: Path, running: list[Running]) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "server.js").write_text(
        "const http = require('http');\n"
        "http.createServer((req, res) => { res.end('hello from node'); }).listen(8080);\n")
    (ctx / "Dockerfile").write_text('FROM node:22-alpine\nWORKDIR /app\nCOPY server.js .\nCMD ["node", "server.js"]\n')
    st = tmp_path / "store"
    assert mb(st, "build", "-t", "rawnode", str(ctx)).returncode == 0
    port = free_port()
    r = start(running, st, "-p", f"{port}:8080", "rawnode")
    status, headers, body = r.get(f"http://127.0.0.1:{port}/anything")
    assert (status, body) == (200, b"hello from node") and "X-Powered-By" not in headers
    assert r.stop(signal.SIGTERM)[0] == 143  # killed by SIGTERM: node installs no handler


def test_stdin_only_with_interactive(store: Path) -> None:
    assert mb(store, "run", "-i", "my-app", "cat", stdin="piped in\n").stdout == "piped in\n"
    res = mb(store, "run", "my-app", "cat", stdin="piped in\n")
    assert (res.returncode, res.stdout) == (0, "")  # docker run without -i: the program's stdin is empty
