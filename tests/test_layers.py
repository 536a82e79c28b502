"""Data flows one way: no module imports from a package later in the chain (docs/architecture.md).

The chain: errors/_io/layout/pretrained -> data -> compat, synth -> models -> checkpoints ->
inference -> evaluation -> training -> serving -> cli. Imports made only for type checking
(`if TYPE_CHECKING:`) are not dependencies and are allowed anywhere.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "digitlab"
LAYERS = [
    {"digitlab", "errors", "_io", "layout", "pretrained"},
    {"data"},
    {"compat", "synth"},
    {"models"},
    {"checkpoints"},
    {"inference"},
    {"evaluation"},
    {"training"},
    {"serving"},
    {"cli", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _part(module: str) -> str:
    """'digitlab.inference.predictor' -> 'inference'; 'digitlab' -> 'digitlab'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _runtime_imports(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every digitlab import outside `if TYPE_CHECKING:` blocks."""
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return [(line, m) for line, m in found if m == "digitlab" or m.startswith("digitlab.")]


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_package_has_a_layer() -> None:
    packages = {p.relative_to(SRC).parts[0].removesuffix(".py") for p in _modules()}
    assert packages - {"__init__"} <= set(RANK), sorted(packages - set(RANK))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_import_reaches_back_up_the_chain(path: Path) -> None:
    rel = path.relative_to(SRC)
    own = rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "digitlab"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    bad = [f"line {line}: {module}" for line, module in _runtime_imports(tree)
           if RANK.get(_part(module), -1) > RANK[own]]
    assert not bad, f"{rel} ({own}, layer {RANK[own]}) imports later layers: {bad}"
