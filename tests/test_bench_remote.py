"""benchmarks/bench_remote.py --quick still runs end to end: 200 files, one round of every
step over S3 (SeaweedFS), WebDAV (Apache) and SFTP (OpenSSH), each behind the counting
proxy, with vaultsync, rclone and restic; every second replica compared with the source
(a difference exits 1), and the block written into a copy of docs/benchmarks.md with a
number in every cell. Counts are checked for plausibility, never times. The script starts
its own servers; a missing server or tool (scripts/install-servers.sh) is a failure, not a
skip."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench_remote:begin -->", "<!-- bench_remote:end -->"
BACKENDS = ("S3: SeaweedFS", "WebDAV: Apache mod_dav", "SFTP: OpenSSH sshd")
STEPS = ("initial upload", "clone", "no change", "small change", "second device")
TOOLS = ("vaultsync", "rclone", "restic")
UNITS = {"B": 1, "KiB": 1024, "MiB": 1024 * 1024}
SIZE = re.compile(r"(\d+(?:\.\d)?) (B|KiB|MiB)")
MIB = 1024 * 1024


def size(text: str) -> float:
    m = SIZE.fullmatch(text)
    assert m, text
    return float(m.group(1)) * UNITS[m.group(2)]


def requests(cells: dict[str, str]) -> tuple[int, int]:
    """(up, down) of the requests column ("requests ..." or "SFTP requests ...")."""
    head = next(h for h in cells if h.endswith("requests up / down"))
    up, down = cells[head].split(" / ")
    return int(up), int(down)


def rows(section: str) -> dict[tuple[str, str], dict[str, str]]:
    """(step, tool) -> cells by header, of the one table in `section`."""
    lines = [line for line in section.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True))
        out[(cells["step"], cells["tool"].removesuffix(" (full restore)"))] = cells
    return out


def test_bench_remote_quick_counts_every_tool_on_every_backend(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    original = (ROOT / "docs" / "benchmarks.md").read_text()
    doc.write_text(original)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_remote.py"), "--quick",
         "--out", str(doc)], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    text = doc.read_text()
    assert text[:text.index(BEGIN)] == original[:original.index(BEGIN)]
    assert text[text.index(END):] == original[original.index(END):]
    block = text[text.index(BEGIN):text.index(END)]
    assert "- command: `python benchmarks/bench_remote.py --quick --out " in block
    assert "Problems in this run" not in block
    sections = block.split("#### ")[1:]
    assert [s.splitlines()[0] for s in sections] == [
        "S3: SeaweedFS `weed mini`", "WebDAV: Apache mod_dav", "SFTP: OpenSSH sshd"]
    for section in sections:
        name = section.splitlines()[0]
        table = rows(section)
        assert set(table) == {(s, t) for s in STEPS for t in TOOLS}, name
        for (step, tool), c in table.items():
            where = (name, step, tool)
            assert re.fullmatch(r"\d+\.\d\d", c["wall s"]) and float(c["wall s"]) > 0, where
            up, down = requests(c)
            bytes_up, bytes_down = (size(x) for x in c["bytes up / down"].split(" / "))
            assert up + down > 0 and bytes_up > 0 and bytes_down > 0, where
            assert int(c["conns"]) >= 1, where
            for h in ("wall / rclone", "requests / rclone", "bytes / rclone"):
                if tool == "rclone":
                    assert c[h] == "", where
                else:
                    assert re.fullmatch(r"\d+\.\d\dx", c[h]), (where, h)
            if step == "initial upload":  # the whole vault (~22 MiB, mostly random) goes up
                assert bytes_up >= 20 * MIB and up > 0, where
            if step == "clone":  # and comes down
                assert bytes_down >= 20 * MIB, where
        # vaultsync's own promises, in wire counts
        nochange = table[("no change", "vaultsync")]
        assert requests(nochange)[0] == 0, (name, nochange)  # a no-change sync writes nothing
        assert size(nochange["bytes up / down"].split(" / ")[0]) < 64 * 1024, (name, nochange)
        change = table[("small change", "vaultsync")]
        assert size(change["bytes up / down"].split(" / ")[0]) < 2 * MIB, (name, change)
        rc_change = table[("small change", "rclone")]  # rclone re-sends the whole file
        assert size(rc_change["bytes up / down"].split(" / ")[0]) > 20 * MIB, (name, rc_change)
