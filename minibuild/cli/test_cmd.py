"""`minibuild test`: run container-structure-test configs against an image, a tarball, or a fresh build."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from minibuild.cli.build_cmd import parse_build_args
from minibuild.errors import ConfigError


@click.command("test")
@click.argument("image", required=False)
@click.option("--build", "build_context", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Build this context first (with -f/--target/--build-arg) and test the result.")
@click.option("-f", "--file", "dockerfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Dockerfile for --build (default: CONTEXT/Dockerfile).")
@click.option("--target", default=None, help="Stage to build with --build.")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE for --build (repeatable).")
@click.option("--allow", "allow", multiple=True, metavar="ENTITLEMENT",
              help="Grant an entitlement to --build (network.host), as minibuild build --allow.")
@click.option("-c", "--config", "configs", multiple=True, required=True,
              type=click.Path(dir_okay=False, path_type=Path), help="Structure-test YAML/JSON file (repeatable).")
@click.option("--executor", type=click.Choice(["auto", "emulate", "chroot"]), default="auto", show_default=True,
              help="How --build's RUNs and the command tests run: auto (a real binary in the chroot executor when it "
                   "can run here, a stand-in in the emulated shell), emulate or chroot.")
@click.option("-o", "--output", "fmt", type=click.Choice(["text", "json", "junit"]), default="text",
              show_default=True, help="Report format.")
@click.option("--test-report", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the report to this file (text becomes json, as upstream).")
@click.option("--junit-suite-name", default=None, help="Name of the JUnit test suite.")
@click.pass_context
def test(ctx: click.Context, image: str | None, build_context: Path | None, dockerfile: Path | None,
         target: str | None, build_args: tuple[str, ...], configs: tuple[Path, ...], executor: str, fmt: str,
         test_report: Path | None, junit_suite_name: str | None, allow: tuple[str, ...]) -> None:
    """Run container-structure-test files (schemaVersion 2.0.0) against IMAGE (a name in the store, or a
    tarball / OCI layout path), or against the image built from --build CONTEXT. Exits 1 when a test fails."""
    from minibuild.store import Store
    from minibuild.structure import render, run_structure_tests
    from minibuild.structure.report import DEFAULT_JUNIT_SUITE, render_junit
    from minibuild.view import ImageView, open_image

    store_path: Path = ctx.obj["store"]
    if (image is None) == (build_context is None):
        raise ConfigError("give either IMAGE or --build CONTEXT (exactly one)")
    if build_context is None and (dockerfile or target or build_args or allow):
        raise ConfigError("-f/--target/--build-arg/--allow only apply with --build CONTEXT")
    if build_context is not None:
        try:
            from minibuild import api
        except ImportError as exc:  # the build engine is not installed in this tree
            raise ConfigError(f"--build needs minibuild's build engine (minibuild.api): {exc}") from None
        store = Store.open(store_path)
        result = api.build(build_context, dockerfile, target=target, build_args=parse_build_args(build_args),
                           store=store, executor=executor, allow=allow)
        view = ImageView(store, result.image, names=result.tags)
    else:
        assert image is not None
        view = open_image(image, store_path)
    summary = run_structure_tests(view, configs, executor=executor)
    if test_report is not None and fmt == "text":
        click.echo("warning: raw text format unsupported for writing output file, defaulting to JSON", err=True)
        fmt = "json"
    if fmt == "junit":
        text = render_junit(summary, junit_suite_name or DEFAULT_JUNIT_SUITE)
    else:
        text = render(summary, fmt)
    if test_report is not None:
        test_report.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
    if not summary.ok:
        sys.exit(1)
