"""Ignore rules in gitignore syntax, on top of defaults suited to vaults:
`.vaultsyncignore` at the vault's root (it syncs, so its rules travel with the vault) and
`.vaultsync/ignore` (this device only, e.g. big attachments on a small laptop).

An ignored path is not synced by this device: its local file is never uploaded, the
remote's version is never written here, and a path that becomes ignored is never deleted
for the other devices (its last synced version stays as is)."""

from __future__ import annotations

import hashlib
import os

from vaultsync.errors import ConfigError

IGNORE_FILE = ".vaultsyncignore"
DEVICE_IGNORE_FILE = ".vaultsync/ignore"
DEFAULT_PATTERNS = (
    # Obsidian: per-device window layout and the app's own trash
    ".obsidian/workspace.json",
    ".obsidian/workspace-mobile.json",
    ".obsidian/workspace*.json",
    ".obsidian/cache",
    ".trash/",
    # operating systems
    ".DS_Store",
    "._*",
    "Thumbs.db",
    "desktop.ini",
    ".Spotlight-V100/",
    ".fseventsd/",
    # editors' swap, backup, lock and temporary files
    "*.swp",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "*.tmp",
    ".~lock.*#",
    "~$*",
    # other sync tools' and version control state
    ".git/",
    ".stfolder/",
    ".stversions/",
    ".sync/",
    "*.sync-conflict-*",
)


class IgnoreRules:
    def __init__(self, lines: list[str]) -> None:
        import pathspec  # light, but only needed once a scan starts

        self.lines = lines
        self._spec = pathspec.GitIgnoreSpec.from_lines(lines)
        self.digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    @classmethod
    def load(cls, root: str) -> IgnoreRules:
        lines = list(DEFAULT_PATTERNS)
        for name in (IGNORE_FILE, DEVICE_IGNORE_FILE):
            path = os.path.join(root, *name.split("/"))
            try:
                with open(path, encoding="utf-8") as f:
                    lines += f.read().splitlines()
            except FileNotFoundError:
                pass
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from None
        try:
            return cls(lines)
        except Exception as exc:  # pathspec raises its own errors for bad patterns
            raise ConfigError(f"bad ignore pattern in {root}: {exc}") from None

    def ignored(self, key: str, is_dir: bool) -> bool:
        """Whether the NFC path `key` is ignored (a folder matches `name/` patterns)."""
        return bool(self._spec.match_file(key + "/" if is_dir else key))
