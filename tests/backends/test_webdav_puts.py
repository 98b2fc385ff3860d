"""A large object is never sent into a WebDAV folder that does not exist yet: such a PUT
is refused (409) after the whole body went over the wire, and then sent again. The
folder is made first (one small MKCOL); small objects still try the PUT first."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.backends.conftest import Backend


@pytest.mark.parametrize("kind", ["webdav-apache", "webdav-wsgidav"])
def test_a_large_put_into_a_new_folder_is_sent_once(
        backends: Callable[[str], Backend], kind: str) -> None:
    store = backends(kind).open()
    seen: list[tuple[str, int, int]] = []
    real = store.session.request  # type: ignore[attr-defined]

    def request(method: str, url: str, **kw):  # type: ignore[no-untyped-def]
        resp = real(method, url, **kw)
        seen.append((method, resp.status_code, len(kw.get("data") or b"")))
        return resp

    store.session.request = request  # type: ignore[attr-defined]
    big = b"x" * (512 * 1024)
    store.put("packs/ab/new-pack", big)
    store.put("packs/ab/second-pack", big)  # the folder is known now: no MKCOL
    store.put("packs/cd/small", b"tiny")  # small: the PUT is tried first
    assert store.get("packs/ab/new-pack") == big
    assert store.get("packs/cd/small") == b"tiny"
    puts = [(status, size) for method, status, size in seen if method == "PUT"]
    assert all(status in (200, 201, 204) for status, size in puts if size > 1024), seen
    assert sum(size for _, size in puts) < 2 * len(big) + 64 * 1024, seen
    mkcols = [m for m in seen if m[0] == "MKCOL"]
    assert 1 <= len(mkcols) <= 4, seen  # packs/ab (and packs/), then packs/cd once
