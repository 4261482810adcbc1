"""CLI command `minibuild fsck [--repair]`: verify every blob and reference of the store, one problem a line."""

from __future__ import annotations

import sys

import click

from minibuild.store import Store
from minibuild.store.fsck import fsck as run_fsck


@click.command()
@click.option("--repair", is_flag=True,
              help="Delete corrupt blobs, names of incomplete images, dangling cache records and leftovers.")
@click.pass_context
def fsck(ctx: click.Context, repair: bool) -> None:
    """Check every blob's digest and every reference (index.json, cache records); exit 1 if problems remain.

    Leftovers of killed processes (dead leases, temp files) are listed as notes, not problems."""
    from minibuild.engine.layertree import tree_matches

    store = Store.open(ctx.obj["store"])
    report = run_fsck(store, repair=repair, tree_check=tree_matches)
    for problem in report.problems:
        click.echo(str(problem))
    remaining = len(report.remaining)
    debris = len(report.debris)
    problems = len(report.problems) - debris
    repaired = problems - remaining
    summary = (f"checked {report.blobs_checked} blobs, {report.refs_checked} index entries, "
               f"{report.cache_records_checked} cache records: ")
    notes = ""
    if debris:
        notes = (f"; {debris} leftovers of killed processes removed" if repair else
                 f"; {debris} leftovers of killed processes (not a problem: the next build or prune removes them)")
    if not problems:
        click.echo(summary + "no problems" + notes)
        return
    click.echo(summary + f"{problems} problems, {repaired} repaired, {remaining} remaining" + notes
               + ("" if repair or not remaining else " (run `minibuild fsck --repair`)"))
    if remaining:
        sys.exit(1)
