"""``minibuild build --cache-from=IMAGE`` without an inline cache: a warning, and the image's history as a cache
source (Docker's classic builder), as on the tutorial's second machine (``minibuild load my-app.tar``)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.engine_support import write_context
from tests.cli.support import mb

DOCKERFILE = """FROM busybox
WORKDIR /app
COPY a.txt ./
RUN echo built > /app/out
EXPOSE 80
CMD ["cat", "/app/out"]
"""


def _first_machine(tmp_path: Path) -> tuple[Path, str]:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": DOCKERFILE, "a.txt": "a"})
    a = tmp_path / "a"
    p = mb(a, "build", "-t", "my-app:latest", str(ctx), "--progress", "quiet")
    assert p.returncode == 0, p.stderr
    p = mb(a, "save", "my-app:latest", "-o", str(tmp_path / "my-app.tar"))
    assert p.returncode == 0, p.stderr
    return ctx, p.stdout


def _json_steps(stderr: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, stderr.splitlines()) if e["type"] == "step"]


def test_second_machine_hits_the_loaded_image_history(tmp_path: Path) -> None:
    ctx, _ = _first_machine(tmp_path)
    a_digest = mb(tmp_path / "a", "inspect", "my-app:latest").stdout
    b = tmp_path / "b"
    assert mb(b, "load", str(tmp_path / "my-app.tar")).returncode == 0
    p = mb(b, "build", "--cache-from=my-app:latest", "-t", "my-app:latest", str(ctx), "--progress", "json")
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in p.stderr.splitlines()]
    warnings = [e["message"] for e in events if e["type"] == "warning"]
    assert len(warnings) == 1 and "my-app:latest" in warnings[0] and "no inline cache" in warnings[0]
    by = {e["instruction"]: e for e in events if e["type"] == "step"}
    src = "HIT (cache from image my-app:latest)"
    assert by["WORKDIR /app"]["reason"] == src
    assert by["RUN echo built > /app/out"]["reason"] == src and by["RUN echo built > /app/out"]["cached"]
    assert by["EXPOSE 80"]["reason"] == src and by['CMD ["cat", "/app/out"]']["reason"] == src
    assert not by["COPY a.txt ./"]["cached"]  # COPY runs: a history line does not name the files copied
    # the same image as the first machine's
    assert json.loads(mb(b, "inspect", "my-app:latest").stdout)["Digest"] == json.loads(a_digest)["Digest"]


def test_plain_output_warns_once_and_counts_the_hits(tmp_path: Path) -> None:
    ctx, _ = _first_machine(tmp_path)
    b = tmp_path / "b"
    assert mb(b, "load", str(tmp_path / "my-app.tar")).returncode == 0
    p = mb(b, "build", "--cache-from=my-app:latest", str(ctx), "--progress", "plain")
    assert p.returncode == 0, p.stderr
    lines = p.stderr.splitlines()
    assert len([line for line in lines if "no inline cache" in line]) == 1
    assert "cache from image my-app:latest: 4 steps hit" in lines


def test_changed_copy_breaks_the_chain(tmp_path: Path) -> None:
    ctx, _ = _first_machine(tmp_path)
    b = tmp_path / "b"
    assert mb(b, "load", str(tmp_path / "my-app.tar")).returncode == 0
    (ctx / "a.txt").write_text("changed")
    p = mb(b, "build", "--cache-from=my-app:latest", str(ctx), "--progress", "json")
    assert p.returncode == 0, p.stderr
    by = {e["instruction"]: e for e in _json_steps(p.stderr)}
    assert by["WORKDIR /app"]["cached"]
    assert not by["RUN echo built > /app/out"]["cached"]  # its parent layer is not the image's any more
    assert not by["EXPOSE 80"]["cached"]


def test_run_seeing_an_arg_does_not_hit_from_history(tmp_path: Path) -> None:
    df = "FROM busybox\nARG V=1\nRUN echo $V > /v\n"
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": df})
    a, b = tmp_path / "a", tmp_path / "b"
    assert mb(a, "build", "-t", "my-app:latest", str(ctx), "--progress", "quiet").returncode == 0
    assert mb(a, "save", "my-app:latest", "-o", str(tmp_path / "my-app.tar")).returncode == 0
    assert mb(b, "load", str(tmp_path / "my-app.tar")).returncode == 0
    p = mb(b, "build", "--cache-from=my-app:latest", "--build-arg", "V=2", str(ctx), "--progress", "json")
    assert p.returncode == 0, p.stderr
    runs = [e for e in _json_steps(p.stderr) if str(e["instruction"]).startswith("RUN")]
    assert len(runs) == 1 and not runs[0]["cached"]  # V=2 here, V=1 there: the history line is the same
    assert mb(b, "build", "--cache-from=my-app:latest", str(ctx), "--progress", "quiet").returncode == 0


def test_missing_cache_image_is_a_warning(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN true\n"})
    p = mb(tmp_path / "s", "build", "--cache-from=nope:latest", str(ctx), "--progress", "plain")
    assert p.returncode == 0, p.stderr
    assert len([line for line in p.stderr.splitlines() if "nope:latest" in line]) == 1


def test_unreadable_layout_cache_is_a_warning(tmp_path: Path) -> None:
    ctx = write_context(tmp_path / "ctx", {"Dockerfile": "FROM busybox\nRUN true\n"})
    p = mb(tmp_path / "s", "build", f"--cache-from=type=local,src={tmp_path}/nocache", str(ctx), "--progress", "json")
    assert p.returncode == 0, p.stderr
    warnings = [e["message"] for e in map(json.loads, p.stderr.splitlines()) if e["type"] == "warning"]
    assert len(warnings) == 1 and warnings[0].startswith(f"--cache-from local {tmp_path}/nocache: cannot read cache")
