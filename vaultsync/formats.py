"""The repository formats this vaultsync reads and writes, as `vaultsync --version` says.

A module that imports nothing, so that printing the version loads no engine, repository
or hashing. `vaultsync/repository/format.py` is the authority (`FORMAT_VERSION`,
`KNOWN_FEATURES`); tests/test_version.py checks that the two agree.
"""

from __future__ import annotations

WRITES = 1  # the format a new repository gets, and the newest one this version writes to
OLDEST_READ = 1  # the oldest format this version reads
# the features this version knows: a repository of a newer format is read (never written)
# unless it lists a read-mandatory feature that is not one of these
FEATURES: tuple[str, ...] = ("prune",)


def describe() -> str:
    """`repository format: reads 1 and newer, writes 1; features: prune`."""
    return (f"repository format: reads {OLDEST_READ} and newer, writes {WRITES}; "
            f"features: {', '.join(FEATURES)}")
