"""Re-fitting a cascade's threshold on live traffic, with the benchmark's own rule (slmtier.benchmark.cascade).

The log holds reference pairs (the local tier's answer and the LLM's, for the same request) of two kinds:
- every escalated request: the router logs the local answer it did not serve, and the LLM answered;
- the shadowed requests: a hash-sampled share (`shadow.rate`) of the locally answered ones, also asked of the LLM.
Escalated requests are all there, locally answered ones only at the shadow rate, so each shadowed pair stands
for 1 / rate requests (inverse-probability weights): the re-fitted curve is then the curve over all traffic.

The reference is the LLM's answer (the cascade's quality is its agreement with the LLM, and the target is 1 -
margin: a cascade that disagrees with the LLM on at most `margin` of the metric cannot be worse than it by more),
or, for the requests a human labelled (`labels`), the gold answer, where the target is the benchmark's: the
LLM's quality on those requests minus the margin.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slmtier.benchmark.cascade import ALWAYS, fit_threshold
from slmtier.monitor.logs import decode
from slmtier.monitor.reference import Reference

MIN_PAIRS = 30


def reference_pairs(reference: Reference, records: pd.DataFrame, labels: dict | None) -> pd.DataFrame:
    """One row per request with both answers: local confidence, the local and the LLM's score parts against the
    reference, and its weight."""
    requests = records[records["kind"] == "request"].drop_duplicates("request_id", keep="last")
    shadows = records[(records["kind"] == "shadow") & records["error"].isna()].drop_duplicates("request_id")
    rows = []
    escalated = requests[requests["escalated"].fillna(False) & (requests["tier"] == "llm")]
    for item in escalated.itertuples():
        rows.append((item.request_id, item.local_confidence, item.local_answer, item.answer, 1.0))
    if reference.shadow_rate > 0:
        confidence = dict(zip(requests["request_id"], requests["local_confidence"], strict=True))
        for item in shadows.itertuples():
            if item.request_id in confidence:
                rows.append((item.request_id, confidence[item.request_id], item.local_answer, item.answer,
                             1.0 / reference.shadow_rate))  # fmt: skip
    pairs = []
    for request_id, local_confidence, local_answer, llm_answer, weight in rows:
        if local_confidence is None or np.isnan(local_confidence):
            continue
        local, llm = decode(local_answer), decode(llm_answer)
        gold = labels.get(request_id) if labels else None
        truth = gold if gold is not None else llm
        if truth is None:
            continue
        local_parts = reference.task.score_parts(reference.parse(local), truth)
        llm_parts = reference.task.score_parts(reference.parse(llm), truth) if gold is not None else (1.0, 1.0)
        pairs.append({"request_id": request_id, "confidence": float(local_confidence), "local": local_parts,
                      "llm": llm_parts, "weight": weight, "gold": gold is not None})  # fmt: skip
    return pd.DataFrame(pairs, columns=["request_id", "confidence", "local", "llm", "weight", "gold"])


def weighted_point(threshold: float, pairs: pd.DataFrame, *, local_usd: float, llm_usd: float) -> dict:
    """evaluate_threshold's figures with each pair weighted (quality as a weighted ratio of sums)."""
    weight = pairs["weight"].to_numpy(float)
    escalate = pairs["confidence"].to_numpy(float) < threshold
    local, llm = np.array(pairs["local"].tolist(), float), np.array(pairs["llm"].tolist(), float)
    chosen = np.where(escalate[:, None], llm, local) * weight[:, None]
    rate = float(weight[escalate].sum() / weight.sum())
    denominator = chosen[:, 1].sum()
    return {
        "threshold": float(threshold),
        "escalation_rate": rate,
        "quality": float(chosen[:, 0].sum() / denominator) if denominator else 1.0,
        "usd_per_1k": local_usd + rate * llm_usd,
    }


