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

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from slmtier.benchmark.cascade import ALWAYS, fit_threshold
from slmtier.monitor.logs import decode
from slmtier.monitor.reference import Reference

MIN_PAIRS = 30


@dataclass
class Pairs:
    """Requests with both answers, as arrays: the local confidence, the local tier's and the LLM's score parts
    (numerator, denominator) against the reference, each request's weight, and whether a human labelled it."""

    confidence: np.ndarray
    local: np.ndarray  # n x 2
    llm: np.ndarray  # n x 2
    weight: np.ndarray
    gold: np.ndarray

    def __len__(self) -> int:
        return len(self.confidence)

    def take(self, index: np.ndarray) -> Pairs:
        return Pairs(self.confidence[index], self.local[index], self.llm[index], self.weight[index], self.gold[index])


def reference_pairs(reference: Reference, records: pd.DataFrame, labels: dict | None) -> Pairs:
    requests = records[records["kind"] == "request"].drop_duplicates("request_id", keep="last")
    shadows = records[(records["kind"] == "shadow") & records["error"].isna()].drop_duplicates("request_id")
    escalated = requests[requests["escalated"].fillna(False).astype(bool) & (requests["tier"] == "llm")]
    parts = [escalated[["request_id", "local_confidence", "local_answer", "answer"]].assign(weight=1.0)]
    if reference.shadow_rate > 0:
        confidence = requests[["request_id", "local_confidence"]]
        shadowed = shadows[["request_id", "local_answer", "answer"]].merge(confidence, on="request_id")
        parts.append(shadowed.assign(weight=1.0 / reference.shadow_rate))
    rows = pd.concat(parts, ignore_index=True)
    rows = rows[rows["local_confidence"].notna()]
    scored: dict[tuple, tuple] = {}  # (local answer, reference answer, gold?) -> parts: few distinct for labels
    confidence, local, llm, weight, gold = [], [], [], [], []
    for request_id, local_confidence, local_answer, llm_answer, share in rows.itertuples(index=False):
        truth = labels.get(request_id) if labels else None
        key = (local_answer, llm_answer, None if truth is None else json.dumps(truth, sort_keys=True))
        if key not in scored:
            scored[key] = _score(reference, decode(local_answer), decode(llm_answer), truth)
        found = scored[key]
        if found is None:
            continue
        confidence.append(local_confidence)
        local.append(found[0])
        llm.append(found[1])
        weight.append(share)
        gold.append(truth is not None)
    return Pairs(np.asarray(confidence, float), np.asarray(local, float).reshape(-1, 2),
                 np.asarray(llm, float).reshape(-1, 2), np.asarray(weight, float), np.asarray(gold, bool))  # fmt: skip


def _score(reference: Reference, local, llm, gold) -> tuple | None:
    truth = gold if gold is not None else llm
    if truth is None:
        return None
    local_parts = reference.task.score_parts(reference.parse(local), truth)
    llm_parts = reference.task.score_parts(reference.parse(llm), truth) if gold is not None else (1.0, 1.0)
    return local_parts, llm_parts


def weighted_point(threshold: float, pairs: Pairs, *, local_usd: float, llm_usd: float) -> dict:
    """evaluate_threshold's figures with each pair weighted (quality as a weighted ratio of sums)."""
    escalate = pairs.confidence < threshold
    chosen = np.where(escalate[:, None], pairs.llm, pairs.local) * pairs.weight[:, None]
    rate = float(pairs.weight[escalate].sum() / pairs.weight.sum())
    denominator = chosen[:, 1].sum()
    return {
        "threshold": float(threshold),
        "escalation_rate": rate,
        "quality": float(chosen[:, 0].sum() / denominator) if denominator else 1.0,
        "usd_per_1k": local_usd + rate * llm_usd,
    }


def weighted_curve(pairs: Pairs, *, local_usd: float, llm_usd: float) -> dict[str, np.ndarray]:
    """weighted_point at every threshold (0, each distinct confidence, above 1) at once: sorted by confidence,
    escalating the first k pairs is a prefix, so cumulative sums give every point in O(n log n)."""
    order = np.argsort(pairs.confidence, kind="stable")
    confidence = pairs.confidence[order]
    weight = pairs.weight[order]
    llm = np.vstack([[0.0, 0.0], np.cumsum(pairs.llm[order] * weight[:, None], axis=0)])
    local = np.vstack([[0.0, 0.0], np.cumsum(pairs.local[order] * weight[:, None], axis=0)])
    escalated_weight = np.concatenate([[0.0], np.cumsum(weight)])
    thresholds = np.unique(np.concatenate([[0.0, ALWAYS], confidence]))
    k = np.searchsorted(confidence, thresholds, side="left")  # pairs escalated at each threshold
    numerator = llm[k, 0] + local[-1, 0] - local[k, 0]
    denominator = llm[k, 1] + local[-1, 1] - local[k, 1]
    quality = np.divide(numerator, denominator, out=np.ones_like(numerator), where=denominator > 0)
    rate = escalated_weight[k] / escalated_weight[-1]
    return {
        "threshold": thresholds,
        "escalation_rate": rate,
        "quality": quality,
        "usd_per_1k": local_usd + rate * llm_usd,
    }


