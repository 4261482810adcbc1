"""minibuild.testing: assert_file / assert_no_file / assert_env / assert_config on a real (scratch-based) build, and
the mode parsing and formatting they report with.  Expected values are written by hand."""

from __future__ import annotations

import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from minibuild import api
from minibuild.store import Store
from minibuild.testing import assert_config, assert_env, assert_file, assert_no_file, format_mode, parse_mode
from minibuild.view import ImageView

DOCKERFILE = """\
FROM scratch
COPY --chmod=0640 --chown=1000:2000 site/ /srv/site/
COPY --chmod=0755 run.sh /usr/local/bin/run
ENV APP_MODE=production APP_PORT=8080
LABEL org.opencontainers.image.title=demo
EXPOSE 8080 53/udp
VOLUME /data
WORKDIR /srv
USER 1000:2000
HEALTHCHECK CMD ["/usr/local/bin/run", "--check"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/run"]
CMD ["--serve"]
"""


@pytest.fixture(scope="module")
def view(tmp_path_factory: pytest.TempPathFactory) -> ImageView:
    ctx = tmp_path_factory.mktemp("ctx")
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "site").mkdir()
    (ctx / "site" / "index.html").write_text("<html>\n  <title>demo</title>\n  <p>hello, world</p>\n</html>\n")
    (ctx / "site" / "about.html").write_text("about\n")
    (ctx / "site" / "home.html").symlink_to("index.html")
    (ctx / "run.sh").write_text("#!/bin/sh\necho run\n")
    store = Store.open(tmp_path_factory.mktemp("store"))
    result = api.build(ctx, store=store, executor="emulate")
    return ImageView(store, result.image)


