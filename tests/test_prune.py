"""Prune (design.md, "Pruning"): the retention policy, what is always kept, the two
phases and what syncs do while a record is pending. Through the real CLI with a
directory remote, and through the repository API where a race needs exact timing."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import run_cli, tree_state, write
from vaultsync.repository.prune import FEATURE, Pruner
from vaultsync.repository.records import MARKER, PREFIX
from vaultsync.repository.repo import Repository
from vaultsync.repository.retention import NS, Policy, keep, parse_duration
from vaultsync.store.local import LocalStore

DAY = 86_400 * NS


# ---- retention: a pure function ---------------------------------------------------

def test_keep_last_keeps_the_newest() -> None:
    snaps = [(f"{i:064x}", i * NS) for i in range(10)]
    assert set(keep(snaps, Policy(keep_last=3))) == {f"{i:064x}" for i in (7, 8, 9)}


def test_keep_daily_keeps_the_newest_of_each_day() -> None:
    snaps = [(f"{d:02d}{h:062x}", d * DAY + h * 3600 * NS) for d in range(5) for h in range(3)]
    kept = keep(snaps, Policy(keep_daily=3))
    assert set(kept) == {f"{d:02d}{2:062x}" for d in (2, 3, 4)}
    assert set(kept.values()) == {"daily"}


def test_keep_within_counts_from_the_newest_snapshot() -> None:
    snaps = [(f"{i:064x}", i * DAY) for i in range(100)]  # a repository left alone
    assert set(keep(snaps, Policy(keep_within_s=2 * 86_400))) == \
        {f"{i:064x}" for i in (97, 98, 99)}


@given(st.lists(st.tuples(st.integers(0, 2**20), st.integers(0, 400 * 86_400)),
                max_size=40, unique_by=lambda t: t[0]),
       st.integers(0, 5), st.integers(0, 5), st.integers(0, 3), st.integers(0, 3),
       st.randoms())
def test_keep_depends_on_ids_and_times_only(raw: list[tuple[int, int]], last: int, daily: int,
                                            weekly: int, monthly: int,
                                            rnd: random.Random) -> None:
    snaps = [(f"{i:064x}", t * NS) for i, t in raw]
    policy = Policy(keep_last=last, keep_daily=daily, keep_weekly=weekly, keep_monthly=monthly)
    kept = keep(snaps, policy)
    shuffled = list(snaps)
    rnd.shuffle(shuffled)
    assert keep(shuffled, policy) == kept
    if snaps and (last or daily or weekly or monthly):  # the newest is always kept
        assert min(snaps, key=lambda s: (-s[1], s[0]))[0] in kept  # ties: by id
    assert len(kept) <= last + daily + weekly + monthly


@pytest.mark.parametrize(("text", "seconds"), [("0s", 0), ("24h", 86_400), ("1w2d", 9 * 86_400),
                                               ("90m", 5400), ("1Y", 365 * 86_400)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "24", "h", "-1d", "1.5h", "1d x", "999999999y"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


# ---- through the CLI --------------------------------------------------------------

def history(tmp_path: Path, rounds: int = 8) -> tuple[Path, Path, Path]:
    """Two devices, A and B, and `rounds` edits synced both ways."""
    a, remote, b = tmp_path / "A", tmp_path / "R", tmp_path / "B"
    rnd = random.Random(7)
    for i in range(12):
        write(a / f"n{i}.md", rnd.randbytes(6000).hex())
    assert run_cli("init", "--remote", str(remote), "--device", "laptop", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert run_cli("clone", str(remote), str(b), "--device", "desktop").code == 0
    for r in range(rounds):
        write(a / f"n{r % 12}.md", rnd.randbytes(6000).hex())
        write(b / f"sub/b{r}.md", f"round {r}\n")
        assert run_cli("sync", cwd=a).code == 0
        assert run_cli("sync", cwd=b).code == 0
    assert run_cli("sync", cwd=a).code == 0
    return a, remote, b


def files(vault: Path) -> dict[str, bytes]:
    return {k: v[0] for k, v in tree_state(vault).items()}


def prune(vault: Path, *args: str) -> dict[str, object]:
    res = run_cli("prune", *args, "--json", cwd=vault)
    assert res.code == 0, res.out + res.err
    doc = json.loads(res.out)
    assert isinstance(doc, dict)
    return doc


def objects(remote: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (remote / folder).rglob("*") if p.is_file())


def test_prune_keeps_the_heads_and_everything_they_need(tmp_path: Path) -> None:
    a, remote, b = history(tmp_path)
    before = len(objects(remote, "snapshots"))
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    assert doc["deleted_snapshots"] and doc["freed_bytes"] > 0
    assert len(objects(remote, "snapshots")) < before
    assert len(objects(remote, "index")) == 1  # consolidated
    assert run_cli("verify", "--read-data", "100", cwd=a).code == 0
    fresh = tmp_path / "fresh"
    assert run_cli("clone", str(remote), str(fresh)).code == 0
    assert files(fresh) == files(a) == files(b)
    write(b / "n1.md", "after the prune\n")
    assert run_cli("sync", cwd=b).code == 0
    res = run_cli("sync", cwd=a)
    assert res.code == 0 and "0 conflict(s)" in res.out, res.out
    assert files(a) == files(b)
    # the repository says a client that ignores prune records must not write to it
    assert FEATURE in json.loads((remote / "vaultsync.json").read_text())["features"]["mandatory"]


def test_a_pending_record_deletes_nothing_and_a_later_prune_does(tmp_path: Path) -> None:
    a, remote, _ = history(tmp_path)
    before = objects(remote, "packs")
    doc = prune(a, "--keep-last", "1")  # default grace: 24h
    assert doc["record"] and doc["forgotten"] and not doc["deleted_snapshots"]
    assert objects(remote, "packs") == before
    assert (remote / MARKER).is_file() and (remote / PREFIX / str(doc["record"])).is_file()
    doc = prune(a, "--keep-last", "1")  # the record is younger than the grace: waits
    assert not doc["deleted_snapshots"] and len(doc["pending"]) == 1  # type: ignore[arg-type]
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    assert doc["deleted_snapshots"] and not doc["pending"]
    assert not (remote / PREFIX / str(doc["record"])).exists()
    assert run_cli("verify", "--read-data", "100", cwd=a).code == 0


def test_a_sync_during_the_grace_never_reuses_a_named_pack(tmp_path: Path) -> None:
    """B brings back an old version whose chunks live only in packs the pending record
    names; its sync must store them again, so phase 2 can delete those packs."""
    a, remote, b = history(tmp_path)
    old = {k: v for k, v in files(a).items()}
    for r in range(3):
        write(a / "n0.md", f"new {r}\n" * 500)
        assert run_cli("sync", cwd=a).code == 0
    assert run_cli("sync", cwd=b).code == 0
    doc = prune(a, "--keep-last", "1")
    named = set(doc["forgotten"])  # type: ignore[arg-type]
    assert named
    write(b / "n0.md", old["n0.md"])  # that content is in no kept snapshot
    assert run_cli("sync", cwd=b).code == 0
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    assert doc["deleted_packs"]
    assert run_cli("verify", "--read-data", "100", cwd=a).code == 0
    assert run_cli("sync", cwd=a).code == 0
    assert (a / "n0.md").read_bytes() == old["n0.md"]
    fresh = tmp_path / "fresh"
    assert run_cli("clone", str(remote), str(fresh)).code == 0
    assert files(fresh) == files(b)


def test_a_record_that_appears_during_a_sync_is_honoured_at_its_commit(tmp_path: Path) -> None:
    """The race design.md names: a sync read the records (none), then a prune named the
    packs it is about to reuse. Its commit reads the records again and stores those
    blobs once more, so a phase 2 after the grace leaves its snapshot whole."""
    from vaultsync.engine.commit import _away_from_prune

    a, remote, _ = history(tmp_path)
    for r in range(2):
        write(a / "n0.md", f"v{r}\n" * 300)
        assert run_cli("sync", cwd=a).code == 0
    syncing = Repository.open(LocalStore(str(remote)))
    syncing.read_heads()
    assert not syncing.prune_state.pending  # what the slow sync saw when it began
    pruning = Repository.open(LocalStore(str(remote)))
    rep = Pruner(pruning, Policy(keep_last=1), 3600, device="b" * 32).run()
    assert rep.record is not None
    condemned = pruning.prune_state.condemned_packs
    reused = sorted(bid for bid, ref in syncing.index.items() if ref.pack in condemned)
    assert reused and syncing.has_blob(reused[0])  # the stale view would reuse it
    writer = syncing.writer()
    from vaultsync.model import Entry
    chunks = tuple(b for b in reused if syncing.index[b].type == 0)
    assert chunks
    entry = Entry(name="x.md", chunks=chunks)
    again = _away_from_prune(syncing, writer, lambda: [entry], {}, {}, lambda cids: {})
    writer.commit_index()
    assert again == len(chunks)  # copied out of the named packs
    assert all(syncing.index[bid].pack not in condemned for bid in chunks)


def test_prune_keeps_the_merge_base_of_diverged_heads(tmp_path: Path) -> None:
    """A and B commit at the same moment (each reads the heads before the other writes):
    two heads whose nearest common ancestor the policy would forget. It stays, so their
    next syncs merge against it: different files edited, no conflict."""
    a, remote, b = history(tmp_path, rounds=3)
    write(a / "n1.md", "from A\n")
    write(b / "n2.md", "from B\n")
    before = tmp_path / "R-before"
    shutil.copytree(remote, before)
    assert run_cli("sync", cwd=a).code == 0
    mine = tmp_path / "R-A"
    remote.rename(mine)
    before.rename(remote)
    assert run_cli("sync", cwd=b).code == 0
    for src in remote.rglob("*"):
        dst = mine / src.relative_to(remote)
        if src.is_file() and (not dst.exists() or src.parent.name == "heads"
                              and src.name != _device(a)):
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    shutil.rmtree(remote)
    mine.rename(remote)
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    reasons = [k["reason"] for k in doc["kept"]]  # type: ignore[union-attr]
    assert reasons.count("head") == 2 and "merge base" in reasons, doc["kept"]
    for vault in (a, b):
        res = run_cli("sync", cwd=vault)
        assert res.code == 0 and "0 conflict(s)" in res.out, res.out + res.err
    assert files(a) == files(b)
    assert (a / "n1.md").read_text() == "from A\n" and (a / "n2.md").read_text() == "from B\n"


def _device(vault: Path) -> str:
    import tomllib

    return str(tomllib.loads((vault / ".vaultsync/config.toml").read_text())["device_id"])


def test_log_and_restore_say_when_a_version_was_pruned(tmp_path: Path) -> None:
    a, _, _ = history(tmp_path)
    prune(a, "--keep-last", "1", "--grace", "0s")
    res = run_cli("log", cwd=a)
    assert res.code == 0 and "older history was pruned" in res.out
    res = run_cli("restore", "n0.md", "--at", "2001-01-01T00:00", cwd=a)
    assert res.code == 2 and "pruned" in res.err, res.err
    gone = run_cli("log", "--json", cwd=a)
    kept = json.loads(gone.out)
    forgotten = [p for line in kept for p in line["parents"]
                 if p not in {line["id"] for line in kept}]
    assert forgotten  # the kept snapshot names its deleted parent
    res = run_cli("restore", "n0.md", "--at", forgotten[0][:12], cwd=a)
    assert res.code == 2 and "was pruned" in res.err, res.err


def test_a_bare_prune_takes_its_policy_from_the_config(tmp_path: Path) -> None:
    a, remote, _ = history(tmp_path, rounds=3)
    doc = prune(a, "--dry-run")
    assert "no retention policy" in " ".join(doc["notices"])  # type: ignore[arg-type]
    assert not doc["forgotten"]
    config = a / ".vaultsync/config.toml"
    config.write_text(config.read_text() + '\n[prune]\nkeep_last = 1\ngrace = "0s"\n')
    doc = prune(a)
    assert doc["grace_s"] == 0 and doc["deleted_snapshots"] and doc["policy"] == "last 1"
    config.write_text(config.read_text() + 'keep_hourly = 3\n')
    res = run_cli("prune", cwd=a)
    assert res.code == 2 and "keep_hourly" in res.err and "Traceback" not in res.err


@pytest.mark.parametrize("args", [["--grace", "soon"], ["--keep-within", "1.5d"],
                                  ["--keep-last", "-1"]])
def test_bad_prune_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    a = tmp_path / "A"
    write(a / "x.md", "x")
    assert run_cli("init", "--remote", str(tmp_path / "R"), cwd=a).code == 0
    res = run_cli("prune", *args, cwd=a)
    assert res.code == 2 and "Traceback" not in res.err, res.err


def test_a_malformed_record_stops_a_sync_with_exit_5(tmp_path: Path) -> None:
    a, remote, _ = history(tmp_path, rounds=2)
    doc = prune(a, "--keep-last", "1")
    (remote / PREFIX / str(doc["record"])).write_bytes(b"\x00{not json")
    res = run_cli("sync", cwd=a)  # its verified copy from the local cache stands in
    assert res.code == 0, res.err
    res = run_cli("clone", str(remote), str(tmp_path / "C"))  # no copy to stand in
    assert res.code == 5 and "prune record" in res.err and "Traceback" not in res.err, res.err


def test_an_unpublished_record_is_dropped_never_collected(tmp_path: Path) -> None:
    """A prune killed between writing its record and naming it in the marker: no sync
    honoured that record, so the next prune deletes it instead of collecting it."""
    a, remote, _ = history(tmp_path, rounds=3)
    doc = prune(a, "--keep-last", "1")
    (remote / MARKER).unlink()
    packs = objects(remote, "packs")
    doc = prune(a, "--keep-last", "1", "--grace", "0s", "--dry-run")
    assert not doc["pending"]
    assert objects(remote, "packs") == packs
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    assert doc["deleted_snapshots"]
    assert run_cli("verify", "--read-data", "100", cwd=a).code == 0


def test_a_run_that_read_the_index_before_phase_2_reads_the_copied_blobs(
        tmp_path: Path) -> None:
    """A download that started before a prune deleted a pack (its live blobs copied into
    a new one) finds them through the new index instead of failing."""
    a, remote, _ = history(tmp_path)
    reader = Repository.open(LocalStore(str(remote)))
    heads = reader.read_heads()
    from vaultsync.model import flatten
    wanted = sorted({c for h in heads.values()
                     for e in flatten(reader.get_snapshot(h).tree, reader.get_tree).values()
                     for c in e.chunks})
    before = {bid: reader.index[bid].pack for bid in wanted}
    rep = Pruner(Repository.open(LocalStore(str(remote))), Policy(keep_last=1), 0,
                 device="b" * 32).run()
    assert rep.repacked_blobs and rep.deleted_packs
    moved = [bid for bid in wanted
             if not (remote / "packs" / before[bid][:2] / before[bid]).exists()]
    assert moved  # some blobs this run wants were in packs that are gone now
    got = dict(reader.read_blobs(wanted))
    assert set(got) == set(wanted)
    assert reader.read_blob(moved[0]) == got[moved[0]]


def test_a_head_another_head_contains_stays_contained(tmp_path: Path) -> None:
    """B synced once and went quiet: its head is an old ancestor of A's, with the history
    between them forgotten. Grafts keep the containment, so neither device sees B's old
    head as news: no conflict copy of an old version, B fast-forwards."""
    a, remote, b = history(tmp_path, rounds=2)
    for r in range(6):
        write(a / "n3.md", f"A's edit {r}\n" * 50)
        assert run_cli("sync", cwd=a).code == 0
    doc = prune(a, "--keep-last", "1", "--grace", "0s")
    assert len(doc["kept"]) == 2 and len(doc["deleted_snapshots"]) >= 6  # type: ignore[arg-type]
    write(a / "n4.md", "one more\n")
    res = run_cli("sync", cwd=a)
    assert res.code == 0 and "0 conflict(s)" in res.out and "0 down" in res.out, res.out
    res = run_cli("sync", cwd=b)
    assert res.code == 0 and "0 conflict(s)" in res.out, res.out
    assert files(a) == files(b) and not [k for k in files(b) if "conflict" in k]
    assert run_cli("verify", "--read-data", "100", cwd=b).code == 0


def test_a_blob_a_prune_deleted_while_a_sync_ran_is_stored_again_at_its_commit(
        tmp_path: Path) -> None:
    """A sync reuses a blob that nothing kept names (the user brought back an old
    version); meanwhile a prune with no grace deletes its pack. The commit sees the
    marker's new generation, reads the index again and stores the blob from the vault,
    so the snapshot never names a deleted blob."""
    from vaultsync.chunking import Chunker
    from vaultsync.engine.commit import _away_from_prune
    from vaultsync.engine.scan import ChunkLocation
    from vaultsync.model import Entry

    a, remote, _ = history(tmp_path, rounds=2)
    old = random.Random(3).randbytes(20_000).hex().encode()
    write(a / "brief.md", old)  # in one snapshot of A's only: dead once forgotten
    assert run_cli("sync", cwd=a).code == 0
    (a / "brief.md").unlink()
    assert run_cli("sync", cwd=a).code == 0
    syncing = Repository.open(LocalStore(str(remote)))
    syncing.read_heads()
    chunker = Chunker(syncing.format.chunker, syncing.hasher)
    copy = write(tmp_path / "brief-again.md", old)
    with open(copy, "rb") as f:
        located = {c.id: ChunkLocation(str(copy), c.offset, c.length) for c in chunker.chunks(f)}
    assert all(syncing.has_blob(cid) for cid in located)  # reusable when the sync began
    writer = syncing.writer()
    entry = Entry(name="brief.md", size=len(old), chunks=tuple(located))
    from vaultsync.engine.transfer import upload
    assert upload(syncing, writer, [entry], located, {}, lambda cids: {}) == 0  # reused
    rep = Pruner(Repository.open(LocalStore(str(remote))), Policy(keep_last=1), 0,
                 device="b" * 32).run()
    assert rep.deleted_packs
    gone = [c for c in located if not syncing.store.stat(
        f"packs/{syncing.index[c].pack[:2]}/{syncing.index[c].pack}")]
    assert gone  # the stale view names packs that are gone now
    again = _away_from_prune(syncing, writer, lambda: [entry], {}, located,
                             lambda cids: {})
    writer.commit_index()
    assert again == len(gone)
    for cid in located:
        ref = syncing.index[cid]
        assert syncing.store.stat(f"packs/{ref.pack[:2]}/{ref.pack}") is not None
        assert syncing.read_blob(cid)
