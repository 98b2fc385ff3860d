"""benchmarks/bench_local.py --quick still runs end to end: 300 files, one round of every
step with vaultsync, rsync, Unison and rclone, every second replica compared with the
source, and its sub-block written into a copy of docs/benchmarks.md with a number in every
cell. Nothing about time is asserted; rsync, unison, rclone and GNU time come from
scripts/install-servers.sh, and a missing one is a failure, not a skip."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- bench_local:begin -->", "<!-- bench_local:end -->"
STEPS = ("initial upload", "no change", "small change", "second device", "clone")
TOOLS = ("vaultsync", "rsync", "unison", "rclone")
SECONDS = re.compile(r"\d+\.\d{3}")
RATIO = re.compile(r"\d+\.\d\dx")
SIZE = re.compile(r"\d+(\.\d)? (B|KiB|MiB)")


def table(lines: list[str], head: str) -> tuple[list[str], dict[str, list[str]]]:
    """The header cells and rows (by first cell, without its "(n=...)") of the table
    whose header starts with `head`."""
    start = next(i for i, line in enumerate(lines) if line.startswith(head))
    rows = {}
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[re.sub(r" \(n=\d+\)$", "", cells[0])] = cells
    return [c.strip() for c in lines[start].strip("|").split("|")], rows


def test_bench_local_quick_writes_a_row_per_step_and_a_number_per_tool(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    original = (ROOT / "docs" / "benchmarks.md").read_text()
    doc.write_text(original)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_local.py"), "--quick",
         "--out", str(doc)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    text = doc.read_text()
    # only the block changed; other sizes' sub-blocks in it are kept
    assert text[:text.index(BEGIN)] == original[:original.index(BEGIN)]
    assert text[text.index(END):] == original[original.index(END):]
    block = text[text.index(BEGIN):text.index(END)]
    for key in re.findall(r"<!-- bench_local run (\S+) -->", original):
        assert block.count(f"<!-- bench_local run {key} -->") == 1, key
    sub = block[block.index("<!-- bench_local run files=300 -->"):
                block.index("<!-- bench_local run files=300 end -->")]
    assert "- command: `python benchmarks/bench_local.py --quick --out " in sub
    lines = sub.splitlines()

    head, rows = table(lines, "| step | vaultsync s")
    assert set(rows) == set(STEPS)
    for step, cells in rows.items():
        by = dict(zip(head, cells, strict=True))
        for tool in TOOLS:
            assert SECONDS.fullmatch(by[f"{tool} s"]), (step, tool, by)
            assert float(by[f"{tool} s"]) > 0
        for peer in TOOLS[1:]:
            assert RATIO.fullmatch(by[f"vs/{peer}"]), (step, peer, by)
        assert SIZE.fullmatch(by["vs peak RSS"]), by
        assert by["met"] in ("yes", "**no**") and by["RSS < 150 MiB"] in ("yes", "**no**")

    head, rows = table(lines, "| step | vs in-process s")
    assert set(rows) == set(STEPS)
    for step, cells in rows.items():
        by = dict(zip(head, cells, strict=True))
        assert SECONDS.fullmatch(by["vs in-process s"]), (step, by)
        for peer in TOOLS[1:]:
            assert SIZE.fullmatch(by[f"{peer} peak RSS"]), (step, peer, by)
    assert rows["small change"][2] == "11 / 0 / 100"  # 10 notes + the attachment; 100 moved
    assert rows["second device"][2] == "0 / 11 / 100"