def refit(reference: Reference, records: pd.DataFrame, labels: dict | None, *, n_resamples: int = 300,
          seed: int = 0, min_pairs: int = MIN_PAIRS) -> dict:  # fmt: skip
    """The current threshold's live quality, and the threshold the benchmark's rule picks on live pairs, with 95%
    bootstrap intervals of the quality and escalation rate there; and whether the verdict still holds."""
    pairs = reference_pairs(reference, records, labels)
    usd = reference.expected.get("usd_per_1k") or {}
    costs = {"local_usd": usd.get(reference.local) or 0.0, "llm_usd": usd.get("llm") or 0.0}
    result = {"pairs": len(pairs), "gold_pairs": int(pairs["gold"].sum()) if len(pairs) else 0,
              "reference": "human labels" if labels and len(pairs) and pairs["gold"].any() else "the LLM's answers",
              "threshold": reference.escalate_below}  # fmt: skip
    if len(pairs) < min_pairs or reference.escalate_below is None:
        result["sentence"] = (
            f"Re-fit skipped: {len(pairs)} requests carry both answers, {min_pairs} are needed"
            if reference.escalate_below is not None
            else "Re-fit skipped: this routing is not a cascade, so it has no threshold"
        )
        return result
    if result["reference"] == "human labels":
        pairs = pairs[pairs["gold"]]
        llm = np.array(pairs["llm"].tolist(), float) * pairs["weight"].to_numpy(float)[:, None]
        target = llm[:, 0].sum() / llm[:, 1].sum() - reference.margin
    else:
        target = 1.0 - reference.margin
    thresholds = sorted({0.0, *pairs["confidence"].unique().tolist(), ALWAYS})
    curve = [weighted_point(t, pairs, **costs) for t in thresholds]
    current = weighted_point(reference.escalate_below, pairs, **costs)
    current.update(_intervals(pairs, reference.escalate_below, costs, n_resamples, seed))
    fitted = fit_threshold(curve, target)
    result.update({"target_quality": target, "current": current, "curve": curve})
    holds = current["quality_interval"][0] >= target
    if fitted is not None:
        fitted = {**fitted, **_intervals(pairs, fitted["threshold"], costs, n_resamples, seed)}
    result["fitted"] = fitted
    result["holds"] = holds
    result["next_step"], result["sentence"] = _advice(holds, current, fitted, target, costs)
    return result


def _intervals(pairs: pd.DataFrame, threshold: float, costs: dict, n_resamples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    qualities, rates = [], []
    for _ in range(n_resamples):
        sample = pairs.iloc[rng.integers(0, len(pairs), len(pairs))]
        point = weighted_point(threshold, sample, **costs)
        qualities.append(point["quality"])
        rates.append(point["escalation_rate"])
    return {"quality_interval": [float(value) for value in np.quantile(qualities, [0.025, 0.975])],
            "escalation_rate_interval": [float(value) for value in np.quantile(rates, [0.025, 0.975])]}  # fmt: skip


def _advice(holds: bool, current: dict, fitted: dict | None, target: float, costs: dict) -> tuple[str, str]:
    low, high = current["quality_interval"]
    now = (f"at the deployed threshold {current['threshold']:.4g} the cascade's live quality is "
           f"{current['quality']:.3f} (95% CI {low:.3f}-{high:.3f}) against the target {target:.3f}, escalating "
           f"{current['escalation_rate']:.1%}")  # fmt: skip
    if fitted is None or fitted["threshold"] >= ALWAYS:
        return (
            "llm",
            f"The verdict no longer holds: {now}; no threshold reaches the target short of escalating "
            "everything: route this task to the LLM, and retrain the local tier on the logged traffic.",
        )
    refitted = (f"re-fitted threshold {fitted['threshold']:.4g}: quality {fitted['quality']:.3f} "
                f"(95% CI {fitted['quality_interval'][0]:.3f}-{fitted['quality_interval'][1]:.3f}), escalating "
                f"{fitted['escalation_rate']:.1%}, {fitted['usd_per_1k']:.4g} USD per 1k")  # fmt: skip
    if holds:
        return "keep", f"The verdict holds: {now}. The {refitted} (proposed, for review)."
    if costs["llm_usd"] and fitted["usd_per_1k"] >= costs["llm_usd"]:
        return (
            "llm",
            f"The verdict no longer holds: {now}; the {refitted} costs as much as the LLM alone: "
            "route this task to the LLM, and retrain the local tier on the logged traffic.",
        )
    advice = f"The verdict no longer holds: {now}. Deploy the {refitted} (proposed routing.yaml)"
    if fitted["escalation_rate"] > max(2 * current["escalation_rate"], 0.5):
        return "retrain", advice + "; it escalates far more than before: retrain the local tier on the logged traffic."
    return "refit", advice + "."
