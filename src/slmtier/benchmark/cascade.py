"""The hybrid router, fitted on your own data: a local tier answers every request, and those it is least
sure of (confidence below a threshold) are sent on to the LLM.

The threshold is fitted on the validation split — the cheapest one whose cascade quality reaches the
target (the LLM's validation quality minus the margin) — and then judged on the test split, where it was
not chosen. The whole curve is kept for the report, with random routing at the same escalation rate as
the reference a confidence signal has to beat.
"""

from __future__ import annotations

import math

import numpy as np

from slmtier.benchmark.stats import ratio_of_sums

ALWAYS = math.nextafter(1.0, 2.0)  # a threshold above every confidence: escalate everything


def build_curve(
    confidence, local_parts, llm_parts, *, local_usd_per_1k: float, llm_usd_per_1k: float, empty_value: float = 1.0
) -> list[dict]:
    """One point per threshold (escalate when confidence < threshold), from never (0) to always escalating
    (just above 1: confidences are probabilities). Finite, so metrics.json stays plain JSON."""
    confidence = np.asarray(confidence, dtype=float)
    local_parts, llm_parts = np.asarray(local_parts, dtype=float), np.asarray(llm_parts, dtype=float)
    thresholds = sorted({0.0, *np.unique(confidence).tolist(), ALWAYS})
    points = []
    for threshold in thresholds:
        point = evaluate_threshold(
            threshold, confidence, local_parts, llm_parts,
            local_usd_per_1k=local_usd_per_1k, llm_usd_per_1k=llm_usd_per_1k, empty_value=empty_value,
        )  # fmt: skip
        points.append(point)
    return points


def evaluate_threshold(
    threshold: float, confidence, local_parts, llm_parts, *, local_usd_per_1k: float, llm_usd_per_1k: float,
    empty_value: float = 1.0,
) -> dict:  # fmt: skip
    """Quality and cost of the cascade at one threshold, and of random routing at the same escalation rate."""
    confidence = np.asarray(confidence, dtype=float)
    local_parts, llm_parts = np.asarray(local_parts, dtype=float), np.asarray(llm_parts, dtype=float)
    escalate = confidence < threshold
    chosen = np.where(escalate[:, None], llm_parts, local_parts)
    rate = float(escalate.mean())
    mixed = (1 - rate) * local_parts + rate * llm_parts  # expected parts under random routing at this rate
    return {
        "threshold": threshold,
        "escalation_rate": rate,
        "quality": ratio_of_sums(chosen[:, 0], chosen[:, 1], empty_value=empty_value),
        "random_routing_quality": ratio_of_sums(mixed[:, 0], mixed[:, 1], empty_value=empty_value),
        "usd_per_1k": local_usd_per_1k + rate * llm_usd_per_1k,
    }


def fit_threshold(points: list[dict], target_quality: float) -> dict | None:
    """The cheapest point reaching the target (ties: the higher quality); None if none reaches it."""
    reaching = [point for point in points if point["quality"] >= target_quality - 1e-12]
    if not reaching:
        return None
    return min(reaching, key=lambda point: (point["usd_per_1k"], -point["quality"]))


def route(confidence, threshold: float) -> np.ndarray:
    """Which examples escalate at a threshold (True = sent to the LLM)."""
    return np.asarray(confidence, dtype=float) < threshold
