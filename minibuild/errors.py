"""The one exception tree of minibuild, and source spans for Dockerfile errors.

    MinibuildError
    ├── DockerfileError      bad Dockerfile text or instruction (carries a SourceSpan)
    ├── PlanError            stages, targets, ARG scope, cycles (may carry a SourceSpan)
    ├── BuildError           a step failed while building (may carry a SourceSpan)
    │   ├── ExecutorError    RUN could not run, or ran and failed
    │   └── ContextError     build context, .dockerignore, COPY/ADD sources
    │       └── SourceNotFoundError  a COPY --from source is not in its stage or image
    ├── ShellError           the emulated shell could not parse or run a script
    │   └── UnsupportedCommandError  a command the emulated shell does not provide
    ├── StoreError           the content store: missing or corrupt blobs, locks, refs
    ├── ImageFormatError     an image tarball, layout or JSON document is not acceptable
    ├── UnsafePathError      an archive entry or path would leave its root
    ├── RegistryError        talking to an OCI registry failed: network, TLS, auth, protocol, digests
    └── ConfigError          bad options, fixture YAML or configuration

The library raises these and never prints or exits; the CLI renders ``str(error)`` as one line.
"""

from __future__ import annotations

from minibuild.record import record


@record
class SourceSpan:
    """Where something stands in a source file: file name and 1-based lines (and column)."""

    file: str = "Dockerfile"
    line: int
    end_line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.column is not None:
            return f"{self.file}:{self.line}:{self.column}"
        return f"{self.file}:{self.line}"


class MinibuildError(Exception):
    """Base of every error minibuild raises on purpose."""

    def __init__(self, message: str, *, span: SourceSpan | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.span = span

    def __str__(self) -> str:
        if self.span is not None:
            return f"{self.span}: {self.message}"
        return self.message

    def with_span(self, span: SourceSpan) -> "MinibuildError":
        """Return this error with a span attached when it has none yet (same class)."""
        if self.span is None:
            self.span = span
        return self


class DockerfileError(MinibuildError):
    """The Dockerfile cannot be parsed or an instruction is invalid."""


class PlanError(MinibuildError):
    """The stage graph, target or ARG/ENV scope is invalid."""


class BuildError(MinibuildError):
    """A build step failed."""


class ExecutorError(BuildError):
    """A RUN step could not be executed, or exited non-zero."""

    def __init__(
        self,
        message: str,
        *,
        span: SourceSpan | None = None,
        exit_code: int | None = None,
        stderr_tail: str = "",
        output_tail: str = "",
    ) -> None:
        super().__init__(message, span=span)
        self.exit_code = exit_code
        self.stderr_tail = stderr_tail  # the last lines of stderr alone
        self.output_tail = output_tail  # the last lines of stdout and stderr interleaved, as the message shows


class ContextError(BuildError):
    """The build context, .dockerignore or a COPY/ADD source is invalid."""


class SourceNotFoundError(ContextError):
    """A ``COPY --from`` source is not in the stage or image it copies from (``source``: the path asked for)."""

    def __init__(self, message: str, *, source: str, span: SourceSpan | None = None) -> None:
        super().__init__(message, span=span)
        self.source = source


class ShellError(MinibuildError):
    """The emulated shell could not parse or execute a script."""


class UnsupportedCommandError(ShellError):
    """A script called a command that is neither an emulated builtin nor a shell script in the root."""

    def __init__(self, message: str, *, command: str, span: SourceSpan | None = None) -> None:
        super().__init__(message, span=span)
        self.command = command


class StoreError(MinibuildError):
    """The content store is missing something, is corrupt, or is locked."""


class ImageFormatError(MinibuildError):
    """An image archive, layout or JSON document is malformed or fails verification."""


class UnsafePathError(MinibuildError):
    """A path or archive entry would escape the root it is confined to."""


class RegistryError(MinibuildError):
    """A registry push or pull failed (network, TLS, authentication, protocol or digest mismatch)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ConfigError(MinibuildError):
    """Invalid options, configuration or fixture metadata."""
