"""The layering rules of STYLE.md, checked on the source tree by parsing imports (no execution)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "asdlab"


def _modules(*relative: str) -> list[Path]:
    found = []
    for rel in relative:
        path = PACKAGE / rel
        found.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else [])
    return found


def _imported_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _offenders(paths: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in paths:
        for name in _imported_names(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE)} imports {name}")
    return bad


def test_numpy_only_packages_do_not_import_torch():
    paths = _modules("metrics", "backends", "pseudo", "report", "embeddings/table.py")
    assert paths, "expected modules to check"
    assert _offenders(paths, ("torch", "lightning")) == []


def test_models_never_see_configs_or_lightning():
    paths = _modules("features", "encoders", "heads")
    assert _offenders(paths, ("asdlab.pipeline", "asdlab.cli", "asdlab.serve", "lightning", "yaml")) == []


def test_nothing_imports_cli_or_serve():
    # __main__.py is `python -m asdlab`: the command line itself, as the `asdlab` script is.
    entry_points = ("cli", "serve", "__main__.py")
    paths = [p for p in _modules(".") if not p.relative_to(PACKAGE).parts[0] in entry_points]
    assert _offenders(paths, ("asdlab.cli", "asdlab.serve")) == []


@pytest.mark.parametrize("lower", ["data", "features", "metrics", "backends"])
def test_lower_stages_do_not_import_higher_ones(lower):
    higher = ("asdlab.pipeline", "asdlab.training", "asdlab.report", "asdlab.detector")
    assert _offenders(_modules(lower), higher) == []
