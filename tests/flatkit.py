"""Small builders for merge tests: readable Flats in, readable views out."""

from __future__ import annotations

import hashlib

from vaultsync.model import DIR, FILE, Entry, Flat, nfc

_TEXTS: dict[str, str] = {}
DAY = 86_400 * 10**9
T0 = 1_795_000_000 * 10**9  # 2026-11-18, a round base time


def cid(text: str) -> str:
    digest = hashlib.sha256(text.encode()).hexdigest()
    _TEXTS[digest] = text
    return digest


def F(text: str, t: int = 0, dev: str = "base", x: bool = False, name: str = "") -> Entry:
    """A file entry (name filled in by `tree`): `t` seconds after T0, by device `dev`."""
    return Entry(
        name=name,
        kind=FILE,
        mode=0o755 if x else 0o644,
        size=len(text.encode()),
        mtime_ns=T0 + t * 10**9,
        author=dev,
        chunks=(cid(text),) if text else (),
    )


def D(name: str = "") -> Entry:
    return Entry(name=name, kind=DIR, mode=0o755)


def tree(spec: dict[str, Entry | str | None]) -> Flat:
    """Paths (as spelled on disk) to entries; a str is a file's text, a trailing / or None
    a folder. Missing parent folders are added."""
    out: Flat = {}
    for path, value in spec.items():
        clean = path.rstrip("/")
        parts = clean.split("/")
        for i in range(1, len(parts)):
            key = nfc("/".join(parts[:i]))
            out.setdefault(key, D(parts[i - 1]))
        if path.endswith("/") or value is None:
            entry = D(parts[-1])
        elif isinstance(value, str):
            entry = F(value, name=parts[-1])
        else:
            entry = Entry(**{**_fields(value), "name": value.name or parts[-1]})
        out[nfc(clean)] = entry
    return out


def _fields(entry: Entry) -> dict:
    return {s: getattr(entry, s) for s in Entry.__slots__}


def text(entry: Entry) -> str:
    return "".join(_TEXTS[c] for c in entry.chunks)


def view(flat: Flat) -> dict[str, str | None]:
    """key -> text for files, key + '/' -> None for folders."""
    return {(k + "/" if e.is_dir else k): (None if e.is_dir else text(e)) for k, e in flat.items()}


def files(flat: Flat) -> dict[str, str]:
    return {k: text(e) for k, e in flat.items() if not e.is_dir}
