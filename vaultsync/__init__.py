"""vaultsync: sync a folder of notes through a content-addressed remote repository."""

__version__ = "0.1.0"
