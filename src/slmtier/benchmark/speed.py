"""A local tier's speed, measured in a step of its own after its predictions, so that the report's figures
mean what they say:

- latency: one request at a time (concurrency 1), through the same answering path the router calls
  (slmtier.candidate.answer), on a sample of the test split: each request's own time, not the wall time of
  the batch it sat in;
- throughput: one batched pass (the tier's batch size) over a slice of the test split, with the share of the
  machine's CPU that other processes took meanwhile (Linux: /proc/stat). Above CONTENDED_ABOVE the figure
  is flagged: a box busy with other work understates the throughput, and so overstates the cost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from slmtier.benchmark.summary import summarise_latency
from slmtier.candidate import answer

SINGLE_REQUESTS = 24  # the one-at-a-time sample
THROUGHPUT_BATCHES = 4  # batches in the throughput pass
CONTENDED_ABOVE = 0.25  # others' share of the machine's CPU that flags a measurement


def measure_speed(candidate, task, examples: list) -> tuple[dict, dict]:
    """(latency_ms, throughput) of a local candidate on `examples` (the test split)."""
    step = max(1, len(examples) // SINGLE_REQUESTS)
    sample = examples[::step][:SINGLE_REQUESTS]
    answer(candidate, task, sample[:1])  # warm-up: the first call pays one-off costs
    single = []
    for example in sample:
        began = time.perf_counter()
        answer(candidate, task, [example])
        single.append((time.perf_counter() - began) * 1000)
    latency = {**summarise_latency(single), "concurrency": 1, "n": len(single),
               "samples": [round(value, 3) for value in single]}  # fmt: skip
    batch_size = getattr(candidate, "batch_size", None) or 1
    batch = examples[: batch_size * THROUGHPUT_BATCHES]
    machine, own = machine_busy_s(), time.process_time()
    began = time.perf_counter()
    answer(candidate, task, batch)
    wall = time.perf_counter() - began
    own = time.process_time() - own
    busy = machine_busy_s()
    others = None if machine is None or busy is None else max(0.0, (busy - machine - own) / (wall * cpu_count()))
    throughput = {
        "requests_per_s": len(batch) / wall if wall > 0 else None,
        "wall_s": wall,
        "rows_timed": len(batch),
        "concurrency": batch_size,
        "cpu_share": round(own / (wall * cpu_count()), 3) if wall > 0 else None,  # this process's
        "others_cpu_share": None if others is None else round(others, 3),
        "contended": others is not None and others > CONTENDED_ABOVE,
    }
    return latency, throughput


def cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def machine_busy_s() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all cores), or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(value) for value in fields[:8]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
