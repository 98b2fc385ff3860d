"""The layers (design: cli -> engine -> repository -> store, a pure model and a pure
reconcile core), checked on every module's imports, top-level and deferred alike."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "vaultsync"

# what each layer may import from vaultsync itself (its own modules always)
ALLOWED = {
    "model": {"vaultsync.errors"},
    "lineage": {"vaultsync.model"},
    "reconcile": {"vaultsync.model"},
    "store": {"vaultsync.errors", "vaultsync.fsutil"},
    "repository": {"vaultsync.errors", "vaultsync.model", "vaultsync.lineage", "vaultsync.store",
                   "vaultsync.codec", "vaultsync.chunking", "vaultsync.fsutil"},
    "engine": {"vaultsync.errors", "vaultsync.model", "vaultsync.lineage", "vaultsync.store",
               "vaultsync.repository", "vaultsync.reconcile", "vaultsync.codec",
               "vaultsync.chunking", "vaultsync.fsutil"},
}
TERMINAL = {"rich", "typer", "click"}  # only the CLI layer talks to the terminal


def _layer(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names if node.module == "vaultsync"]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"{path}: relative import; use vaultsync.* names")
    return out


MODULES = sorted(p for p in PKG.rglob("*.py") if _layer(p) in ALLOWED)


def _owner(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PKG)))
def test_a_module_imports_only_its_own_layer_and_those_below(path: Path) -> None:
    layer = _layer(path)
    own = f"vaultsync.{layer}"
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in TERMINAL, f"{path.name} imports {name}: the core never prints"
        if top != "vaultsync" or name == "vaultsync":
            continue
        owner = _owner(name)
        assert owner == own or owner in ALLOWED[layer], (
            f"{path.relative_to(PKG)} imports {name}, outside layer {layer!r}")


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself: a reconcile module reaching into the engine is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from vaultsync.engine.scan import Scanner\nimport os\n")
    names = _imports(bad)
    assert "vaultsync.engine.scan" in names
    assert _owner("vaultsync.engine.scan") not in ALLOWED["reconcile"]


def test_the_reconcile_core_is_its_own_package() -> None:
    names = {p.stem for p in (PKG / "reconcile").glob("*.py")}
    assert {"merge", "renames", "placement", "conflicts", "overlay", "plan"} <= names


def test_every_command_opens_its_repository_through_one_function() -> None:
    """`engine.remote.open_repository` is the one place a URL becomes a repository."""
    for path in (PKG / "engine").glob("*.py"):
        if path.name == "remote.py":
            continue
        text = path.read_text()
        for call in ("Repository.open(", "Repository.create(", "open_store(", "open_remote("):
            assert call not in text, f"{path.name} calls {call}: use open_repository"
