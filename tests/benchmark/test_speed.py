"""A local tier's latency is one request's own time (one at a time), and its throughput is measured in a pass
of its own that says when other processes took the CPU meanwhile (a contended figure overstates the cost)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from slmtier.benchmark.candidates import LocalCandidate
from slmtier.benchmark.speed import SINGLE_REQUESTS, machine_busy_s, measure_speed
from slmtier.config import ModelConfig, TaskConfig
from slmtier.data import Example
from slmtier.models import load_model, load_tokenizer
from slmtier.run_dir import RunDir
from slmtier.tasks import build_task


def test_a_runs_local_tiers_report_per_request_latency_at_concurrency_1(tiny_run):
    metrics = RunDir(tiny_run.run_dir).read_metrics()
    slm = metrics.candidates["slm"]
    n = len(RunDir(tiny_run.run_dir).read_predictions("slm"))
    assert slm["latency_ms"]["concurrency"] == 1 and slm["latency_ms"]["n"] == min(n, SINGLE_REQUESTS)
    assert len(slm["latency_ms"]["samples"]) == slm["latency_ms"]["n"]
    assert slm["latency_ms"]["p50"] == pytest.approx(sorted(slm["latency_ms"]["samples"])[(n - 1) // 2], rel=0.5)
    assert {"cpu_share", "others_cpu_share", "contended"} <= set(slm["throughput"])
    report = (tiny_run.run_dir / "report.md").read_text()
    assert "| latency measured at concurrency |" in report


@pytest.mark.skipif(machine_busy_s() is None, reason="the machine's CPU time is read from Linux's /proc/stat")
def test_a_throughput_measured_while_other_processes_burn_the_cpu_is_flagged(tiny_model_dir):

    model_cfg = ModelConfig(name="tiny", source=str(tiny_model_dir))
    model, tokenizer = load_model(str(tiny_model_dir), model_cfg), load_tokenizer(str(tiny_model_dir), model_cfg)
    task = build_task(TaskConfig(kind="classification", instruction="Queue: {labels}.", labels=["billing", "refund"]))
    candidate = LocalCandidate("slm", "tiny", model, tokenizer, batch_size=4, max_new_tokens=4)
    examples = [Example(str(i), f"I want my money back, order {i}.", "refund") for i in range(16)]
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(4)]
    try:
        _, throughput = measure_speed(candidate, task, examples)
    finally:
        for burner in burners:
            burner.kill()
    assert throughput["contended"] and throughput["others_cpu_share"] > 0.25, throughput
    assert throughput["rows_timed"] == 16 and throughput["concurrency"] == 4
