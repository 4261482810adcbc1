"""``minibuild build`` options --pull, --cache-from, --cache-to, --insecure-registry, --ca-cert (kept in ctx.meta)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

_META = "minibuild.build.registry"


def _keep(name: str) -> Any:
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(_META, {})[name] = value
        return value
    return callback


def registry_build_options(f: Any) -> Any:
    """Add the registry/cache options to a click command without changing its signature."""
    opts = [
        click.option("--pull", is_flag=True, expose_value=False, callback=_keep("pull"),
                     help="Pull base images the store lacks from their registry (the only network a build uses)."),
        click.option("--cache-from", multiple=True, expose_value=False, callback=_keep("cache_from"),
                     metavar="SPEC", help="Import cache: type=registry,ref=REF | type=local,src=DIR | IMAGE or "
                                          "TARBALL with an inline cache (repeatable)."),
        click.option("--cache-to", multiple=True, expose_value=False, callback=_keep("cache_to"), metavar="SPEC",
                     help="Export the build's cache: type=registry,ref=REF | type=local,dest=DIR | type=inline."),
        click.option("--insecure-registry", multiple=True, expose_value=False, callback=_keep("insecure"),
                     metavar="HOST[:PORT]", help="Allow plain HTTP (or unverified TLS) to this registry; repeatable."),
        click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     expose_value=False, callback=_keep("ca_cert"), help="Trust this CA certificate (PEM) for TLS."),
    ]
    for opt in reversed(opts):
        f = opt(f)
    return f


def registry_build_kwargs(ctx: click.Context) -> dict[str, Any]:
    """The ``api.build`` keyword arguments the options above collected."""
    got = ctx.meta.get(_META, {})
    kwargs: dict[str, Any] = {"pull": bool(got.get("pull")), "cache_from": tuple(got.get("cache_from") or ()),
                              "cache_to": tuple(got.get("cache_to") or ())}
    if kwargs["pull"] or kwargs["cache_from"] or kwargs["cache_to"]:
        from minibuild.registry import options_from_env

        kwargs["registry_options"] = options_from_env(insecure_registries=tuple(got.get("insecure") or ()),
                                                      ca_cert=got.get("ca_cert"))
    return kwargs
