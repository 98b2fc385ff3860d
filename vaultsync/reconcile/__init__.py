"""The pure reconcile core: merge, renames, placement, conflict names, overlay and plan.

Functions of trees and flat maps only: no I/O, no clock, no terminal. Every module here
may import only `vaultsync.model` and its siblings (tests/test_layers.py checks this);
the engine orchestrates, this package decides."""
