"""A vault on disk: its folder, `.vaultsync/` state, config and lock."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import replace

from vaultsync.engine.config import (
    VaultConfig,
    binding,
    legacy_binding,
    new_device_id,
    parse_config,
)
from vaultsync.engine.state import State, is_damage
from vaultsync.errors import ConfigError, LockHeld, NotAVault, StateDamaged, UsageError
from vaultsync.fsutil import try_lock, unlock
from vaultsync.model import STATE_DIR

TRASH = "trash"
# set for a read-only run (a dry run, status) that found the state database damaged
# mid-run: its second try works on an empty state in memory and leaves the file as it is
_damaged_state_seen: ContextVar[bool] = ContextVar("damaged_state_seen", default=False)
_lock_wait = 0.0  # seconds to wait for another run's lock (--wait); 0: fail at once


def set_lock_wait(seconds: float) -> None:
    global _lock_wait
    _lock_wait = max(0.0, seconds)


class Vault:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.meta = os.path.join(self.root, STATE_DIR)
        self.config_path = os.path.join(self.meta, "config.toml")
        self.trash = os.path.join(self.meta, TRASH)
        self.staging = os.path.join(self.meta, "staging")
        self._config: VaultConfig | None = None
        self._state: State | None = None
        self._lock_fd: int | None = None
        self.notices: list[str] = []
        self.read_only = False  # a run that keeps no state: nothing in .vaultsync/ changes

    # ---- finding and creating --------------------------------------------------------
    @classmethod
    def find(cls, root: str) -> Vault:
        vault = cls(root)
        if not os.path.isdir(vault.root):
            raise NotAVault(f"{vault.root} does not exist")
        if not os.path.isdir(vault.meta):
            raise NotAVault(
                f"{vault.root} is not a vault (no {STATE_DIR}/ here); run 'vaultsync init "
                "--remote URL' to make it one, or pass -C DIR"
            )
        return vault

    @classmethod
    def create(cls, root: str, device_name: str, remote: str = "") -> Vault:
        vault = cls(root)
        os.makedirs(vault.meta, exist_ok=True)
        cfg = VaultConfig(new_device_id(), device_name, binding(vault.root), remote)
        vault.save_config(cfg)
        return vault

    # ---- config ----------------------------------------------------------------------
    @property
    def config(self) -> VaultConfig:
        if self._config is None:
            try:
                with open(self.config_path, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                raise ConfigError(
                    f"{self.config_path} is missing; run 'vaultsync init' in {self.root}"
                ) from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {self.config_path}: {exc}") from None
            self._config = parse_config(text, self.config_path)
        return self._config

    def save_config(self, cfg: VaultConfig) -> None:
        tmp = self.config_path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(cfg.encode())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.config_path)
        self._config = cfg

    def check_binding(self) -> None:
        """A `.vaultsync/` copied to another path or machine becomes a new device (in
        memory only for a run that keeps no state: a dry run, status)."""
        cfg = self.config
        here = binding(self.root)
        if cfg.bound_to == legacy_binding(self.root) != here:  # recorded before machine ids
            if not self.read_only:
                self.save_config(replace(cfg, bound_to=here))
            return
        if cfg.bound_to != here:
            renewed = replace(cfg, device_id=new_device_id(), bound_to=here)
            if self.read_only:
                self._config = renewed
                self.notices.append("this vault's state was copied from another folder or "
                                    "machine: a sync registers it as a new device")
                return
            self.save_config(renewed)
            self.notices.append(
                "this vault's state was copied from another folder or machine: "
                "registered as a new device"
            )

    def check_remote_outside(self, url: str) -> None:
        """A directory remote inside the vault would sync the repository into itself."""
        if not url.startswith("file://"):
            return
        remote = os.path.realpath(url[len("file://"):])
        root = os.path.realpath(self.root)
        if remote == root or remote.startswith(root + os.sep):
            raise UsageError(f"the remote {remote} is inside the vault {root}: it would be "
                             "synced into itself; put the repository outside the vault")

    # ---- state and lock --------------------------------------------------------------
    @property
    def state(self) -> State:
        if self._state is None:
            path = os.path.join(self.meta, "state.db")
            try:
                self._state = State(":memory:" if _damaged_state_seen.get() else path)
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    raise
                if self.read_only:  # a dry run or status leaves it for a sync to set aside
                    self.notices.append(f"the local state database is damaged ({exc}): a "
                                        "sync moves it aside and re-joins the repository")
                    self._state = State(":memory:")
                else:
                    self.notices.append(self.set_aside_state(exc))
                    self._state = State(path)
        return self._state

    @staticmethod
    @contextmanager
    def memory_state() -> Iterator[None]:
        """Within the block, a read-only run's state is an empty one in memory."""
        token = _damaged_state_seen.set(True)
        try:
            yield
        finally:
            _damaged_state_seen.reset(token)

    def set_aside_state(self, why: BaseException) -> str:
        """Move a damaged or unreadable state database aside (it is a cache of the remote
        plus the base: the vault re-joins); returns the notice that says so."""
        if self._state is not None:
            self._state.close()
            self._state = None
        path = os.path.join(self.meta, "state.db")
        aside = f"{path}.damaged-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        try:
            os.replace(path, aside)
            if os.path.exists(path + "-journal"):
                os.replace(path + "-journal", aside + "-journal")
        except OSError as exc:
            raise StateDamaged(f"local state database {path} is damaged ({why}) and cannot "
                               f"be moved aside: {exc.strerror}") from None
        return (f"the local state database was damaged or unreadable ({why}); it was moved "
                f"to {aside} and this vault re-joins the repository: files with equal bytes are "
                "one file, versions that differ are kept side by side")

    def lock(self) -> Vault:
        """Hold this vault's lock for the run (exclusive, on every platform; the system
        drops it when the process ends, however it ends), or raise LockHeld once the
        --wait time is up."""
        deadline = time.monotonic() + _lock_wait
        path = os.path.join(self.meta, "lock")
        while (fd := try_lock(path)) is None:
            if time.monotonic() >= deadline:
                waited = f" (waited {_lock_wait:g} s)" if _lock_wait else ""
                raise LockHeld(
                    f"another vaultsync run is using {self.root}{waited}; try again when "
                    "it finishes, or pass --wait SECONDS"
                )
            time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd
        return self

    def close(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock_fd is not None:
            unlock(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Vault:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
