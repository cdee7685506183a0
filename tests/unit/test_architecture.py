"""The house rules, read from the source: imports go down the layers, the lab stays out of the worker, functions
stay short enough to read."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Bottom to top: a package may import only the packages before it (and itself).
LAYERS = ("schemas", "streams", "scorers", "dispatch", "ops", "deploy", "bench")
PRODUCT = LAYERS[:-1]
MAX_FUNCTION_LINES = 120


def _modules(packages: tuple[str, ...]) -> list[Path]:
    return sorted(p for pkg in packages for p in (ROOT / pkg).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file, at any depth (imports inside functions count)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return out


def upward_imports(packages: tuple[str, ...] = LAYERS) -> list[str]:
    """Every import that goes up the layers, as `file:line: module`."""
    bad = []
    for path in _modules(packages):
        own = path.relative_to(ROOT).parts[0]
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in LAYERS and LAYERS.index(top) > LAYERS.index(own):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    return sorted(set(bad))


def lab_imports_from_runtime() -> list[str]:
    """Imports of the offline lab (`scorers.lab`) from what runs in a worker below `deploy/`."""
    bad = []
    for path in _modules(("schemas", "streams", "scorers", "dispatch", "ops")):
        rel = path.relative_to(ROOT)
        if rel.parts[:2] == ("scorers", "lab"):
            continue
        bad += [f"{rel}:{line}: {m}" for line, m in _imports(path) if m == "scorers.lab" or m.startswith("scorers.lab.")]
    return sorted(set(bad))


def long_functions(packages: tuple[str, ...] = PRODUCT, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """Product functions longer than `limit` lines, as `file:line name (n lines)`."""
    out = []
    for path in _modules(packages):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = (node.end_lineno or node.lineno) - node.lineno + 1
                if n > limit:
                    out.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    return out


def test_no_import_goes_up_the_layers() -> None:
    assert upward_imports() == []


def test_the_worker_runtime_does_not_import_the_offline_lab() -> None:
    assert lab_imports_from_runtime() == []


def test_no_product_function_is_longer_than_120_lines() -> None:
    assert long_functions() == []


@pytest.mark.parametrize("source, own, expected", [
    ("from deploy.config import Settings\n", "streams", ["deploy.config", "deploy.config.Settings"]),
    ("def f():\n    import ops.metrics\n", "scorers", ["ops.metrics"]),
    ("from schemas.records import Subject\n", "streams", []),
    ("from .x import y\n", "streams", []),
])
def test_the_rule_sees_imports_anywhere_in_a_module(tmp_path: Path, source: str, own: str, expected: list[str]) -> None:
    # the checks above pass only if they can fail: a module with an upward import inside a function is caught
    path = tmp_path / own / "m.py"
    path.parent.mkdir()
    path.write_text(source)
    seen = [m for _, m in _imports(path) if LAYERS.index(m.split(".")[0]) > LAYERS.index(own)]
    assert seen == expected
