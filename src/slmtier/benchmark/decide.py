"""The verdict: move the task to a local tier (the encoder, the generative SLM), cascade (a local tier first,
the LLM when it is unsure), or keep it on the LLM.

Rules, in order; every one evaluated is recorded in `checks`, and the reason names the one that decided:
0. `undecided` when the LLM failed to answer more of the test split than `max_llm_failure_rate` allows:
   every tier would be compared with answers that were never given.
1. A local tier passes when it is non-inferior — the lower bound of the paired bootstrap interval of
   (tier - LLM) on the primary metric is above -margin — and its p95 latency and monthly cost are within
   the SLO and the budget (when set). The verdict is the cheapest passing tier (monthly cost at the
   projected volume, then USD per 1k requests).
2. Else `cascade` when a cascade fitted on validation is non-inferior on the test split in the same sense,
   costs less per month than the LLM alone, and meets the SLO and budget; the cheapest such cascade.
3. `llm` otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from slmtier.config import DecisionConfig


@dataclass(frozen=True)
class Decision:
    verdict: str  # "encoder" | "slm" | "cascade" | "llm" | "undecided"
    reason: str
    rule: str  # the policy, in one line
    checks: list[dict] = field(default_factory=list)  # {tier, rule, passed, detail} for every rule evaluated
    tier: str | None = None  # the local tier that answers (first, for a cascade); None when the LLM keeps it

    def to_dict(self) -> dict:
        return asdict(self)


TIER_TITLES = {"slm": "the fine-tuned SLM", "encoder": "the fine-tuned encoder"}


@dataclass(frozen=True)
class TierEvidence:
    """What the decision reads about one local tier. Gaps are Interval dicts (value, low, high, n) of
    tier - LLM on the test split; None = unknown."""

    name: str  # "slm" | "encoder"
    gap: dict
    p95_ms: float | None = None
    monthly_usd: float | None = None
    usd_per_1k: float | None = None
    cascade_gap: dict | None = None  # None = no cascade fitted for this tier
    cascade_p95_ms: float | None = None
    cascade_monthly_usd: float | None = None


def describe_policy(metric: str, policy: DecisionConfig, tiers: list[str]) -> str:
    limits = []
    if policy.max_p95_latency_ms is not None:
        limits.append(f"p95 latency <= {policy.max_p95_latency_ms:g} ms")
    if policy.max_monthly_usd is not None:
        limits.append(f"monthly cost <= {policy.max_monthly_usd:,.0f} USD")
    within = f" and {' and '.join(limits)}" if limits else ""
    level = f"{100 * policy.confidence:g}%"
    if len(tiers) == 1:
        tier = tiers[0]
        return (
            f"{tier} if the lower bound of the {level} paired bootstrap interval of {metric}({tier}) - {metric}(llm) "
            f"> -{policy.margin:g}{within}; else cascade if the same holds for the cascade and it costs less than "
            "the LLM alone; else llm"
        )
    return (
        f"the cheapest of {', '.join(tiers)} for which the lower bound of the {level} paired bootstrap interval of "
        f"{metric}(tier) - {metric}(llm) > -{policy.margin:g}{within}; else the cheapest cascade (a tier first, "
        "the LLM when it is unsure) for which the same holds and that costs less than the LLM alone; else llm"
    )


def decide_tiers(
    *,
    metric: str,
    policy: DecisionConfig,
    tiers: list[TierEvidence],
    llm_monthly_usd: float | None,
    llm_failed: tuple[int, int] = (0, 0),
) -> Decision:
    """The verdict over one or more local tiers (module docstring: the rules). `llm_failed`: (requests the LLM
    did not answer, requests) on the test split."""
    rule = describe_policy(metric, policy, [tier.name for tier in tiers])
    checks, passing, failed = [], [], {}
    if llm_failed[0]:
        answered = _llm_answered(*llm_failed, policy.max_llm_failure_rate)
        checks.append(answered)
        if not answered["passed"]:
            reason = (
                f"no verdict: {answered['detail']}; every tier would be compared with answers the LLM never gave. "
                "Fix what failed (the report lists the reasons) and rerun the same command: answered requests "
                "come from the cache, only the failed ones are asked again"
            )
            return Decision("undecided", reason, rule, checks)
    for tier in tiers:
        tier_checks = _tier_checks(tier.name, metric, tier.gap, policy, tier.p95_ms, tier.monthly_usd)
        checks += tier_checks
        if all(check["passed"] for check in tier_checks):
            passing.append(tier)
        else:
            failed[tier.name] = next(check for check in tier_checks if not check["passed"])["detail"]
    if passing:
        best = min(passing, key=_cost_order)
        reason = (
            f"{TIER_TITLES.get(best.name, best.name)} is non-inferior: {checks[_first(checks, best.name)]['detail']}"
        )
        others = [tier.name for tier in passing if tier is not best]
        if others:
            reason += f"; the cheapest tier that passes ({', '.join(others)} passes too)"
        return Decision(best.name, reason, rule, checks, tier=best.name)
    alone = "; ".join(
        f"{name}: {detail}" if len(tiers) > 1 else detail for name, detail in failed.items()
    )  # what kept each tier from the task
    cascades = [tier for tier in tiers if tier.cascade_gap is not None]
    if not cascades:
        detail = "no cascade: none was fitted, or no threshold reached the target on validation"
        checks.append({"tier": "cascade", "rule": "fitted", "passed": False, "detail": detail})
        return Decision("llm", f"keep the LLM: {alone}", rule, checks)
    winners, cascade_failed = [], {}
    for tier in cascades:
        cascade_checks = _tier_checks("cascade", metric, tier.cascade_gap, policy, tier.cascade_p95_ms,
                                      tier.cascade_monthly_usd)  # fmt: skip
        cascade_checks.append(_cheaper(tier.cascade_monthly_usd, llm_monthly_usd))
        for check in cascade_checks:
            check["via"] = tier.name  # the tier that answers first
        checks += cascade_checks
        if all(check["passed"] for check in cascade_checks):
            winners.append((tier, cascade_checks))
        else:
            cascade_failed[tier.name] = next(check for check in cascade_checks if not check["passed"])["detail"]
    if winners:
        tier, won = min(winners, key=lambda item: _cost_order(item[0], cascade=True))
        via = f" ({tier.name} first)" if len(tiers) > 1 else ""
        the_tier = TIER_TITLES.get(tier.name, tier.name).replace("the fine-tuned ", "the ")
        return Decision(
            "cascade", f"cascade{via}: {won[0]['detail']}; {won[-1]['detail']} ({the_tier} alone: {alone})",
            rule, checks, tier=tier.name,
        )  # fmt: skip
    cascade_text = "; ".join(
        f"{name}: {detail}" if len(cascades) > 1 else detail for name, detail in cascade_failed.items()
    )
    return Decision("llm", f"keep the LLM: {alone}; cascade: {cascade_text}", rule, checks)


def _llm_answered(failed: int, n: int, limit: float) -> dict:
    passed = failed <= limit * n
    detail = (
        f"{failed} of {n} LLM answers failed or are missing ({100 * failed / n:.1f}%), "
        f"{'within' if passed else 'above'} the {100 * limit:g}% allowed (decision.max_llm_failure_rate)"
    )
    return {"tier": "llm", "rule": "answered", "passed": passed, "detail": detail}


def _first(checks: list[dict], tier: str) -> int:
    return next(index for index, check in enumerate(checks) if check["tier"] == tier)


def _cost_order(tier: TierEvidence, *, cascade: bool = False) -> tuple[float, float]:
    """Cheapest first: monthly cost at the projected volume, then USD per 1k requests; unknown last."""
    monthly = tier.cascade_monthly_usd if cascade else tier.monthly_usd
    return (math.inf if monthly is None else monthly, math.inf if tier.usd_per_1k is None else tier.usd_per_1k)


def _tier_checks(tier, metric, gap, policy, p95_ms: float | None, monthly_usd: float | None) -> list[dict]:
    passed = gap["low"] > -policy.margin
    interval = f"[{gap['low']:+.3f}, {gap['high']:+.3f}]"
    detail = (
        f"{metric} gap {gap['value']:+.3f}, {100 * policy.confidence:g}% interval {interval} (n={gap['n']}), "
        f"{'above' if passed else 'not above'} -{policy.margin:g}"
    )
    checks = [{"tier": tier, "rule": "non-inferior", "passed": passed, "detail": detail}]
    limits = [
        ("latency SLO", "p95 latency", p95_ms, policy.max_p95_latency_ms, "ms", "SLO"),
        ("budget", "monthly cost", monthly_usd, policy.max_monthly_usd, "USD", "budget"),
    ]
    for rule, what, measured, limit, unit, name in limits:
        if limit is None:
            continue
        shown = "unknown" if measured is None else f"{measured:,.0f} {unit}"
        detail = f"{what} {shown} vs {name} {limit:,.0f} {unit}"
        # An unknown figure cannot be shown to be within the limit, so it does not pass.
        checks.append(
            {"tier": tier, "rule": rule, "passed": measured is not None and measured <= limit, "detail": detail}
        )
    return checks


def _cheaper(cascade_usd: float | None, llm_usd: float | None) -> dict:
    if cascade_usd is None or llm_usd is None:
        return {"tier": "cascade", "rule": "cheaper than the LLM", "passed": False,
                "detail": "its cost cannot be compared with the LLM's (a tier is not priced)"}  # fmt: skip
    ok = cascade_usd < llm_usd
    return {"tier": "cascade", "rule": "cheaper than the LLM", "passed": ok,
            "detail": f"{cascade_usd:,.0f} vs {llm_usd:,.0f} USD a month"}  # fmt: skip
