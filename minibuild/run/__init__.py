"""`minibuild run IMAGE`: run what you built, in Docker's vocabulary (stand-in servers really serve).

    run_image(ref, store_dir, RunOptions(...), stdout=..., stderr=...) -> exit status
    container_spec(config, ...) -> ContainerSpec             ENTRYPOINT + CMD, Env, WorkingDir, User (pure)
    standins.PROGRAMS / @standins.program("name")            the stand-in programs that serve for real
"""

from __future__ import annotations

from minibuild.run.container import EXECUTORS, RunError, RunOptions, run_image
from minibuild.run.spec import ContainerSpec, Publish, container_spec, parse_publish

__all__ = ["EXECUTORS", "ContainerSpec", "Publish", "RunError", "RunOptions", "container_spec", "parse_publish",
           "run_image"]
