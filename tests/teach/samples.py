"""Hand-made inputs for the teach tests: a small multi-stage Dockerfile and a BuildReport of it."""

from __future__ import annotations

from minibuild.digest import Digest
from minibuild.teach.report import (
    BuildReport,
    LayerReport,
    StageReport,
    StepReport,
    Totals,
    TransferPath,
    TransferReport,
    WasteEntry,
)

# line numbers matter: the golden files name them
DOCKERFILE = """\
ARG GO=1.22
FROM golang:${GO} AS build
WORKDIR /src
COPY . .
RUN go build -o /out/app .

FROM build AS test
RUN go test ./...

FROM alpine:3.20 AS assets
RUN mkdir /static

FROM scratch
COPY --from=build /out/app /app
COPY --from=assets /static /static
ENTRYPOINT ["/app"]
"""


def d(n: int) -> Digest:
    """A made-up digest: sha256 of the text of n."""
    return Digest.of_bytes(str(n).encode())


def sample_report() -> BuildReport:
    """The report a build of DOCKERFILE (default target) could produce; sizes chosen by hand."""
    base = LayerReport(digest=d(1), size=70_000_000, stage=0, created_by="golang base layer", from_base=True)
    src = LayerReport(digest=d(2), size=20_000, stage=0, created_by="COPY . . # buildkit", line=4)
    binary = LayerReport(digest=d(3), size=9_000_000, stage=0, created_by="RUN go build -o /out/app .", line=5)
    alp = LayerReport(digest=d(4), size=3_600_000, stage=2, created_by="alpine base layer", from_base=True)
    static = LayerReport(digest=d(5), size=1_024, stage=2, created_by="RUN mkdir /static", line=11)
    app = LayerReport(digest=d(6), size=4_200_000, stage=3, created_by="COPY /out/app /app # buildkit", line=14,
                      kept=True)
    assets = LayerReport(digest=d(7), size=512, stage=3, created_by="COPY /static /static # buildkit", line=15,
                         kept=True)
    layers = (base, src, binary, alp, static, app, assets)
    stages = (
        StageReport(index=0, name="build", base="golang:1.22", status="built", reason="1 of 3 steps cached",
                    steps=(StepReport(line=3, instruction="WORKDIR /src", cache="hit"),
                           StepReport(line=4, instruction="COPY . .", cache="miss",
                                      reason="main.go content changed", layer=d(2)),
                           StepReport(line=5, instruction="RUN go build -o /out/app .", cache="miss",
                                      reason="parent step 4 missed", layer=d(3))),
                    layers=(d(1), d(2), d(3)), size=79_020_000),
        StageReport(index=1, name="test", base="build", base_stage=0, status="skipped",
                    reason="not needed for target 3",
                    steps=(StepReport(line=8, instruction="RUN go test ./..."),)),
        StageReport(index=2, name="assets", base="alpine:3.20", status="cached", reason="all steps cached",
                    steps=(StepReport(line=11, instruction="RUN mkdir /static", cache="hit", layer=d(5)),),
                    layers=(d(4), d(5)), size=3_601_024),
        StageReport(index=3, name=None, base="scratch", status="built",
                    steps=(StepReport(line=14, instruction="COPY --from=build /out/app /app", cache="miss",
                                      reason="parent step changed", layer=d(6)),
                           StepReport(line=15, instruction="COPY --from=assets /static /static", cache="miss",
                                      reason="parent step 14 missed", layer=d(7)),
                           StepReport(line=16, instruction='ENTRYPOINT ["/app"]')),
                    layers=(d(6), d(7)), size=4_200_512),
    )
    transfers = (
        TransferReport(from_stage="build", from_index=0, to_stage=3, line=14, dest="/app",
                       paths=(TransferPath(source="/out/app", bytes=4_100_000, files=1),)),
        TransferReport(from_stage="assets", from_index=2, to_stage=3, line=15, dest="/static",
                       paths=(TransferPath(source="/static", bytes=0, files=0),)),
    )
    waste = (WasteEntry(path="root/.cache/go-build", bytes=2_000_000, layer=d(3), created_line=5,
                        created_by="RUN go build -o /out/app .", deleted_line=None, deleted_by="", stage=0),)
    totals = Totals(final_bytes=4_200_512, built_bytes=86_821_536, avoided_bytes=82_621_024, wasted_bytes=0,
                    transferred_bytes=4_100_000)
    return BuildReport(dockerfile="Dockerfile", target="3", image="app:latest", image_digest=d(99),
                       stages=stages, layers=layers, transfers=transfers, waste=waste, totals=totals)
