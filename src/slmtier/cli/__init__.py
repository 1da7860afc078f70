"""Thin entry points: `python train.py ...` and the `slmtier` command."""