def refit(reference: Reference, records: pd.DataFrame, labels: dict | None, *, n_resamples: int = 300,
          seed: int = 0, min_pairs: int = MIN_PAIRS) -> dict:  # fmt: skip
    """The current threshold's live quality, and the threshold the benchmark's rule picks on live pairs, with 95%
    bootstrap intervals of the quality and escalation rate there; and whether the verdict still holds."""
    pairs = reference_pairs(reference, records, labels)
    usd = reference.expected.get("usd_per_1k") or {}
    costs = {"local_usd": usd.get(reference.local) or 0.0, "llm_usd": usd.get("llm") or 0.0}
    result = {"pairs": len(pairs), "gold_pairs": int(pairs.gold.sum()),
              "reference": "human labels" if pairs.gold.any() else "the LLM's answers",
              "threshold": reference.escalate_below}  # fmt: skip
    if len(pairs) < min_pairs or reference.escalate_below is None:
        result["sentence"] = (
            f"Re-fit skipped: {len(pairs)} requests carry both answers, {min_pairs} are needed"
            if reference.escalate_below is not None
            else "Re-fit skipped: this routing is not a cascade, so it has no threshold"
        )
        return result
    if pairs.gold.any():
        pairs = pairs.take(np.flatnonzero(pairs.gold))
        llm = pairs.llm * pairs.weight[:, None]
        target = llm[:, 0].sum() / llm[:, 1].sum() - reference.margin
    else:
        target = 1.0 - reference.margin
    curve = weighted_curve(pairs, **costs)
    # The benchmark's rule (fit_threshold: the cheapest point reaching the target, ties to the higher quality),
    # given the points that can win: those reaching the target at the lowest cost.
    reaching = np.flatnonzero(curve["quality"] >= target - 1e-12)
    if len(reaching):
        reaching = reaching[curve["usd_per_1k"][reaching] <= curve["usd_per_1k"][reaching].min() + 1e-15]
    fitted = fit_threshold([{key: float(values[i]) for key, values in curve.items()} for i in reaching], target)
    current = weighted_point(reference.escalate_below, pairs, **costs)
    current.update(_intervals(pairs, reference.escalate_below, costs, n_resamples, seed))
    shown = np.unique(np.linspace(0, len(curve["threshold"]) - 1, min(200, len(curve["threshold"]))).astype(int))
    result.update({"target_quality": target, "current": current,
                   "curve": [{key: float(values[i]) for key, values in curve.items()} for i in shown]})  # fmt: skip
    holds = current["quality_interval"][0] >= target
    if fitted is not None:
        fitted = {**fitted, **_intervals(pairs, fitted["threshold"], costs, n_resamples, seed)}
    result["fitted"] = fitted
    result["holds"] = holds
    result["next_step"], result["sentence"] = _advice(holds, current, fitted, target, costs)
    return result


def _intervals(pairs: Pairs, threshold: float, costs: dict, n_resamples: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    qualities, rates = [], []
    for _ in range(n_resamples):
        point = weighted_point(threshold, pairs.take(rng.integers(0, len(pairs), len(pairs))), **costs)
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
    confirmed = fitted["quality_interval"][0] >= target
    if not confirmed and high >= target:
        # Neither threshold is shown to miss or to reach the target: the pairs are too few to tell them apart.
        return (
            "more_data",
            f"The verdict is not confirmed: {now}; the interval contains the target, and so it does at the "
            f"{refitted}. Keep the deployed routing, shadow more traffic (the routing's shadow_rate) and re-run "
            "the monitor.",
        )
    advice = f"The verdict no longer holds: {now}. Deploy the {refitted} (proposed routing.yaml)"
    if not confirmed:
        advice += "; its interval reaches below the target too: confirm it by re-running the monitor on more traffic"
    if fitted["escalation_rate"] > max(2 * current["escalation_rate"], 0.5):
        return "retrain", advice + "; it escalates far more than before: retrain the local tier on the logged traffic."
    return "refit", advice + "."
