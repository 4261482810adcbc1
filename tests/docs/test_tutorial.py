"""The generated docs (tutorial, cache keys) match what minibuild prints today; the generator's own rules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "docs" / "tutorial" / "generate.py"


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("minibuild_docs_generate", GENERATOR)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


gen = _load_generator()


def test_generated_docs_are_up_to_date() -> None:
    """Reruns every command of the templates (full-size fixtures, fresh stores) and diffs against the committed
    pages. On failure: run `python docs/tutorial/generate.py`, read the diff, commit the regenerated pages."""
    res = subprocess.run([sys.executable, str(GENERATOR), "--check"], cwd=REPO, capture_output=True, text=True,
                         timeout=900)
    assert res.returncode == 0, f"generated docs drifted or failed:\n{res.stderr}\n{res.stdout[-20000:]}"


def test_every_template_has_its_generated_page_committed() -> None:
    for template, out in gen.DOCUMENTS:
        assert (REPO / template).is_file(), template
        text = (REPO / out).read_text(encoding="utf-8")
        assert text.startswith("<!-- GENERATED from " + template), out


def test_parse_template_runs_only_run_blocks() -> None:
    chunks = gen.parse_template(
        "intro\n```console\n$ not run\n```\n````console run\n$ echo a\n\n$ cat <<'EOF'\nx\n```\nEOF\n````\n"
        "```mermaid run output-only\n$ echo b\n```\nend\n")
    runs = [c for c in chunks if isinstance(c, gen.RunBlock)]
    texts = "".join(c.text for c in chunks if isinstance(c, gen.Text))
    assert [r.commands for r in runs] == [("echo a", "cat <<'EOF'\nx\n```\nEOF"), ("echo b",)]
    assert [(r.lang, r.output_only, r.allow_fail) for r in runs] == [("console", False, False),
                                                                     ("mermaid", True, False)]
    assert "$ not run" in texts and texts.startswith("intro\n") and texts.endswith("end\n")


@pytest.mark.parametrize("template", [
    "```console run\nnot a command\n```\n",          # output lines are generated, never written
    "```console run\n$ echo a\n",                     # unclosed block
    "```console run\n$ cat <<EOF\nx\n```\n",          # unclosed here-document
    "```run\n$ echo a\n```\n",                        # no language
    "```console run quietly\n$ echo a\n```\n",        # unknown word
    "```console run\n\n```\n",                        # no command
])
def test_parse_template_rejects(template: str) -> None:
    with pytest.raises(gen.GenerationError):
        gen.parse_template(template)


def test_normalise_replaces_only_what_varies(tmp_path: Path) -> None:
    s = gen.Session.__new__(gen.Session)
    s.root, s.store, s.work = tmp_path, tmp_path / "store", tmp_path / "work"
    out = s.normalise(f"#3 DONE 12.5s\n#4 CACHED\nStore {tmp_path}/store: 3 blobs  \n{tmp_path}/work/x "
                      '{"seconds": 0.031, "size": 2.5}\nDONE 3 items\n#1 extracting 1 layer, 357MB 2.3s done\n'
                      "[+] Building 12.3s (9/9) FINISHED\nbuilt in 3s done")
    assert out == ('#3 DONE <t>\n#4 CACHED\nStore $MINIBUILD_HOME: 3 blobs\n$WORK/x {"seconds": "<t>", "size": 2.5}'
                   "\nDONE 3 items\n#1 extracting 1 layer, 357MB <t> done\n[+] Building <t> (9/9) FINISHED\n"
                   "built in <t> done")


def test_fence_is_longer_than_any_backtick_run_in_the_output() -> None:
    assert gen._fence_for("plain") == "```"
    assert gen._fence_for("a ```` b") == "`````"


def test_run_block_failure_stops_generation_unless_allowed(tmp_path: Path) -> None:
    tpl = tmp_path / "t.md.in"
    tpl.write_text("```console run\n$ echo out; exit 3\n```\n")
    with pytest.raises(gen.GenerationError, match="exited with 3"):
        gen.render(tpl, "t.md", repo=REPO)
    tpl.write_text("x\n```console run allow-fail\n$ echo out; exit 3\n$ cd examples\n$ ls -d node-nginx\n```\n")
    text = gen.render(tpl, "t.md", repo=REPO)
    assert text.endswith("x\n```console\n$ echo out; exit 3\nout\n$ cd examples\n$ ls -d node-nginx\nnode-nginx\n```\n")


def test_cd_cannot_leave_the_workspace(tmp_path: Path) -> None:
    tpl = tmp_path / "t.md.in"
    tpl.write_text("```console run\n$ cd ../..\n```\n")
    with pytest.raises(gen.GenerationError, match="inside the workspace"):
        gen.render(tpl, "t.md", repo=REPO)
