"""Heavy client libraries are imported only when a URL needs them (design.md, budget)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("s3fs", "botocore", "aiobotocore", "fsspec", "paramiko", "webdav3", "requests")
REPO = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=True)
    return set(done.stdout.split())


def test_store_package_imports_no_network_client(tmp_path: Path) -> None:
    loaded = modules_after(
        "import vaultsync, vaultsync.store, vaultsync.store.url, vaultsync.store.retry\n"
        "from vaultsync.store.url import open_store\n"
        f"s = open_store({str(tmp_path)!r}); s.prepare(); s.put('a', b'1')"
    )
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_each_scheme_imports_only_its_client() -> None:
    loaded = modules_after("from vaultsync.store.url import open_store\n"
                           "open_store('s3://bucket/prefix', {'endpoint': 'http://127.0.0.1:9'})")
    assert "s3fs" in loaded and "paramiko" not in loaded and "webdav3" not in loaded
    loaded = modules_after("from vaultsync.store.url import open_store\n"
                           "open_store('webdav://127.0.0.1:9/x', {})")
    assert "webdav3" in loaded and "s3fs" not in loaded and "paramiko" not in loaded
