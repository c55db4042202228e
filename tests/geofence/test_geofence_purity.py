"""geofence/ imports only the standard library, numpy and shapely."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "geofence"
ALLOWED_THIRD_PARTY = {"numpy", "shapely"}
MODULES = sorted(PKG.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import inside the package
                names.add("geofence")
            elif node.module:
                names.add(node.module.split(".")[0])
    return names


def test_package_has_modules() -> None:
    assert {p.name for p in MODULES} >= {
        "codes.py",
        "coords.py",
        "fences.py",
        "regions.py",
        "tracking.py",
    }


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_are_pure(path: Path) -> None:
    allowed = set(sys.stdlib_module_names) | ALLOWED_THIRD_PARTY | {"geofence", "__future__"}
    bad = _imports(path) - allowed
    assert not bad, f"{path.name} imports {sorted(bad)}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_uses_future_annotations(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.ImportFrom) and n.module == "__future__" for n in tree.body), (
        path.name
    )
