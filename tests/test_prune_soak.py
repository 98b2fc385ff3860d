"""Prune beside syncs: devices edit, add, delete and rename notes and sync at the same
time while another vault prunes the same repository over and over (both phases: the
grace is short and the pruner sleeps between runs), then everything converges and no
version is lost; and a device away across two prunes comes back with nothing lost.

What "nothing lost" means here is `tests.versions.Versions`: every content a user wrote
is, after convergence, in some file of the vault (at its path, moved, or in a conflict
copy) unless a device replaced or deleted it having seen exactly that content. Knobs:
VAULTSYNC_PRUNE_SOAK_ROUNDS (edit-and-sync rounds per device, default 6),
VAULTSYNC_PRUNE_SOAK_GRACE (the prunes' --grace, default 1s),
VAULTSYNC_PRUNE_SOAK_SEED (the edits' seed, default 1)."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

from tests.conftest import run_cli, tree_state
from tests.prune_kit import cli_json, files, live, remote_counts, remote_heads
from tests.versions import Versions

ROUNDS = int(os.environ.get("VAULTSYNC_PRUNE_SOAK_ROUNDS", "6"))
GRACE = os.environ.get("VAULTSYNC_PRUNE_SOAK_GRACE", "1s")
SEED = int(os.environ.get("VAULTSYNC_PRUNE_SOAK_SEED", "1"))
FOLDERS = ("d0", "d1", "d2/sub")


class Writer:
    """A device's user: random edits, adds, deletes and renames of its vault, written
    through the Versions bookkeeping. New contents often extend an earlier content (a
    note grown by a line), so syncs reuse chunks that may sit in packs a prune named."""

    def __init__(self, v: Versions, lock: threading.Lock, rng: random.Random) -> None:
        self.v, self.lock, self.rng = v, lock, rng
        self.pool: list[bytes] = []
        self.count = 0

    def content(self, tag: str) -> bytes:
        rng = self.rng
        self.count += 1
        if self.pool and rng.random() < 0.6:
            body = rng.choice(self.pool)
        else:
            body = rng.randbytes(rng.randrange(500, 12000)).hex().encode()
        data = body + f"\n{tag} #{self.count}\n".encode()
        self.pool.append(data)
        return data

    def step(self, vault: Path, who: str, tag: str) -> list[str]:
        """One to three random actions; returns what they were."""
        rng, done = self.rng, []
        with self.lock:
            for _ in range(rng.randrange(1, 4)):
                present = sorted(files(vault))
                action = rng.choices(("edit", "add", "delete", "rename"), (4, 3, 1, 2))[0]
                if action == "edit" and present:
                    rel = rng.choice(present)
                elif action == "delete" and len(present) > 10:
                    rel = rng.choice(present)
                    self.v.delete(vault / rel, who)
                    done.append(f"delete {rel}")
                    continue
                elif action == "rename" and present:
                    src = rng.choice(present)
                    self.count += 1
                    dst = f"{rng.choice(FOLDERS)}/{who}-moved-{self.count}.md"
                    self.v.rename(vault / src, vault / dst, who)
                    done.append(f"rename {src} -> {dst}")
                    continue
                else:  # an add, at a name another device may add too
                    rel = f"{rng.choice(FOLDERS)}/n{rng.randrange(12)}.md"
                self.v.write(vault, rel, self.content(f"{who} {tag}"), time.time_ns(), who)
                done.append(f"write {rel}")
        return done


def make_devices(tmp_path: Path, names: tuple[str, ...], v: Versions,
                 writer: Writer) -> tuple[Path, dict[str, Path]]:
    remote = tmp_path / "remote"
    first = tmp_path / names[0]
    first.mkdir()
    for i in range(14):
        v.write(first, f"{FOLDERS[i % 3]}/n{i}.md", writer.content("seed"), time.time_ns(),
                names[0])
    assert run_cli("init", "--remote", str(remote), "--device", names[0], cwd=first).code == 0
    assert run_cli("sync", cwd=first).code == 0
    vaults = {names[0]: first}
    for name in names[1:]:
        vaults[name] = tmp_path / name
        assert run_cli("clone", str(remote), str(vaults[name]), "--device", name).code == 0
    return remote, vaults


def converge(vaults: dict[str, Path], passes: int = 5) -> dict[str, str]:
    """Sync every device in turn until a whole pass is up to date and all vaults are
    equal; returns each device's base snapshot."""
    bases: dict[str, str] = {}
    for _ in range(passes):
        quiet = True
        for name, vault in vaults.items():
            res = run_cli("sync", "--json", cwd=vault)
            if res.code not in (0, 1):  # is it the repository, or this vault?
                check = run_cli("verify", "--read-data", "100", cwd=vault)
                raise AssertionError(f"{name}: sync exit {res.code}: {res.err}; verify "
                                     f"exit {check.code}: {check.out}{check.err}")
            doc = json.loads(res.out)
            bases[name] = doc["snapshot"]
            quiet = quiet and doc["up_to_date"]
        states = [tree_state(vault) for vault in vaults.values()]
        if quiet and all(s == states[0] for s in states):
            return bases
    raise AssertionError(f"no convergence after {passes} passes: {bases}")


