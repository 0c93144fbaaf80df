"""Every name a script in benchmarks/ imports from the package exists (the scripts run by hand and
import inside their functions, so a renamed function would only show when someone runs them:
bench_large.py imported ``fisher.covariance.variance`` for a while after it became
``network_variance``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = sorted((Path(__file__).resolve().parent.parent / "benchmarks").glob("*.py"))


def _package_imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` for every ``from fisher_verify… import name`` anywhere in the file, and
    ``(module, "")`` for every ``import fisher_verify…``."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.split(".")[0] == "fisher_verify":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names
                      if alias.name.split(".")[0] == "fisher_verify"]
    return found


def test_the_scan_sees_the_scripts_and_a_missing_name() -> None:
    assert len(BENCHMARKS) >= 10
    assert ("fisher_verify._src.fisher.covariance", "network_variance") in _package_imports(
        next(p for p in BENCHMARKS if p.name == "bench_large.py"))
    assert _exists("fisher_verify._src.fisher.covariance", "network_variance")
    assert not _exists("fisher_verify._src.fisher.covariance", "variance")  # the old name
    assert _exists("fisher_verify._src", "models")  # a submodule


def _exists(module: str, name: str) -> bool:
    mod = importlib.import_module(module)
    if not name or hasattr(mod, name):
        return True
    return hasattr(mod, "__path__") and importlib.util.find_spec(f"{module}.{name}") is not None


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_every_imported_name_exists(path: Path) -> None:
    for module, name in _package_imports(path):
        assert _exists(module, name), f"{path.name}: from {module} import {name}: no such name"
