"""The repository on a remote: format, packs, index segments, trees, snapshots, heads."""
