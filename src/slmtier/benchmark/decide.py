"""The verdict: move the task to the SLM tier, or keep it on the LLM, under a declared policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from slmtier.config import DecisionConfig


@dataclass(frozen=True)
class Decision:
    verdict: str  # "slm" | "llm" | "cascade"
    reason: str
    rule: str  # the policy rule that decided

    def to_dict(self) -> dict:
        return asdict(self)


def decide(slm: dict, baseline: dict, policy: DecisionConfig) -> Decision:
    """`slm` if the SLM's primary metric is at most `max_quality_drop` below the baseline's, else `llm`."""
    metric = slm["quality"]["metric"]
    slm_value, base_value = slm["quality"]["value"], baseline["quality"]["value"]
    gap = slm_value - base_value
    rule = f"{metric}(slm) >= {metric}(baseline) - max_quality_drop ({policy.max_quality_drop:g})"
    figures = f"{metric} {slm_value:.3f} vs {base_value:.3f} (gap {gap:+.3f}, allowed drop {policy.max_quality_drop:g})"
    # The tolerance keeps float noise (0.78 - 0.80 = -0.0200000000000001) from flipping a verdict at the boundary.
    if gap >= -policy.max_quality_drop - 1e-9:
        return Decision("slm", f"the fine-tuned SLM is good enough: {figures}", rule)
    return Decision("llm", f"the fine-tuned SLM falls short: {figures}", rule)
