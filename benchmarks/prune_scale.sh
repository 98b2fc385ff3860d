#!/usr/bin/env bash
# How prune grows with the vault: N tiny notes in folders of 100 (default 20000), an
# initial sync, 20 syncs of 10 edits each, then `prune --keep-last 3 --grace 0s` (wall time
# and peak RSS), a no-change sync and verify. Results for 20k and 100k notes are in
# docs/benchmarks.md ("Prune at scale").
#   N=100000 bash benchmarks/prune_scale.sh
set -u
V=${VAULTSYNC:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/vaultsync}
N=${N:-20000}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
python3 - "$N" <<'PY'
import os, random, sys
r = random.Random(1)
for i in range(int(sys.argv[1])):
    d = f"V/f{i // 100:03d}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/n{i}.md", "w") as f:
        f.write(f"note {i}\n" + r.randbytes(200).hex())
PY
cd V
"$V" init --remote "$T/R" >/dev/null
/usr/bin/time -f "initial sync %e s" "$V" sync >/dev/null
for r in $(seq 1 20); do
    for _ in $(seq 1 10); do
        i=$((RANDOM % N))
        echo "edit $r" >> "f$(printf %03d $((i / 100)))/n$i.md"
    done
    "$V" sync >/dev/null
done
count() { echo "$(ls "$T/R/snapshots" | wc -l) snapshots, $(find "$T/R/packs" -type f | wc -l) packs, $(ls "$T/R/index" | wc -l) segments, $(du -sb "$T/R" | cut -f1) bytes"; }
echo "before: $(count)"
/usr/bin/time -f "prune %e s, peak RSS %M KiB" "$V" prune --keep-last 3 --grace 0s
echo "after: $(count)"
/usr/bin/time -f "no-change sync after prune %e s" "$V" sync
/usr/bin/time -f "verify %e s" "$V" verify | tail -1
