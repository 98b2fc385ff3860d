"""Every --json document validates against docs/json-schema.json, and is all of stdout."""

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import REPO_ROOT, run_cli

SCHEMA = json.loads((REPO_ROOT / "docs" / "json-schema.json").read_text())
SAMPLE = REPO_ROOT / "fixtures" / "sample-vault"


def check(doc: object, kind: str) -> None:
    jsonschema.validate(doc, {**SCHEMA, "$ref": f"#/$defs/{kind}"})


def run_json(*args: str, cwd: Path) -> object:
    res = run_cli(*args, "--json", cwd=cwd)
    assert res.code in (0, 1), res.err
    return json.loads(res.out)  # fails if anything but one document is on stdout


@pytest.fixture
def two(tmp_path: Path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(SAMPLE, a)
    assert run_cli("init", "--remote", str(tmp_path / "remote"), "--device", "a", cwd=a).code == 0
    check(run_json("sync", cwd=a), "report")
    check(run_json("clone", str(tmp_path / "remote"), str(b), cwd=tmp_path), "report")
    return a, b


def test_every_json_document_matches_the_schema(two: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = two
    (a / "Welcome.md").write_text("a")
    (b / "Welcome.md").write_text("b")
    check(run_json("push", cwd=a), "report")
    doc = run_json("status", cwd=b)
    check(doc, "status")
    assert doc["local"]["changed"] == ["Welcome.md"] and doc["sync_plan"]["downloaded"] == 1
    doc = run_json("sync", cwd=b)
    check(doc, "report")
    assert doc["conflicts"] and doc["exit_code"] == 1
    check(run_json("pull", cwd=a), "report")
    check(run_json("log", cwd=a), "log")
    log = run_json("log", "Welcome.md", cwd=a)
    check(log, "log")
    assert all("file" in line for line in log)  # type: ignore[union-attr]
    check(run_json("verify", cwd=a), "verify")
    doc = run_json("checkout", str(tmp_path / "remote"), str(tmp_path / "co"), cwd=tmp_path)
    check(doc, "report")
    doc = run_json("prune", "--keep-last", "1", "--dry-run", cwd=a)
    check(doc, "prune")
    assert doc["dry_run"] and doc["forgotten"] and doc["record"] is None  # type: ignore[index]
    doc = run_json("prune", "--keep-last", "1", cwd=a)
    check(doc, "prune")
    assert doc["pending"] and doc["record"] == doc["pending"][0]["record"]  # type: ignore[index]
    doc = run_json("prune", "--keep-last", "1", "--grace", "0s", cwd=a)
    check(doc, "prune")
    assert doc["deleted_snapshots"] and not doc["pending"]  # type: ignore[index]


def test_the_schema_rejects_what_it_should() -> None:
    with pytest.raises(jsonschema.ValidationError):
        check({"base": None}, "status")
    with pytest.raises(jsonschema.ValidationError):
        check([{"id": "x"}], "log")


def test_checkout_needs_read_access_only(two: tuple[Path, Path], tmp_path: Path) -> None:
    doc = run_json("checkout", str(tmp_path / "remote"), str(tmp_path / "fixtures"),
                   cwd=tmp_path)
    assert doc["traffic"]["requests_up"] == 0  # type: ignore[index]
    assert not (tmp_path / "fixtures" / ".vaultsync").exists()
