"""`minibuild run`: docker run's vocabulary over minibuild.run (the library does the work)."""

from __future__ import annotations

import sys

import click

from minibuild.errors import MinibuildError


@click.command(context_settings={"allow_interspersed_args": False})
@click.argument("image")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@click.option("-p", "--publish", "publish", multiple=True, metavar="[IP:]HOST:CONTAINER",
              help="Publish a container port on the host (default IP 127.0.0.1; repeatable).")
@click.option("-e", "--env", "env", multiple=True, metavar="K=V", help="Set an environment variable (K alone: the "
              "host's value; repeatable).")
@click.option("--entrypoint", default=None, help="Replace the image's ENTRYPOINT (and drop its CMD), as docker run.")
@click.option("-w", "--workdir", default=None, help="Working directory inside the container.")
@click.option("-u", "--user", default=None, help="User (name|uid[:group|gid]) inside the container.")
@click.option("--rm", "rm", is_flag=True, help="Accepted for docker run's sake: every run is thrown away.")
@click.option("-i", "--interactive", is_flag=True, help="The program reads this stdin (the emulated shell reads it "
              "to the end first); without -i it reads nothing, as docker run.")
@click.option("--executor", type=click.Choice(["auto", "emulate", "chroot"]), default="auto", show_default=True,
              help="auto: stand-in programs in the emulated shell, real binaries in the chroot executor.")
@click.pass_context
def run(ctx: click.Context, image: str, command: tuple[str, ...], publish: tuple[str, ...], env: tuple[str, ...],
        entrypoint: str | None, workdir: str | None, user: str | None, rm: bool, interactive: bool,
        executor: str) -> None:
    """Run IMAGE (a name, an ID or an image tarball) as `docker run --rm` would, over a throwaway copy of its
    filesystem; the stored image never changes. Exit status: the program's; 125 when it cannot start, 127 when
    the command is not found.

    Images built from the bundled stand-in bases run in the emulated shell, and their stand-in servers really
    serve on the published loopback ports until Ctrl-C: nginx (its conf.d root, index, try_files), `python -m
    http.server`, `vite preview` (npm start), `node server.js` (express.static). Images with real binaries run
    with the chroot executor (root, or unprivileged user namespaces) in the host's network namespace: the
    program listens on the host's own ports, and -p HOST:CONTAINER adds a loopback proxy from HOST to CONTAINER.
    """
    from minibuild.run import RunError, RunOptions, run_image

    opts = RunOptions(cmd=command, entrypoint=entrypoint, env=env, publish=publish, workdir=workdir, user=user,
                      executor=executor, interactive=interactive)  # type: ignore[arg-type]
    try:
        status = run_image(image, ctx.obj["store"], opts, stdout=sys.stdout.buffer, stderr=sys.stderr.buffer,
                           stdin=sys.stdin.buffer)
    except RunError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.status)
    except MinibuildError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(125)
    sys.exit(status)
