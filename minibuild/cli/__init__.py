"""The thin command line: a lazy click group whose subcommands live in their own modules."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import click

from minibuild import __version__
from minibuild.errors import MinibuildError
from minibuild.home import default_store_dir

# name -> "module:attribute"; each subcommand module is imported only when that command runs,
# so start-up stays lean.  Keep this table sorted by area.
COMMANDS: dict[str, str] = {
    # front end
    "parse": "minibuild.cli.parse_cmd:parse",
    # store and images
    "load": "minibuild.cli.store_cmds:load",
    "save": "minibuild.cli.store_cmds:save",
    "images": "minibuild.cli.store_cmds:images",
    "inspect": "minibuild.cli.store_cmds:inspect",
    "rmi": "minibuild.cli.store_cmds:rmi",
    "prune": "minibuild.cli.store_cmds:prune",
    "tag": "minibuild.cli.store_cmds:tag",
    "fsck": "minibuild.cli.fsck_cmd:fsck",
    # registries
    "push": "minibuild.cli.registry_cmds:push",
    "pull": "minibuild.cli.registry_cmds:pull",
    # structure tests
    "test": "minibuild.cli.test_cmd:test",
    # build engine
    "build": "minibuild.cli.build_cmd:build",
    "plan": "minibuild.cli.plan_cmd:plan",
    "run": "minibuild.cli.run_cmd:run",
    # teaching views
    "graph": "minibuild.cli.teach_cmds:graph",
    "history": "minibuild.cli.teach_cmds:history",
    "du": "minibuild.cli.teach_cmds:du",
    "cp": "minibuild.cli.teach_cmds:cp",
}


def default_store() -> Path:
    """Return the store directory: $MINIBUILD_HOME, else the user's cache dir + /minibuild."""
    return Path(default_store_dir())


class LazyGroup(click.Group):
    """A click group that imports each subcommand's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a command whose module is not written yet
            if exc.name == module_name:
                return None
            raise
        command: click.Command = getattr(module, attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--store",
    "store",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Store directory (default: $MINIBUILD_HOME or ~/.cache/minibuild).",
)
@click.version_option(version=__version__, prog_name="minibuild")  # not package metadata: importlib.metadata costs 0.1 s
@click.pass_context
def cli(ctx: click.Context, store: Path | None) -> None:
    """minibuild: build, explain and test Dockerfiles without a daemon."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store if store is not None else default_store()


def fail(message: str, code: int = 1) -> None:
    """Print one line to stderr and exit with ``code``."""
    click.echo(message, err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI and turn every MinibuildError into one line and exit code 1."""
    try:
        return cli.main(args=argv, prog_name="minibuild", standalone_mode=False)
    except MinibuildError as exc:
        fail(f"error: {exc}")
    except click.exceptions.Abort:
        fail("error: interrupted", 130)
    except KeyboardInterrupt:
        fail("error: interrupted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except BrokenPipeError:
        sys.exit(1)
    return None
