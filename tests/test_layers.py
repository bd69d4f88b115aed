"""The import direction of DESIGN.md's layout: a lower part never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "hybridrank"

#: Layer of every part of the package; a part may import parts of its own or a lower layer.
LAYERS = {
    "data": 0,
    "evaluate": 0,
    "labels": 1,
    "features": 1,
    "gbdt": 2,
    "neural": 2,
    "ensemble": 2,
    "distributed": 3,
    "tuning": 3,
    "pipelines": 4,
    "serve": 4,
    "cli": 5,
}
#: Same-layer imports that are part of the design (the ensemble builds on both model kinds;
#: the pipelines write serving's click-feature store into a bundle).
ALLOWED_SIDEWAYS = {("ensemble", "gbdt"), ("ensemble", "neural"), ("pipelines", "serve")}
#: Top-level modules every part may use: the schema, the errors, shared internals.
SHARED = {
    "columns", "errors", "_config", "_grouping", "_atomic", "_digest", "_estimator",
    "__init__", "__main__",
}


def _imports() -> list[tuple[str, str, str]]:
    edges = []
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        here = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                bits = target.split(".")
                if bits[0] != "hybridrank" or len(bits) < 2:
                    continue
                there = bits[1]
                if there != here and there not in SHARED:
                    edges.append((f"{rel}:{node.lineno}", here, there))
    return edges


def test_every_part_has_a_layer() -> None:
    parts = {p.name for p in ROOT.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert parts == set(LAYERS), f"parts without a layer: {parts ^ set(LAYERS)}"
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert modules <= SHARED, f"top-level modules outside the shared set: {modules - SHARED}"


@pytest.mark.parametrize("where, here, there", _imports())
def test_import_direction(where: str, here: str, there: str) -> None:
    if here in SHARED and here not in ("__main__",):
        assert there in SHARED, f"{where}: shared module {here} imports the part {there}"
        return
    if there in SHARED or here == "__main__":
        return
    up = LAYERS[there] > LAYERS[here]
    sideways = LAYERS[there] == LAYERS[here] and (here, there) not in ALLOWED_SIDEWAYS
    assert not (up or sideways), (
        f"{where}: {here} (layer {LAYERS[here]}) imports {there} (layer {LAYERS[there]}); "
        "see DESIGN.md's import direction"
    )
