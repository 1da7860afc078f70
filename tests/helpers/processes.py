"""The commands a user runs, in a subprocess as the user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
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


def wait_until_healthy(url: str, process: subprocess.Popen, timeout_s: float = 120) -> str | None:
    """None once `url` (a server's /health) answers 200; else why not: the process exited, or time ran out."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"the process exited with {process.returncode}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return None
        except httpx.HTTPError:
            time.sleep(0.2)
    return f"no answer from {url} within {timeout_s:g} s"
