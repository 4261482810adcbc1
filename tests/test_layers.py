"""The package's imports: no cycles between modules, and no module importing a layer above its own."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "minibuild"

# Lowest first. A module may import its own layer's modules and any lower layer's, never a higher one.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("record", "errors", "digest", "units", "fsperm", "wildcard", "limits", "boundedtar", "owner", "home"),
    ("dockerfile",),
    ("oci",),
    ("plan", "store"),
    ("fs", "registry", "fixtures_padding"),
    ("view", "fixtures", "sh"),
    ("executors",),
    ("engine",),
    ("teach", "structure", "testing", "api", "run"),
    ("cli", "pytest_plugin", "__main__", "__init__"),
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run (module level or inside functions), leaving out ``if TYPE_CHECKING:`` blocks."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from (n for child in node.orelse for n in _runtime_imports(ast.Module(body=[child], type_ignores=[])))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _runtime_imports(node)


def _edges() -> dict[str, set[str]]:
    modules = _modules()
    edges: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([node.module] if node.module else []))
                subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
                targets = subs if subs else [base]
            edges[name] |= {t for t in targets if t in modules and t != name}
    return edges


def _layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for index, names in enumerate(LAYERS):
        if top in names:
            return index
    raise AssertionError(f"{module}: its top-level name {top!r} is in no layer of tests/test_layers.py")


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_a_higher_layer() -> None:
    edges = _edges()
    wrong = sorted(f"{a} -> {b}" for a, targets in edges.items() for b in targets if _layer_of(b) > _layer_of(a))
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    cycles = _cycles(_edges())
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_a_planted_cycle_and_a_wrong_layer() -> None:
    edges = {"minibuild.a": {"minibuild.b"}, "minibuild.b": {"minibuild.c"}, "minibuild.c": {"minibuild.a"},
             "minibuild.d": set()}
    assert _cycles(edges) == [["minibuild.a", "minibuild.b", "minibuild.c"]]
    assert _layer_of("minibuild.store.gc") > _layer_of("minibuild.oci.image")