def test_syncs_beside_repeated_prunes_converge_and_lose_nothing(tmp_path: Path) -> None:
    v, lock = Versions(), threading.Lock()
    names = ("a", "b", "c")
    writer = Writer(v, lock, random.Random(SEED))
    remote, vaults = make_devices(tmp_path, names, v, writer)
    pruner = tmp_path / "p"  # prunes from a vault of its own (a vault's lock is its own)
    assert run_cli("clone", str(remote), str(pruner), "--device", "p").code == 0

    states: dict[str, dict[str, tuple[bytes, int, bool]]] = {}  # snapshot -> files there
    errors: list[str] = []
    log: list[str] = []
    stop = threading.Event()
    prunes: list[dict] = []  # type: ignore[type-arg]

    def seen(sid: str, vault: Path) -> None:
        state = tree_state(vault)
        with lock:
            if sid in states and states[sid] != state:
                errors.append(f"two vaults at snapshot {sid[:12]} differ")
            states[sid] = state

    def phase_two_ran() -> bool:
        return any(p["deleted_snapshots"] or p["deleted_packs"] for p in list(prunes))

    def device(name: str, rng: random.Random) -> None:
        vault = vaults[name]
        try:
            # ROUNDS rounds, then on (at most 4 x ROUNDS more) until a prune has run its
            # phase 2 beside them: fast syncs must not end the soak before one could
            for r in range(ROUNDS * 5):
                if r >= ROUNDS and phase_two_ran():
                    break
                log.append(f"{name} round {r}: {writer.step(vault, name, f'round {r}')}")
                res = run_cli("sync", "--json", cwd=vault)
                if res.code not in (0, 1):
                    errors.append(f"{name} round {r}: sync exit {res.code}: {res.err}")
                    return
                seen(json.loads(res.out)["snapshot"], vault)
                time.sleep(rng.uniform(0, 0.3))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(f"{name}: {exc!r}")

    def prune_loop(rng: random.Random) -> None:
        try:
            for _ in range(200):  # bounded; the devices' end stops it first
                if stop.wait(rng.uniform(0.3, 1.2)):
                    return
                if rng.random() < 0.3:  # the pruner's own base moves on too
                    res = run_cli("sync", "--json", cwd=pruner)
                    if res.code not in (0, 1):
                        errors.append(f"the pruner's sync: exit {res.code}: {res.err}")
                        return
                    seen(json.loads(res.out)["snapshot"], pruner)
                res = run_cli("prune", "--keep-last", "2", "--grace", GRACE, "--json",
                              cwd=pruner)
                if res.code != 0:
                    errors.append(f"prune exit {res.code}: {res.out} {res.err}")
                    return
                prunes.append(json.loads(res.out))
        except Exception as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(f"pruner: {exc!r}")

    threads = [threading.Thread(target=device, args=(n, random.Random(SEED * 10 + i)))
               for i, n in enumerate(names)]
    prune_thread = threading.Thread(target=prune_loop, args=(random.Random(SEED),))
    started = time.monotonic()
    for t in (*threads, prune_thread):
        t.start()
    for t in threads:
        t.join(timeout=600)
    stop.set()
    prune_thread.join(timeout=120)
    assert not any(t.is_alive() for t in (*threads, prune_thread)), "a thread hung"
    assert errors == [], errors
    collected = [p for p in prunes if p["deleted_snapshots"] or p["deleted_packs"]]
    print(f"soak {time.monotonic() - started:.1f}s: {len(prunes)} prunes, "
          f"{len(collected)} deleted something, "
          f"{sum(len(p['deleted_snapshots']) for p in prunes)} snapshots deleted")
    assert collected, "no prune ran its phase 2 beside the syncs"

    everyone = {**vaults, "p": pruner}
    bases = converge(everyone)
    for name, vault in everyone.items():
        seen(bases[name], vault)
    final = live(vaults["a"])
    assert v.lost(final) == set(), v.describe(v.lost(final))
    res = run_cli("verify", "--read-data", "100", cwd=vaults["a"])
    assert res.code == 0, res.out + res.err

    # whatever is still pending is collected now; then everything is read again
    before = remote_counts(remote)
    _, doc = cli_json("prune", "--keep-last", "2", "--grace", "0s", cwd=pruner)
    assert doc["pending"] == [], doc
    assert remote_counts(remote)["snapshots"] <= before["snapshots"]
    res = run_cli("verify", "--read-data", "100", cwd=vaults["b"])
    assert res.code == 0, res.out + res.err
    assert converge(everyone, passes=1) == bases  # nothing moves: all up to date
    for name, sid in remote_heads(remote).items():
        out = tmp_path / f"checkout-{name}"
        res = run_cli("checkout", str(remote), str(out), "--at", sid)
        assert res.code == 0, (name, sid, res.out, res.err)
        assert sid in states, f"head {sid[:12]} of {name} is no snapshot a sync reported"
        assert tree_state(out) == states[sid], f"checkout of head {sid[:12]} ({name})"
    out = tmp_path / "checkout-final"
    assert run_cli("checkout", str(remote), str(out), "--at", bases["a"]).code == 0
    assert tree_state(out) == tree_state(vaults["a"])


