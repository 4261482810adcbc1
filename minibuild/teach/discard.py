"""The discard report of a build (``build --report``): fill minibuild.teach.report's BuildReport from a BuildResult.

Sizes of layers are their blob sizes in the store (the manifest's ``size``); transfer and waste bytes are file
content bytes read from the layers' tar headers (nothing is extracted). Waste is counted in the stage that
deleted it: a whiteout (or opaque directory, or a file overwritten) in a layer made by one of the stage's own
steps, hiding bytes that a lower layer of the same stage image still carries.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Sequence

from minibuild.engine.builder import BuildResult, CopyFrom, StepResult
from minibuild.digest import Digest
from minibuild.dockerfile import Dockerfile
from minibuild.oci.image import Image
from minibuild.plan.steps import step_label, vertex_numbers
from minibuild.store import Store
from minibuild.store.tarlayer import OPAQUE_NAME, WHITEOUT_PREFIX, Entry
from minibuild.store.tarread import read_entries
from minibuild.teach.imagefs import image_tree
from minibuild.units import image_size
from minibuild.teach.report import (
    BuildReport,
    LayerReport,
    StageReport,
    StepReport,
    TransferPath,
    TransferReport,
    WasteEntry,
    compute_totals,
)


def _step_report(s: StepResult) -> StepReport:
    cache = "none" if s.vertex is None else ("hit" if s.cached else "miss")
    return StepReport(line=s.line or None, instruction=s.instruction, cache=cache,  # type: ignore[arg-type]
                      reason="" if s.cached else s.reason, layer=Digest(s.layer) if s.layer else None,
                      step="" if s.vertex is None else step_label(s.prefix, s.vertex, s.vertices))


def _matches(paths: Sequence[str], pattern: str) -> list[str]:
    """Tree paths a COPY --from source names (globs match whole path components, as BuildKit's do)."""
    pat = posixpath.normpath("/" + pattern).lstrip("/")
    if not pat or pat == ".":
        return [""]
    if not any(c in pat for c in "*?["):
        return [pat] if pat in paths else []
    depth = pat.count("/")
    return sorted(p for p in paths if p.count("/") == depth and fnmatch.fnmatchcase(p, pat))


def transfer_report(store: Store, t: CopyFrom, trees: dict[Digest, tuple[dict[str, Entry], list[str]]]) -> TransferReport:
    """The paths and file bytes one COPY --from carried, from the source image's folded layer metadata."""
    key = Digest.of_bytes(" ".join(layer.digest.value for layer in t.source_image.layers).encode())
    if key not in trees:
        tree = image_tree(store.blobs, t.source_image)
        entries = {p: te.entry for p, te in tree.entries.items()}
        trees[key] = (entries, sorted(set(entries) | set(tree.implied_dirs)))
    entries, paths = trees[key]
    out: list[TransferPath] = []
    for src in t.sources:
        nbytes = files = 0
        for match in _matches(paths, src):
            prefix = match + "/" if match else ""
            for p, e in entries.items():
                if (p == match or p.startswith(prefix)) and e.type == "file":
                    nbytes += e.size
                    files += 1
        out.append(TransferPath(source=src, bytes=nbytes, files=files))
    return TransferReport(from_stage=t.from_stage, from_index=t.from_index, to_stage=t.to_index, line=t.line,
                          kind="copy", dest=t.dest, paths=tuple(out))


def stage_waste(store: Store, image: Image, own_start: int, stage: int,
                made_by: dict[str, StepResult], cache: dict[Digest, list[Entry]]) -> list[WasteEntry]:
    """Files hidden by the stage's own layers (index >= own_start) while a lower layer still carries them."""
    tree: dict[str, tuple[Entry, int]] = {}
    layers = image.layers
    out: list[WasteEntry] = []

    def hide(victims: list[str], idx: int, how: str = "deleted") -> None:
        for p in victims:
            e, at = tree.pop(p)
            if idx >= own_start and e.type == "file" and e.size > 0 and at != idx:
                out.append(_waste(p, e.size, layers[at].digest, layers[idx].digest, stage, made_by, how))

    for idx, layer in enumerate(layers):
        if layer.digest not in cache:
            with store.blobs.open(layer.digest) as fh:
                cache[layer.digest] = read_entries(fh)
        adds: list[Entry] = []
        for e in cache[layer.digest]:
            head, _, name = e.path.rpartition("/")
            if name == OPAQUE_NAME:
                pre = head + "/" if head else ""
                hide([p for p in tree if p.startswith(pre) and p != head], idx)
            elif name.startswith(WHITEOUT_PREFIX):
                victim = (head + "/" if head else "") + name[len(WHITEOUT_PREFIX):]
                hide([p for p in tree if p == victim or p.startswith(victim + "/")], idx)
            elif e.path:
                adds.append(e)
        for e in adds:
            old = tree.get(e.path)
            if old is not None and old[0].type == "dir" and e.type != "dir":
                hide([p for p in tree if p.startswith(e.path + "/")], idx, "overwritten")
            if old is not None and old[0].type != "dir":
                hide([e.path], idx, "overwritten")
            tree[e.path] = (e, idx)
    return out


def _waste(path: str, size: int, where: Digest, by: Digest, stage: int, made_by: dict[str, StepResult],
           how: str) -> WasteEntry:
    c = made_by.get(where.value)
    d = made_by.get(by.value)
    return WasteEntry(path="/" + path, bytes=size, layer=where, stage=stage,
                      how="overwritten" if how == "overwritten" else "deleted",
                      created_line=c.line if c else None, created_by=c.instruction if c else "(base image)",
                      deleted_line=d.line if d else None, deleted_by=d.instruction if d else "")


def build_report(store: Store, result: BuildResult, df: Dockerfile, *, dockerfile_name: str = "Dockerfile") -> BuildReport:
    """Every stage (built/cached/skipped and why), its layers and bytes, which the final image keeps, what each
    COPY --from carried, the waste, and the totals (``compute_totals``)."""
    images = dict(result.stage_images)
    # the final stage as built: its layers are the store's, which the stages share (the exported image's are
    # the same files with clamped mtimes, minibuild.engine.export)
    final = next((images[s.index] for s in result.stages if s.label == result.target and s.index in images),
                 result.image)
    final_layers = tuple(layer.digest for layer in final.layers)
    kept = set(final_layers)
    made_by: dict[str, StepResult] = {}
    for s in result.steps:
        if s.layer and s.layer not in made_by:
            made_by[s.layer] = s
    stages: list[StageReport] = []
    layers: dict[Digest, LayerReport] = {}
    waste: list[WasteEntry] = []
    entry_cache: dict[Digest, list[Entry]] = {}
    by_index = {s.index: s for s in result.stages}
    for sr in result.stages:
        mine = [s for s in result.steps if s.stage_index == sr.index]
        steps = tuple(_step_report(s) for s in mine)
        vertices = mine[0].vertices if mine else len(vertex_numbers(df.stages[sr.index].instructions))
        image = images.get(sr.index)
        base_stage = sr.base_stage  # as the stage graph resolved it (minibuild.plan.graph)
        if image is None:
            stages.append(StageReport(index=sr.index, name=sr.name, base=sr.base, base_stage=base_stage,
                                      status="skipped", reason=sr.reason, steps=steps, vertices=vertices))
            continue
        n_miss = sum(1 for s in steps if s.cache == "miss")
        n_all = sum(1 for s in steps if s.cache != "none")
        reason = f"{n_all - n_miss} of {n_all} steps cached"
        stages.append(StageReport(index=sr.index, name=sr.name, base=sr.base, base_stage=base_stage,
                                  status=sr.status, reason=reason, steps=steps,  # type: ignore[arg-type]
                                  layers=tuple(layer.digest for layer in image.layers),
                                  size=image_size(image), vertices=vertices))
        for i, layer in enumerate(image.layers):
            if layer.digest in layers:
                continue
            step = made_by.get(layer.digest.value)
            hist = ""
            if step is None:
                rows = [h for h in image.history if not h.empty_layer]
                hist = (rows[i].created_by if i < len(rows) else None) or ""
            layers[layer.digest] = LayerReport(
                digest=layer.digest, diff_id=layer.diff_id, size=layer.size, stage=sr.index,
                created_by=step.instruction if step else hist, line=step.line if step else None,
                from_base=step is None, kept=layer.digest in kept)
        own = {s.layer: s for s in mine if s.layer}  # a layer byte-identical to another stage's is this stage's too
        waste.extend(stage_waste(store, image, by_index[sr.index].base_layers, sr.index, {**made_by, **own},
                                 entry_cache))
    trees: dict[Digest, tuple[dict[str, Entry], list[str]]] = {}
    transfers = tuple(transfer_report(store, t, trees) for t in result.transfers)
    report = BuildReport(dockerfile=dockerfile_name, target=result.target,
                         image=result.tags[0] if result.tags else None, image_digest=result.digest,
                         stages=tuple(stages), layers=tuple(layers.values()), transfers=transfers,
                         waste=tuple(waste))
    from dataclasses import replace

    return replace(report, totals=compute_totals(report, final_layers))
