"""The SLM tier served over HTTP: per-request latency and throughput at several client concurrencies.

    python scripts/bench_serve.py --run-dir runs/ticket_classifier/smollm2_135m/<time> --n 96

Starts `slmtier serve RUN_DIR` on a free loopback port, then sends the run's test prompts through
slmtier's own LLM-tier client (baselines/openai_compatible.py, a fresh cache each time so nothing is
served from it) at each concurrency. Concurrency 1 is the baseline: the ratios say what batching
concurrent requests buys. Also checks that the served answers equal the run's own predictions.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from slmtier.baselines.cache import ResponseCache
from slmtier.baselines.openai_compatible import ChatClient
from slmtier.benchmark.summary import percentile
from slmtier.config import EndpointConfig
from slmtier.data import load_splits
from slmtier.run_dir import RunDir
from slmtier.tasks import build_task
from slmtier.tiers.slm import recorded_max_new_tokens


def start_server(run_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "slmtier", "serve", str(run_dir), "--port", str(port), "--max-wait-ms", "20"]
    process = subprocess.Popen(command, stdout=log_path.open("w"), stderr=subprocess.STDOUT, env=os.environ.copy())
    for _ in range(600):
        if process.poll() is not None:
            sys.exit(f"serve exited:\n{log_path.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    sys.exit(f"serve did not come up:\n{log_path.read_text()}")


def measure(base_url: str, model: str, conversations: list, concurrency: int, max_tokens: int) -> tuple[dict, list]:
    endpoint = EndpointConfig(
        base_url=base_url, model=model, api_key_env=None, max_tokens=max_tokens,
        max_concurrency=concurrency, timeout_s=600, max_retries=0,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        cache = ResponseCache(Path(folder) / "cache.sqlite")
        health = httpx.get(base_url.removesuffix("/v1") + "/health").json()
        began = time.perf_counter()
        outcomes = ChatClient(endpoint, cache, api_key=None).complete_all(
            conversations, desc=f"concurrency {concurrency}"
        )
        wall = time.perf_counter() - began
        after = httpx.get(base_url.removesuffix("/v1") + "/health").json()
        cache.close()
    latencies = [o.reply.latency_ms for o in outcomes if o.reply]
    return {
        "concurrency": concurrency,
        "requests": len(conversations),
        "failed": sum(o.reply is None for o in outcomes),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(conversations) / wall, 2),
        "latency_ms_p50": round(percentile(latencies, 50), 1),
        "latency_ms_p95": round(percentile(latencies, 95), 1),
        "mean_batch_size": round(
            (after["requests"] - health["requests"]) / max(1, after["batches"] - health["batches"]), 2
        ),
    }, [o.reply.content if o.reply else None for o in outcomes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--n", type=int, default=96, help="test prompts sent at each concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cfg = RunDir(args.run_dir).read_config()
    task = build_task(cfg.task)
    test = load_splits(cfg.data, task.check_target).test[: args.n]
    conversations = [task.build_messages(example, few_shot=[]) for example in test]
    budget = recorded_max_new_tokens(args.run_dir, cfg)  # what the benchmark and `slmtier serve` generate with
    model = json.loads((args.run_dir / "metrics.json").read_text())["recipe"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = Path(tempfile.mkstemp(suffix=".log")[1])
    server = start_server(args.run_dir, port, log_path)
    try:
        results, answers = [], {}
        for concurrency in args.concurrency:
            row, answers[concurrency] = measure(
                f"http://127.0.0.1:{port}/v1", model, conversations, concurrency, budget
            )
            results.append(row)
    finally:
        server.terminate()
        server.wait(timeout=60)
    baseline = results[0]["requests_per_s"]
    for row in results:
        row["throughput_ratio"] = round(row["requests_per_s"] / baseline, 2)
    logged = {r["id"]: r["raw_output"] for r in map(json.loads, (args.run_dir / "predictions" / "slm.jsonl").open())}
    same = {c: sum(a == logged[e.id] for a, e in zip(answers[c], test, strict=True)) for c in answers}
    report = {
        "run_dir": str(args.run_dir),
        "n": len(test),
        "results": results,
        "answers_equal_to_run_predictions": same,
    }
    print(f"{'concurrency':>11} {'req/s':>7} {'ratio':>6} {'p50 ms':>8} {'p95 ms':>8} {'batch':>6} {'failed':>6}")
    for row in results:
        cells = ["concurrency", "requests_per_s", "throughput_ratio", "latency_ms_p50", "latency_ms_p95"]
        widths = [11, 7, 6, 8, 8]
        line = " ".join(f"{row[key]:>{width}}" for key, width in zip(cells, widths, strict=True))
        print(f"{line} {row['mean_batch_size']:>6} {row['failed']:>6}")
    print(f"answers equal to the run's own predictions (of {len(test)}): {same}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