def test_a_device_away_across_two_prunes_comes_back_with_nothing_lost(tmp_path: Path) -> None:
    """b's last sync only pulled (its base is a's snapshot, its head an older one of its
    own); while b is away a edits, deletes and renames over many syncs and prunes twice
    with both phases done each time, so b's base is deleted. b edited offline too. b's
    sync says its last sync was pruned, then a and b converge with every version kept."""
    v, rng = Versions(), random.Random(SEED)
    writer = Writer(v, threading.Lock(), rng)
    remote, vaults = make_devices(tmp_path, ("a", "b"), v, writer)
    a, b = vaults["a"], vaults["b"]
    now = time.time_ns
    v.write(b, "d0/n0.md", writer.content("b before leaving"), now(), "b")
    assert run_cli("sync", cwd=b).code == 0  # b's head
    assert run_cli("sync", cwd=a).code == 0
    v.write(a, "d1/n1.md", writer.content("a before b leaves"), now(), "a")
    assert run_cli("sync", cwd=a).code == 0
    _, doc = cli_json("sync", cwd=b)  # a pull: b's base is a's snapshot, not b's head
    b_base = doc["snapshot"]
    assert remote_heads(remote)[_device_id(b)] != b_base

    collected = 0
    for phase in range(3):
        for r in range(4):
            writer.step(a, "a", f"away {phase}.{r}")
            assert run_cli("sync", cwd=a).code == 0
        _, doc = cli_json("prune", "--keep-last", "1", "--grace", "1s", cwd=a)
        collected += bool(doc["deleted_snapshots"])
        assert doc["pending"], doc  # this run's record, due after the grace
        time.sleep(1.2)
    assert collected == 2, "two prunes ran their phase 2"
    assert not (remote / "snapshots" / b_base).exists(), "b's base was not pruned"

    offline: dict[str, bytes] = {}  # what b's user wrote while away
    for rel in ("d0/n0.md", "d1/n1.md", "d2/sub/n2.md", "d0/b-offline-new.md"):
        if (b / rel).exists() or rel.endswith("new.md"):
            offline[rel] = writer.content(f"b offline {rel}")
            v.write(b, rel, offline[rel], now(), "b")
    moved = sorted(files(b))[-1]
    v.rename(b / moved, b / "d1/b-offline-moved.md", "b")
    res, doc = cli_json("sync", cwd=b, codes=(0, 1))
    assert any("was pruned" in n for n in doc["notices"]), doc["notices"]
    assert run_cli("sync", cwd=b).code in (0, 1)
    res = run_cli("sync", cwd=b)
    assert "was pruned" not in res.out, res.out  # said once, not on every run
    converge({"a": a, "b": b})
    final = live(a)
    for rel, data in offline.items():
        assert data in final, f"b's offline edit of {rel} is gone"
    assert v.lost(final) == set(), v.describe(v.lost(final))
    res = run_cli("verify", "--read-data", "100", cwd=a)
    assert res.code == 0, res.out + res.err
    c = tmp_path / "c"
    assert run_cli("clone", str(remote), str(c), "--device", "c").code == 0
    assert files(c) == files(a)


def _device_id(vault: Path) -> str:
    for line in (vault / ".vaultsync/config.toml").read_text().splitlines():
        if line.startswith("device_id"):
            return line.split('"')[1]
    raise AssertionError("no device_id in config.toml")
