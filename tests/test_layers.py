"""The floors of the code base (README, "Layout"): a package imports only packages on lower
floors, the pure floors import only the standard library and the few libraries named here, and
no two modules import each other, directly or around a circle. Imports inside functions count."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# package -> floor; a package may import packages on lower floors only
FLOORS = {
    "config": 0,  # settings and topic names
    "gm": 0,  # SM2/SM3/SM4
    "geofence": 0,  # fences, regions, tracking (pure geometry)
    "wire": 1,  # message formats and the typed records they become
    "categories": 2,  # practice records' text categories: jieba, scikit-learn, offline
    "rules": 2,  # the domain: engineer and device rules, attendance, evidence, credit
    "store": 3,  # PostGIS: models, queries, retries
    "attachments": 3,  # practice records' files: what they may be, kept by their SM3
    "devices": 4,  # identities: broker accounts, phone credentials, the directory
    "ingest": 5,  # the MQTT bridge and the HTTP ingest: validate, sign-check, hand to Kafka
    "streams": 5,  # the Faust worker: agents that run the rules and write the store
    "live_api": 6,  # FastAPI: registry, facts, live WebSocket
    "stack": 7,  # the processes: services, supervision, `up`
    "simulators": 8,  # scenarios, replay, score
    "commands": 9,  # the `sitewatch` command line
    "measure": 10,  # benchmarks, load generators, soak, fault injection: nothing imports them
}

# the pure floors: the standard library, their own package, lower pure packages and these
PURE_THIRD_PARTY = {
    "config": {"pydantic", "pydantic_settings"},
    "gm": {"gmssl_pyx", "orjson"},
    "geofence": {"numpy", "shapely"},
    "wire": {"orjson"},
    "rules": {"numpy", "shapely"},
    "categories": {"jieba", "sklearn"},
}


def _packages() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("*/__init__.py") if p.parent.name != "tests")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in _packages():
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


def _imported(path: Path) -> Iterator[str]:
    """Every module name an import statement of the file names (absolute imports; the code
    base has no relative ones), with `from a import b` also giving `a.b`."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


MODULES = _modules()


def test_every_package_has_a_floor() -> None:
    assert set(_packages()) == set(FLOORS)


@pytest.mark.parametrize("package", sorted(FLOORS))
def test_a_package_imports_only_lower_floors(package: str) -> None:
    wrong = set()
    for name, path in MODULES.items():
        if name.split(".")[0] != package:
            continue
        for target in _imported(path):
            top = target.split(".")[0]
            if top in FLOORS and top != package and FLOORS[top] >= FLOORS[package]:
                wrong.add(f"{path.relative_to(ROOT)} imports {target} (floor {FLOORS[top]})")
    assert not wrong, f"{package} is on floor {FLOORS[package]}:\n" + "\n".join(sorted(wrong))


@pytest.mark.parametrize("package", sorted(PURE_THIRD_PARTY))
def test_the_pure_floors_import_no_io_library(package: str) -> None:
    allowed = set(sys.stdlib_module_names) | {"__future__"} | PURE_THIRD_PARTY[package]
    allowed |= {p for p in PURE_THIRD_PARTY if FLOORS[p] <= FLOORS[package]}
    bad = set()
    for name, path in MODULES.items():
        if name.split(".")[0] == package:
            bad |= {
                f"{path.relative_to(ROOT)}: {t}"
                for t in _imported(path)
                if t.split(".")[0] not in allowed
            }
    assert not bad, sorted(bad)


def test_no_import_cycle_between_modules() -> None:
    graph = {
        name: {t for t in _imported(path) if t in MODULES and t != name}
        for name, path in MODULES.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, cycles


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from store import db\n")
    assert "store.db" in set(_imported(module))


def test_every_package_is_installed() -> None:
    """pyproject's package list names every package: an editable install maps only those."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    assert {p.rstrip("*") for p in include} >= set(_packages())


def test_no_module_over_500_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    }
    assert not long, long