def _fails(call, *args, **kwargs) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(AssertionError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------- mode parsing/format
@pytest.mark.parametrize(("given", "expected"), [
    (0o644, (0o644, None)),
    ("644", (0o644, None)),
    ("0644", (0o644, None)),
    ("0o4755", (0o4755, None)),
    ("-rw-r--r--", (0o644, "file")),
    ("drwxr-xr-x", (0o755, "dir")),
    ("lrwxrwxrwx", (0o777, "symlink")),
    ("-rwsr-xr-x", (0o4755, "file")),
    ("-rwSr--r--", (0o4644, "file")),
    ("-rwxr-sr-x", (0o2755, "file")),
    ("drwxrwxrwt", (0o1777, "dir")),
    ("rwxr-x---", (0o750, "file")),
])
def test_parse_mode(given: int | str, expected: tuple[int, str | None]) -> None:
    assert parse_mode(given) == expected


@pytest.mark.parametrize("bad", ["rwz", "-rw-r--r-x-", "xrw-r--r--", "-rw-q--r--", 0o10000, -1])
def test_parse_mode_rejects(bad: int | str) -> None:
    with pytest.raises(ValueError):
        parse_mode(bad)


def test_parse_mode_rejects_non_modes() -> None:
    with pytest.raises(TypeError):
        parse_mode(True)
    with pytest.raises(TypeError):
        parse_mode(6.44)  # type: ignore[arg-type]


@pytest.mark.parametrize(("mode", "type_", "text"), [
    (0o644, "file", "-rw-r--r-- (0o644)"),
    (0o755, "dir", "drwxr-xr-x (0o755)"),
    (0o4755, "file", "-rwsr-xr-x (0o4755)"),
    (0o1777, "dir", "drwxrwxrwt (0o1777)"),
    (0o777, "symlink", "lrwxrwxrwx (0o777)"),
    (0, "file", "---------- (0o0)"),
])
def test_format_mode(mode: int, type_: str, text: str) -> None:
    assert format_mode(mode, type_) == text


# ------------------------------------------------------------------------------------------- assert_file
def test_assert_file_passes_and_returns_the_info(view: ImageView) -> None:
    info = assert_file(view, "/srv/site/index.html", type="file", mode=0o640, uid=1000, gid=2000,
                       contains=["<title>demo</title>", re.compile(r"hello,\s+world"), b"</html>"])
    assert (info.path, info.size) == ("/srv/site/index.html", 59)
    assert_file(view, "srv/site/index.html", mode="-rw-r-----")  # relative path, ls letters
    assert_file(view, "/srv/site", type="directory")
    assert_file(view, "/usr/local/bin/run", mode="755", contains="echo run")
    assert_file(view, "/srv/site/home.html", type="symlink", link_target="index.html", contains="hello")


def test_missing_file_lists_nearest_paths_and_the_parent(view: ImageView) -> None:
    msg = _fails(assert_file, view, "/srv/site/index.htm")
    lines = msg.splitlines()
    assert lines[0].startswith("/srv/site/index.htm: no such file or directory in image ")
    assert lines[1] == "nearest paths:"
    assert lines[2] == "  /srv/site/index.html"
    assert "/srv/site holds: about.html, home.html, index.html" in lines


def test_missing_file_under_missing_dirs_names_deepest_existing_ancestor(view: ImageView) -> None:
    msg = _fails(assert_file, view, "/srv/nope/deeper/x.txt")
    assert "/srv/nope/deeper/x.txt: no such file or directory" in msg
    assert "/srv holds: site" in msg


def test_wrong_mode_shows_both_modes(view: ImageView) -> None:
    msg = _fails(assert_file, view, "/srv/site/index.html", mode=0o644)
    assert "/srv/site/index.html has the wrong mode:" in msg
    assert "  expected: -rw-r--r-- (0o644)" in msg
    assert "  actual:   -rw-r----- (0o640)" in msg


def test_every_mismatch_is_reported_at_once(view: ImageView) -> None:
    msg = _fails(assert_file, view, "/usr/local/bin/run", type="dir", mode=0o700, uid=1, gid=2, contains="nope")
    assert "/usr/local/bin/run is a regular file, expected a directory" in msg
    assert "expected: -rwx------ (0o700)" in msg and "actual:   -rwxr-xr-x (0o755)" in msg
    assert "owned by uid 0, expected uid 1" in msg
    assert "owned by gid 0, expected gid 2" in msg
    assert "/usr/local/bin/run does not contain 'nope'" in msg
    # the closing summary says what the path is and which Dockerfile line wrote it
    assert msg.splitlines()[-1].endswith("written by layer 1: COPY --chmod=0755 run.sh /usr/local/bin/run")


def test_content_failure_shows_closest_line_and_excerpt(view: ImageView) -> None:
    msg = _fails(assert_file, view, "/srv/site/index.html", contains="<title>demo2</title>")
    assert "does not contain '<title>demo2</title>'" in msg
    assert "closest line: '<title>demo</title>'" in msg
    assert "  |   <p>hello, world</p>" in msg
    msg = _fails(assert_file, view, "/srv/site/index.html", contains=re.compile(r"goodbye"))
    assert "does not contain a match for /goodbye/" in msg


def test_type_from_mode_letters_and_link_checks(view: ImageView) -> None:
    assert "is a regular file, expected a directory" in _fails(assert_file, view, "/usr/local/bin/run",
                                                               mode="drwxr-xr-x")
    assert "points to 'index.html', expected 'about.html'" in _fails(
        assert_file, view, "/srv/site/home.html", link_target="about.html")
    assert "is a directory: no content to check" in _fails(assert_file, view, "/srv/site", contains="x")
    assert "not a symbolic link" in _fails(assert_file, view, "/srv/site/about.html", link_target="x")


def test_bad_arguments_are_errors_not_failures(view: ImageView) -> None:
    with pytest.raises(ValueError, match="unknown file type"):
        assert_file(view, "/srv", type="folder")
    with pytest.raises(TypeError, match="ImageView"):
        assert_file("not an image", "/srv")


# ------------------------------------------------------------------------------------------- assert_no_file
def test_assert_no_file(view: ImageView) -> None:
    assert_no_file(view, "/bin/sh")
    assert_no_file(view, "/srv/site/missing.html")
    msg = _fails(assert_no_file, view, "/srv/site/about.html")
    assert msg.startswith("/srv/site/about.html should not exist in image ")
    assert "a regular file (-rw-r----- (0o640), owner 1000:2000, 6 bytes), written by layer 0: COPY" in msg
    assert "a directory (drwxr-xr-x (0o755), owner 0:0, 1 entries)" in _fails(assert_no_file, view, "/usr/local/bin")


def test_label_of_a_wrapper_object_names_the_image(view: ImageView) -> None:
    wrapped = SimpleNamespace(view=view, label="my app (Dockerfile)")
    assert "no such file or directory in my app (Dockerfile)" in _fails(assert_file, wrapped, "/x")


# ------------------------------------------------------------------------------------------- env and config
def test_assert_env(view: ImageView) -> None:
    assert_env(view, APP_MODE="production", APP_PORT=re.compile(r"^\d+$"), MISSING=None)
    assert_env(view, {"APP_MODE": "production"})
    msg = _fails(assert_env, view, APP_MODE="development", APP_PROT="8080", APP_PORT=None)
    assert "APP_MODE='production', expected 'development'" in msg
    assert "APP_PROT is not set (did you mean APP_PORT='8080'?); expected '8080'" in msg
    assert "APP_PORT should be unset, but it is '8080'" in msg
    assert "the image's env:\n  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in msg
    assert "APP_PORT='8080' does not match /^9/" in _fails(assert_env, view, APP_PORT=re.compile("^9"))


def test_assert_config_passes(view: ImageView) -> None:
    assert_config(view, cmd=["--serve"], entrypoint=("/usr/local/bin/run",), workdir="/srv", user="1000:2000",
                  env={"APP_MODE": "production"}, labels={"org.opencontainers.image.title": "demo"},
                  exposed_ports=["53/udp", 8080], volumes=["/data"],
                  healthcheck=["CMD", "/usr/local/bin/run", "--check"], stop_signal="SIGTERM")


def test_assert_config_reports_each_mismatch(view: ImageView) -> None:
    msg = _fails(assert_config, view, cmd=None, entrypoint=["/app"], workdir="", user="root",
                 labels={"org.opencontainers.image.title": "other", "version": "1"},
                 exposed_ports=[8080], volumes=[], healthcheck=None, stop_signal="SIGKILL")
    lines = msg.splitlines()
    assert lines[0].startswith("config of image ") and lines[0].endswith(" does not match:")
    assert '  cmd is ["--serve"], expected unset' in lines
    assert '  entrypoint is ["/usr/local/bin/run"], expected ["/app"]' in lines
    assert "  workdir is '/srv', expected ''" in lines
    assert "  user is '1000:2000', expected 'root'" in lines
    assert "  stop signal is 'SIGTERM', expected 'SIGKILL'" in lines
    assert "  label org.opencontainers.image.title='demo', expected 'other'" in lines
    assert "  label version is not set; expected '1'" in lines
    assert "  exposed ports are ['53/udp', '8080/tcp'], expected ['8080/tcp'] (unexpected ['53/udp'])" in lines
    assert "  volumes are ['/data'], expected [] (unexpected ['/data'])" in lines
    assert '  healthcheck test is ["CMD", "/usr/local/bin/run", "--check"], expected unset' in lines


def test_assert_config_rejects_shell_form_strings(view: ImageView) -> None:
    with pytest.raises(TypeError, match="list of words"):
        assert_config(view, cmd="--serve")  # type: ignore[arg-type]


def test_helpers_need_no_pytest() -> None:
    """minibuild.testing is plain Python: it imports neither pytest nor the build engine."""
    import subprocess
    import sys

    code = ("import sys, minibuild.testing; "
            "print(sorted(m for m in ('pytest', 'minibuild.api', 'minibuild.engine.builder') if m in sys.modules))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
