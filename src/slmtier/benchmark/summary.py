"""Per-candidate metrics from prediction rows: task quality plus latency and token counts."""

from __future__ import annotations

import statistics

from slmtier.benchmark.extra_metrics import compute_extra_metrics


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise_candidate(task, rows: list[dict], *, model: str, extra_metrics: list[str] = ()) -> dict:
    """metrics.json's entry for one candidate: model, n, quality {metric, value}, the task's metrics, latency."""
    metrics = task.score(
        [row["parsed"] for row in rows], [row["gold"] for row in rows], inputs=[row["input"] for row in rows]
    )
    if extra_metrics:
        metrics["extra"] = compute_extra_metrics(
            list(extra_metrics),
            [row["raw_output"].strip() for row in rows],
            [task.format_target(row["gold"]) for row in rows],
        )
    latencies = [row["latency_ms"] for row in rows]
    return {
        "model": model,
        "n": len(rows),
        "quality": {"metric": task.metric, "value": metrics[task.metric]},
        **metrics,
        "latency_ms": {
            "mean": statistics.fmean(latencies),
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
        },
        "tokens_per_request": {
            "input": statistics.fmean(row["input_tokens"] for row in rows),
            "output": statistics.fmean(row["output_tokens"] for row in rows),
        },
    }
