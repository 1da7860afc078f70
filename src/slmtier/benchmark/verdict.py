"""From prediction rows to a priced, statistically honest verdict: intervals, the paired comparison,
each tier's cost, the cascade fitted on validation, the monthly projection, and the decision."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slmtier.benchmark.cascade import build_curve, evaluate_threshold, fit_threshold, route
from slmtier.benchmark.cost import price_local, project_month
from slmtier.benchmark.decide import Decision, TierEvidence, decide_tiers
from slmtier.benchmark.stats import (
    bootstrap_interval,
    mcnemar_exact,
    paired_bootstrap_gap,
    ratio_of_sums,
    required_n,
)
from slmtier.benchmark.summary import percentile
from slmtier.config import DecisionConfig, HardwareConfig

log = logging.getLogger(__name__)
LOCAL_KINDS = {"local"}


@dataclass
class Assessment:
    tiers: dict[str, dict]  # local tier -> {comparison, cascade, economics}
    decision: Decision
    lead_tier: str


def parts_of(rows: list[dict]) -> np.ndarray:
    return np.array([row["score_parts"] for row in rows], dtype=float).reshape(-1, 2)


def assess(
    task,
    results: dict[str, dict],
    test_rows: dict[str, list[dict]],
    validation_rows: dict[str, list[dict]],
    *,
    tiers: dict[str, Callable[[float | None], dict]],
    llm: str,
    policy: DecisionConfig,
    hardware: HardwareConfig,
) -> Assessment:
    """Adds intervals and costs to `results` (metrics.json's candidates): each local tier in `tiers` is priced
    by its own function of the throughput measured (slmtier.tiers.<name>.price), a local LLM stand-in on the
    hardware profile, an LLM endpoint by its token cost.
    Returns each tier's comparison with the LLM, cascade and monthly economics, the decision, and the lead
    tier (the one the verdict is about: the chosen one, or for `llm` the best local one)."""
    stats = {"n_resamples": policy.n_resamples, "confidence": policy.confidence, "seed": policy.seed}
    for name, rows in test_rows.items():
        parts = parts_of(rows)
        interval = bootstrap_interval(parts[:, 0], parts[:, 1], **stats)
        results[name]["quality"]["interval"] = {**interval.to_dict(), "metric": task.parts_metric}
        _add_cost(results[name], tiers.get(name, functools.partial(price_local, hardware)))
        if name in validation_rows:
            val = parts_of(validation_rows[name])
            results[name]["validation"] = {
                "n": len(val),
                task.parts_metric: ratio_of_sums(val[:, 0], val[:, 1]),
            }
    per_tier = {
        tier: compare_tier(
            task, results, test_rows, validation_rows, tier=tier, llm=llm, policy=policy, hardware=hardware
        )  # fmt: skip
        for tier in tiers
    }
    evidence = []
    for tier, entry in per_tier.items():
        tested = entry["cascade"]["test"] if entry["cascade"] and entry["cascade"].get("test") else None
        economics = entry["economics"]
        evidence.append(TierEvidence(
            tier, entry["comparison"]["gap"], results[tier]["latency_ms"]["p95"], (economics["local"] or {}).get("usd"),
            results[tier]["cost"].get("per_1k_requests_usd"), tested["gap"] if tested else None,
            tested["latency_p95_ms"] if tested else None, economics.get("cascade_usd"),
        ))  # fmt: skip
    llm_monthly = next(iter(per_tier.values()))["economics"]["llm_usd"]
    requests = results[llm]["requests"]
    decision = decide_tiers(metric=task.parts_metric, policy=policy, tiers=evidence, llm_monthly_usd=llm_monthly,
                            llm_failed=(requests["failed"], requests["answered"] + requests["failed"]))  # fmt: skip
    lead = decision.tier or max(tiers, key=lambda tier: results[tier]["quality"]["interval"]["value"])
    return Assessment(per_tier, decision, lead)


def compare_tier(task, results, test_rows, validation_rows, *, tier, llm, policy, hardware) -> dict:
    """One local tier against the LLM: the paired comparison, the cascade (tier first, LLM when unsure) fitted
    on validation, and the monthly economics (`economics.local` holds this tier's boxes)."""
    stats = {"n_resamples": policy.n_resamples, "confidence": policy.confidence, "seed": policy.seed}
    local_parts, llm_parts = parts_of(test_rows[tier]), parts_of(test_rows[llm])
    gap = paired_bootstrap_gap(local_parts[:, 0], local_parts[:, 1], llm_parts[:, 0], llm_parts[:, 1], **stats)
    comparison = {"tier": tier, "metric": task.parts_metric, "margin": policy.margin, "gap": gap.to_dict()}
    if task.parts_metric == "accuracy":
        comparison["mcnemar"] = mcnemar_exact(local_parts[:, 0] > 0.5, llm_parts[:, 0] > 0.5)
        discordant = (comparison["mcnemar"]["a_only"] + comparison["mcnemar"]["b_only"]) / len(local_parts)
        if discordant > 0:
            comparison["n_needed_if_equal"] = required_n(discordant, policy.margin, confidence=policy.confidence)
    local_usd = results[tier]["cost"].get("per_1k_requests_usd")
    llm_usd = results[llm]["cost"].get("per_1k_requests_usd")
    cascade = None
    if policy.cascade and _mostly_failed(validation_rows.get(llm)):
        log.warning("over half of the LLM's validation answers failed or are missing: no cascade is fitted")
    elif (
        policy.cascade
        and tier in validation_rows
        and llm in validation_rows
        and local_usd is not None
        and llm_usd is not None
    ):
        cascade = fit_cascade(task, test_rows, validation_rows, tier=tier, llm=llm, policy=policy,
                              local_usd=local_usd, llm_usd=llm_usd,
                              local_latency=results[tier]["latency_ms"].get("samples"),
                              llm_latency=results[llm]["latency_ms"].get("samples"))  # fmt: skip
    tested = cascade["test"] if cascade and cascade.get("test") else None
    economics = project_month(
        local=results[tier]["cost"], llm=results[llm]["cost"], llm_is_local=_is_local(results[llm]), hardware=hardware,
        volume=policy.monthly_requests, cascade_rate=tested["escalation_rate"] if tested else None,
    )  # fmt: skip
    return {"comparison": comparison, "cascade": cascade, "economics": economics}


def _mostly_failed(rows: list[dict] | None) -> bool:
    """A validation split the LLM mostly did not answer (e.g. production logs that cover the test ids only)
    would fit the cascade to a meaningless target."""
    return bool(rows) and sum(bool(row.get("error")) for row in rows) > len(rows) / 2


def _is_local(result: dict) -> bool:
    return (result.get("source") or {}).get("kind", "local") in LOCAL_KINDS


def _add_cost(result: dict, price: Callable[[float | None], dict]) -> None:
    """A local candidate's price from the throughput it was measured at; the LLM tier already carries its
    token cost."""
    if not _is_local(result):
        result["cost"]["basis"] = "token usage x price table"
        return
    throughput = result.get("throughput", {})
    local = price(throughput.get("requests_per_s"))
    basis = local["basis"]
    if throughput.get("contended") and "measured" in basis:
        basis += (f"; CONTENDED: other processes took {throughput['others_cpu_share']:.0%} of the CPU while it "
                  "was measured, so the cost is overstated (rerun on an idle machine, or declare "
                  "hardware.requests_per_s)")  # fmt: skip
    result["cost"] = {**result["cost"], "per_1k_requests_usd": local["usd_per_1k"], "basis": basis,
                      "requests_per_s": local["requests_per_s"],
                      "contended": bool(throughput.get("contended"))}  # fmt: skip


def fit_cascade(task, test_rows, validation_rows, *, tier, llm, policy, local_usd, llm_usd,
                local_latency=None, llm_latency=None) -> dict | None:  # fmt: skip
    """Threshold fitted on validation to reach (LLM validation quality - margin) at least cost; judged on test.
    Its p95 latency: per test request, the local tier's time plus, when escalated, the LLM's; a tier measured
    one request at a time (`*_latency`: its samples, taken in turn) counts those, else the row's own time."""
    confidence_val = [row["confidence"] for row in validation_rows[tier]]
    if any(value is None for value in confidence_val):
        return None
    costs = {"local_usd_per_1k": local_usd, "llm_usd_per_1k": llm_usd}
    local_val, llm_val = parts_of(validation_rows[tier]), parts_of(validation_rows[llm])
    target = ratio_of_sums(llm_val[:, 0], llm_val[:, 1]) - policy.margin
    curve = build_curve(confidence_val, local_val, llm_val, **costs)
    fitted = fit_threshold(curve, target)
    if fitted is None:
        return {"target_quality": target, "validation_curve": curve, "fitted": None, "test": None}
    confidence_test = [row["confidence"] for row in test_rows[tier]]
    local_test, llm_test = parts_of(test_rows[tier]), parts_of(test_rows[llm])
    point = evaluate_threshold(fitted["threshold"], confidence_test, local_test, llm_test, **costs)
    escalate = route(confidence_test, fitted["threshold"])
    chosen = np.where(escalate[:, None], llm_test, local_test)
    stats = {"n_resamples": policy.n_resamples, "confidence": policy.confidence, "seed": policy.seed}
    point["gap"] = paired_bootstrap_gap(chosen[:, 0], chosen[:, 1], llm_test[:, 0], llm_test[:, 1], **stats).to_dict()

    def own(samples, row, i):
        return samples[i % len(samples)] if samples else row["latency_ms"] or 0

    latencies = [
        own(local_latency, first, i) + (own(llm_latency, second, i) if up else 0)
        for i, (first, second, up) in enumerate(zip(test_rows[tier], test_rows[llm], escalate, strict=True))
    ]
    point["latency_p95_ms"] = percentile(latencies, 95)
    return {
        "target_quality": target,
        "validation_curve": curve,
        "fitted": fitted,
        "test": point,
        "test_curve": build_curve(confidence_test, local_test, llm_test, **costs),
    }
