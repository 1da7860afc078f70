"""The verdict: move the task to the SLM tier, cascade (SLM first, LLM when unsure), or keep it on the LLM.

Rules, in order; every one evaluated is recorded in `checks`, and the reason names the one that decided:
1. `slm` when the SLM is non-inferior — the lower bound of the paired bootstrap interval of
   (SLM - LLM) on the primary metric is above -margin — and its p95 latency and monthly cost are within
   the SLO and the budget (when set).
2. `cascade` when the cascade fitted on validation is non-inferior on the test split in the same sense,
   costs less per month than the LLM alone, and meets the SLO and budget.
3. `llm` otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from slmtier.config import DecisionConfig


@dataclass(frozen=True)
class Decision:
    verdict: str  # "slm" | "cascade" | "llm"
    reason: str
    rule: str  # the policy, in one line
    checks: list[dict] = field(default_factory=list)  # {tier, rule, passed, detail} for every rule evaluated

    def to_dict(self) -> dict:
        return asdict(self)


def describe_policy(metric: str, policy: DecisionConfig) -> str:
    limits = []
    if policy.max_p95_latency_ms is not None:
        limits.append(f"p95 latency <= {policy.max_p95_latency_ms:g} ms")
    if policy.max_monthly_usd is not None:
        limits.append(f"monthly cost <= {policy.max_monthly_usd:,.0f} USD")
    within = f" and {' and '.join(limits)}" if limits else ""
    level = f"{100 * policy.confidence:g}%"
    return (
        f"slm if the lower bound of the {level} paired bootstrap interval of {metric}(slm) - {metric}(llm) "
        f"> -{policy.margin:g}{within}; else cascade if the same holds for the cascade and it costs less than "
        "the LLM alone; else llm"
    )


def decide(
    *,
    metric: str,
    gap: dict,
    policy: DecisionConfig,
    p95_ms: dict[str, float | None],
    monthly_usd: dict[str, float | None],
    cascade_gap: dict | None = None,
) -> Decision:
    """`gap`/`cascade_gap`: Interval dicts (value, low, high, n) of tier - LLM on the test split.
    `p95_ms` and `monthly_usd` are keyed by "slm", "cascade", "llm" (None = unknown)."""
    checks = _tier_checks("slm", metric, gap, policy, p95_ms, monthly_usd)
    rule = describe_policy(metric, policy)
    if all(check["passed"] for check in checks):
        return Decision("slm", f"the fine-tuned SLM is non-inferior: {checks[0]['detail']}", rule, checks)
    failed_slm = next(check for check in checks if not check["passed"])
    if cascade_gap is None:
        checks.append(
            {
                "tier": "cascade",
                "rule": "fitted",
                "passed": False,
                "detail": "no cascade: none was fitted, or no threshold reached the target on validation",
            }
        )
        return Decision("llm", f"keep the LLM: {failed_slm['detail']}", rule, checks)
    cascade_checks = _tier_checks("cascade", metric, cascade_gap, policy, p95_ms, monthly_usd)
    cheaper = _cheaper(monthly_usd.get("cascade"), monthly_usd.get("llm"))
    cascade_checks.append(cheaper)
    checks += cascade_checks
    if all(check["passed"] for check in cascade_checks):
        return Decision(
            "cascade", f"cascade: {cascade_checks[0]['detail']}; {cheaper['detail']} (the SLM alone: "
            f"{failed_slm['detail']})", rule, checks,
        )  # fmt: skip
    failed_cascade = next(check for check in cascade_checks if not check["passed"])
    return Decision("llm", f"keep the LLM: {failed_slm['detail']}; cascade: {failed_cascade['detail']}", rule, checks)


def _tier_checks(tier, metric, gap, policy, p95_ms, monthly_usd) -> list[dict]:
    passed = gap["low"] > -policy.margin
    interval = f"[{gap['low']:+.3f}, {gap['high']:+.3f}]"
    detail = (
        f"{metric} gap {gap['value']:+.3f}, {100 * policy.confidence:g}% interval {interval} (n={gap['n']}), "
        f"{'above' if passed else 'not above'} -{policy.margin:g}"
    )
    checks = [{"tier": tier, "rule": "non-inferior", "passed": passed, "detail": detail}]
    limits = [
        ("latency SLO", "p95 latency", p95_ms.get(tier), policy.max_p95_latency_ms, "ms", "SLO"),
        ("budget", "monthly cost", monthly_usd.get(tier), policy.max_monthly_usd, "USD", "budget"),
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
