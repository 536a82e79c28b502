"""Data flows one way (docs/architecture.md): no module imports a later layer, and no modules import each other.

The chain: errors/_io/layout/prediction/pretrained -> data -> compat, synth, vision -> models ->
checkpoints -> export -> inference -> evaluation -> training -> runs -> serving -> cli.
A run-time import of a later layer fails `test_no_import_reaches_back_up_the_chain`; imports made
only for type checking (`if TYPE_CHECKING:`) may name any layer. Circles are checked module by
module over every import, type-only ones included (a type-only circle still ties two files into
one): in src/ and in benchmarks/.
"""
from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "digitlab"
LAYERS = [
    {"digitlab", "errors", "_io", "layout", "prediction", "pretrained"},
    {"data"},
    {"compat", "synth", "vision"},
    {"models"},
    {"checkpoints"},
    {"export"},
    {"inference"},
    {"evaluation"},
    {"training"},
    {"runs"},
    {"serving"},
    {"cli", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _part(module: str) -> str:
    """'digitlab.inference.predictor' -> 'inference'; 'digitlab' -> 'digitlab'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(tree: ast.AST, *, type_only: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in `tree`; `type_only=False` leaves out `if TYPE_CHECKING:` blocks.

    `from package import name` is reported as `package.name` (the caller keeps what names a module).
    """
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if not type_only and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _graph(paths: dict[str, Path]) -> dict[str, set[str]]:
    """{module: the modules it imports}, among `paths` (an import of a name inside a module counts as the module;
    `from package import module` as the module, not the package's __init__)."""
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        imported = {m for _, m in _imports(ast.parse(path.read_text(encoding="utf-8")), type_only=True)}
        direct = {m for m in imported if m in paths}
        # `from digitlab.inference import Predictor` names the package; `from digitlab.vision import lines` a module
        graph[name] = {m for m in direct
                       if not any(other.startswith(m + ".") and other in paths for other in imported)} - {name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def test_every_package_has_a_layer() -> None:
    packages = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in _modules()}
    assert packages - {"__init__"} <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_reaches_back_up_the_chain(path: Path) -> None:
    rel = path.relative_to(SRC)
    own = rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "digitlab"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = sorted({f"line {line}: {module}" for line, module in _imports(tree, type_only=False)
                  if module.startswith("digitlab.") and RANK.get(_part(module), -1) > RANK[own]})
    assert not bad, f"{rel} ({own}, layer {RANK[own]}) imports later layers: {bad}"


def test_no_import_circle_in_src() -> None:
    paths = {_module_name(p, SRC, "digitlab"): p for p in _modules()}
    assert (cycle := _cycle(_graph(paths))) is None, f"modules that import each other: {' -> '.join(cycle)}"


def test_no_import_circle_in_benchmarks() -> None:
    paths = {_module_name(p, ROOT / "benchmarks", "benchmarks"): p for p in sorted((ROOT / "benchmarks").glob("*.py"))}
    assert (cycle := _cycle(_graph(paths))) is None, f"benchmark modules that import each other: {' -> '.join(cycle)}"


def test_the_circle_check_finds_a_circle(tmp_path: Path) -> None:
    """The check itself: two modules that import each other (one only for type checking) are a circle."""
    (tmp_path / "a.py").write_text("from pkg.b import f\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import g\n")
    (tmp_path / "c.py").write_text("import pkg.a\n")
    paths = {_module_name(p, tmp_path, "pkg"): p for p in sorted(tmp_path.glob("*.py"))}
    assert sorted(set(_cycle(_graph(paths)) or [])) == ["pkg.a", "pkg.b"]
    (tmp_path / "b.py").write_text("x = 1\n")
    assert _cycle(_graph(paths)) is None
