"""`vaultsync.json`: the repository's format version, features and parameters.

A client refuses to write to a repository of a newer format or with a mandatory feature
it does not know, and refuses to read one with an unknown read-mandatory feature.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field

from vaultsync.chunking import ChunkerParams
from vaultsync.errors import FormatTooNew, IntegrityError
from vaultsync.model import canonical_json

FORMAT_VERSION = 1
CONFIG_NAME = "vaultsync.json"
# Features this client implements. A repository lists the ones a client must know to
# write ("mandatory") or to read at all ("read_mandatory").
KNOWN_FEATURES: frozenset[str] = frozenset({"prune"})  # prune: records in prune/ are read
DEFAULT_PACK_SIZE = 8 * 1024 * 1024
# the pack sizes a repository may have: what `decode_format` accepts and `init` allows
MIN_PACK_SIZE = 1024
MAX_PACK_SIZE = 1 << 30


@dataclass(frozen=True)
class RepoFormat:
    repo_id: str
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    pack_size: int = DEFAULT_PACK_SIZE
    format: int = FORMAT_VERSION
    mandatory: tuple[str, ...] = ()
    read_mandatory: tuple[str, ...] = ()
    hash: str = "blake3"
    compression: str = "zstd"

    @staticmethod
    def new(chunker: ChunkerParams | None = None, pack_size: int = DEFAULT_PACK_SIZE) -> RepoFormat:
        return RepoFormat(repo_id=secrets.token_hex(16), chunker=chunker or ChunkerParams(),
                          pack_size=pack_size)

    def encode(self) -> bytes:
        return canonical_json({
            "format": self.format,
            "repo_id": self.repo_id,
            "features": {"mandatory": list(self.mandatory),
                         "read_mandatory": list(self.read_mandatory)},
            "chunker": self.chunker.to_json(),
            "pack_size": self.pack_size,
            "hash": self.hash,
            "compression": self.compression,
        }) + b"\n"

    def check_readable(self) -> None:
        unknown = sorted(set(self.read_mandatory) - KNOWN_FEATURES)
        if unknown or self.hash != "blake3":
            what = ", ".join(unknown) or f"hash {self.hash}"
            raise FormatTooNew(
                f"this repository needs features this vaultsync does not have ({what}); "
                "upgrade vaultsync to read it"
            )

    def check_writable(self) -> None:
        self.check_readable()
        if self.format > FORMAT_VERSION:
            raise FormatTooNew(
                f"repository format {self.format} is newer than this vaultsync "
                f"(format {FORMAT_VERSION}); upgrade vaultsync before writing to it"
            )
        unknown = sorted(set(self.mandatory) - KNOWN_FEATURES)
        if unknown:
            raise FormatTooNew(
                f"repository needs unknown feature(s) {', '.join(unknown)}; "
                "upgrade vaultsync before writing to it"
            )


def checked_format(chunk_min: int, chunk_avg: int, chunk_max: int,
                   pack_size: int) -> RepoFormat:
    """A new repository's format from chosen parameters, or ValueError(which, rule) with
    which = "pack_size" or "chunker". The rules are the reader's own: the result is
    decoded back with `decode_format` before it is returned, so no repository is created
    that a later command would refuse to open."""
    if not MIN_PACK_SIZE <= pack_size <= MAX_PACK_SIZE:
        raise ValueError("pack_size", f"must be from {MIN_PACK_SIZE} to {MAX_PACK_SIZE} "
                         f"bytes, not {pack_size}")
    try:
        fmt = RepoFormat.new(ChunkerParams(chunk_min, chunk_avg, chunk_max), pack_size)
        decode_format(fmt.encode())
    except IntegrityError:
        raise ValueError(
            "chunker", "must satisfy 64 <= MIN <= AVG <= MAX <= 67108864, AVG >= 256 and "
            f"MAX >= 1024, not {chunk_min}/{chunk_avg}/{chunk_max}") from None
    return fmt


def decode_format(data: bytes) -> RepoFormat:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise IntegrityError(f"{CONFIG_NAME} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{CONFIG_NAME} is not a JSON object")
    fmt = doc.get("format")
    if not isinstance(fmt, int) or fmt < 1:
        raise IntegrityError(f"{CONFIG_NAME} has no valid format version")
    feats = doc.get("features") or {}
    mandatory = feats.get("mandatory", []) if isinstance(feats, dict) else None
    read_mandatory = feats.get("read_mandatory", []) if isinstance(feats, dict) else None
    if not isinstance(mandatory, list) or not isinstance(read_mandatory, list):
        raise IntegrityError(f"{CONFIG_NAME} has malformed features")
    repo_id = doc.get("repo_id")
    if not isinstance(repo_id, str) or not 8 <= len(repo_id) <= 64 or not repo_id.isalnum():
        raise IntegrityError(f"{CONFIG_NAME} has a malformed repo_id")
    pack_size = doc.get("pack_size", DEFAULT_PACK_SIZE)
    if not isinstance(pack_size, int) or not MIN_PACK_SIZE <= pack_size <= MAX_PACK_SIZE:
        raise IntegrityError(f"{CONFIG_NAME} has an absurd pack_size")
    rf = RepoFormat(
        repo_id=repo_id,
        chunker=ChunkerParams.from_json(doc.get("chunker")),
        pack_size=pack_size,
        format=fmt,
        mandatory=tuple(str(x) for x in mandatory),
        read_mandatory=tuple(str(x) for x in read_mandatory),
        hash=str(doc.get("hash", "blake3")),
        compression=str(doc.get("compression", "zstd")),
    )
    return rf
