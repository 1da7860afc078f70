"""Per-candidate metrics from prediction rows: task quality plus latency and token counts."""

from __future__ import annotations

import statistics
from collections import Counter

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
    return {
        "model": model,
        "n": len(rows),
        "quality": {"metric": task.metric, "value": metrics[task.metric]},
        **metrics,
        "latency_ms": summarise_latency([row["latency_ms"] for row in rows if row.get("latency_ms") is not None]),
        "tokens_per_request": {
            "input": _mean(row.get("input_tokens") for row in rows),
            "output": _mean(row.get("output_tokens") for row in rows),
            "estimated_rows": sum(bool(row.get("usage_estimated")) for row in rows),
        },
        "requests": summarise_requests(rows),
        "cost": summarise_cost(rows),
        # Answers a local model stopped at inference.max_new_tokens, not on its own: perhaps cut short.
        "hit_limit": sum(bool(row.get("hit_limit")) for row in rows),
    }


def summarise_latency(latencies: list[float]) -> dict:
    if not latencies:
        return {"mean": None, "p50": None, "p95": None, "p99": None}
    return {
        "mean": statistics.fmean(latencies),
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
    }


def summarise_requests(rows: list[dict]) -> dict:
    """Answered vs failed rows, with the failures' reasons: a failed request is counted, never dropped."""
    failed = [row for row in rows if row.get("error")]
    reasons = Counter(_reason(row["error"]) for row in failed)
    return {
        "answered": len(rows) - len(failed),
        "failed": len(failed),
        "failure_rate": len(failed) / len(rows) if rows else 0.0,
        "failure_reasons": dict(reasons.most_common()),
        "from_cache": sum(bool(row.get("cached")) for row in rows),
        "http_attempts": sum(row.get("attempts", 0) for row in rows),
    }


def summarise_cost(rows: list[dict]) -> dict:
    """Cost of the answers (what this tier costs per request), whether or not this run paid for them."""
    priced = [row["cost_usd"] for row in rows if row.get("cost_usd") is not None]
    if not priced:
        return {"total_usd": None, "per_1k_requests_usd": None, "priced_rows": 0}
    return {
        "total_usd": round(sum(priced), 6),
        "per_1k_requests_usd": round(1000 * statistics.fmean(priced), 6),
        "priced_rows": len(priced),
    }


def _reason(error: str) -> str:
    """A failure's kind for counting: 'HTTP 500', 'timed out', 'connection error', ... (details dropped)."""
    text = error.split("last: ", 1)[-1]
    for marker in (":", " (", " after"):
        text = text.split(marker, 1)[0]
    return text.strip()


def _mean(values) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.fmean(present) if present else None
