"""slmtier's HTTP services started in the test's own process, on a free loopback port."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
import yaml

from helpers.fault_server import FaultServer
from helpers.files import TICKETS, read_jsonl, write_jsonl
from helpers.processes import run_train_cli
from helpers.tiny import tiny_overrides
from slmtier.serve.api import server_config


class Router:
    """The router app on a free loopback port, in this process (uvicorn in a thread)."""

    def __init__(self, app, read_timeout_s: float = 10.0):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = server_config(app, host="127.0.0.1", port=self.port, read_timeout_s=read_timeout_s)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=30)


def routing_as(run_dir: Path, folder: Path, name: str, tier: str, shadow_rate: float = 0.0, **cascade) -> Path:
    """The run's routing.yaml, served under another task name and tier (what a platform team may choose)."""
    routing = yaml.safe_load((run_dir / "routing.yaml").read_text())
    routing.update(task=name, tier=tier, shadow={"rate": shadow_rate, "max_usd": None})
    if tier == "cascade":
        routing["cascade"] = {"via": "slm", **cascade}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(routing))
    return path


def benchmark_tiny_run(tiny_model_dir, server: FaultServer, folder: Path, *extra: str,
                       sizes: tuple[int, int, int] = (24, 8, 12)) -> Path:  # fmt: skip
    """`python train.py` of the ticket recipe on the tiny model (train, validation, test rows: `sizes`), its LLM
    tier the fault server on loopback."""
    data = {
        split: write_jsonl(folder / f"{split}.jsonl", read_jsonl(TICKETS / f"{split}.jsonl")[:n])
        for split, n in zip(("train", "validation", "test"), sizes, strict=True)
    }
    run_dir = folder / "run"
    result = run_train_cli(
        *tiny_overrides(tiny_model_dir, data, run_dir), *extra,
        "baseline=openai_compatible", f"baseline.endpoint.base_url={server.base_url}", "baseline.endpoint.model=echo",
        "baseline.endpoint.api_key_env=null", "baseline.endpoint.max_retries=0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir
