"""The commands a user runs, in a subprocess as the user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.files import REPO


def run_train_cli(*overrides: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.CompletedProcess:
    """`python train.py ...` in a subprocess, as a user runs it."""
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=900,
    )
