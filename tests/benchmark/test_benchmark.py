"""Decision policy, few-shot selection and latency summaries."""

import pytest

from slmtier.benchmark.candidates import select_few_shot
from slmtier.benchmark.decide import TierEvidence, decide_tiers
from slmtier.benchmark.summary import percentile
from slmtier.config import DecisionConfig
from slmtier.data import Example


def gap(value, low, high, n=400):
    return {"value": value, "low": low, "high": high, "n": n}


# The SLM's p95 latency and month, and its cascade's, against an LLM that costs 12,000 USD a month.
SLM_FIGURES = {"p95_ms": 100.0, "monthly_usd": 66.0, "cascade_p95_ms": 900.0, "cascade_monthly_usd": 3000.0}


def decide_slm(gap: dict, policy: DecisionConfig, **figures):
    """The verdict (decide_tiers) with the generative SLM as the only local tier."""
    evidence = TierEvidence("slm", gap, **{**SLM_FIGURES, **figures})
    return decide_tiers(metric="accuracy", policy=policy, tiers=[evidence], llm_monthly_usd=12000.0)


@pytest.mark.parametrize(
    ("interval", "verdict"),
    [(gap(0.01, -0.015, 0.035), "slm"), (gap(0.0, -0.025, 0.025), "llm"), (gap(-0.05, -0.08, -0.02), "llm")],
)
def test_slm_needs_the_gap_interval_above_minus_the_margin(interval, verdict):
    decision = decide_slm(interval, DecisionConfig(margin=0.02))
    assert decision.verdict == verdict
    assert "interval [" in decision.reason and "-0.02" in decision.reason
    assert "paired bootstrap interval of accuracy(slm) - accuracy(llm) > -0.02" in decision.rule


def test_a_latency_slo_or_a_budget_vetoes_the_slm():
    good = gap(0.01, -0.01, 0.03)
    slow = decide_slm(good, DecisionConfig(max_p95_latency_ms=50))
    assert slow.verdict == "llm" and "p95 latency 100 ms vs SLO 50 ms" in slow.reason
    poor = decide_slm(good, DecisionConfig(max_monthly_usd=50))
    assert poor.verdict == "llm" and "monthly cost 66 USD vs budget 50 USD" in poor.reason
    assert [c["rule"] for c in poor.checks[:2]] == ["non-inferior", "budget"]


def test_cascade_wins_only_when_non_inferior_and_cheaper_than_the_llm():
    weak_slm, good_cascade = gap(-0.06, -0.09, -0.03), gap(-0.005, -0.018, 0.008)
    policy = DecisionConfig(margin=0.02)
    won = decide_slm(weak_slm, policy, cascade_gap=good_cascade)
    assert won.verdict == "cascade" and "3,000 vs 12,000 USD a month" in won.reason
    assert decide_slm(weak_slm, policy, cascade_gap=good_cascade, cascade_monthly_usd=13000.0).verdict == "llm"
    weak = decide_slm(weak_slm, policy, cascade_gap=gap(-0.03, -0.05, -0.01))
    assert weak.verdict == "llm" and "cascade: accuracy gap -0.030" in weak.reason


def test_cost_model_by_hand():
    from slmtier.benchmark.cost import HOURS_PER_MONTH, monthly_local, price_local, project_month
    from slmtier.config import HardwareConfig

    box = HardwareConfig(name="l4", usd_per_hour=0.72, requests_per_s=None)
    slm = price_local(box, measured_requests_per_s=20.0)
    assert slm["usd_per_1k"] == pytest.approx(0.01)  # 0.72 USD/h / (20 * 3600 requests/h) * 1000
    # 5M requests a month on one box: capacity 20 * 3600 * 730 = 52.56M, so one box; 0.72 * 730 = 525.6 USD
    llm = {"per_1k_requests_usd": 2.0}
    month = project_month(local=slm, llm=llm, llm_is_local=False, hardware=box, volume=5_000_000, cascade_rate=0.25)
    assert month["local"] == {"boxes": 1, "capacity_per_box": 52_560_000, "usd": pytest.approx(525.6)}
    assert month["llm_usd"] == pytest.approx(10_000.0)  # 5M * 2 USD / 1000
    assert month["saving_usd"] == pytest.approx(9474.4) and month["saving_pct"] == pytest.approx(0.94744)
    assert month["break_even_monthly_requests"] == 262_800  # 525.6 USD / 0.002 USD per request
    assert month["cascade_usd"] == pytest.approx(525.6 + 2500.0)
    assert monthly_local(box, 1.0, 5_000_000)["boxes"] == 2  # 1 req/s: 2.628M a month per box
    # A local baseline is priced as boxes too: 1 req/s needs 2 boxes for 5M requests = 2 * 525.6 USD.
    local = project_month(local=slm, llm={"per_1k_requests_usd": 0.01, "requests_per_s": 1.0}, llm_is_local=True,
                          hardware=box, volume=5_000_000, cascade_rate=None)  # fmt: skip
    assert local["llm_usd"] == pytest.approx(1051.2) and "break_even_monthly_requests" not in local
    declared = price_local(HardwareConfig(name="h100", usd_per_hour=3.6, requests_per_s=100.0), 0.5)
    assert declared["usd_per_1k"] == pytest.approx(0.01) and "declared" in declared["basis"]
    assert HOURS_PER_MONTH == 730


def test_threshold_fitting_on_a_crafted_case():
    from slmtier.benchmark.cascade import build_curve, evaluate_threshold, fit_threshold

    # Six examples: the SLM is wrong exactly where it is least confident (0.2, 0.3); the LLM is always right.
    confidence = [0.9, 0.8, 0.3, 0.95, 0.2, 0.7]
    slm = [[1, 1], [1, 1], [0, 1], [1, 1], [0, 1], [1, 1]]
    llm = [[1, 1]] * 6
    curve = build_curve(confidence, slm, llm, local_usd_per_1k=0.1, llm_usd_per_1k=2.0)
    # thresholds 0 (never), each confidence, and just above 1 (always)
    assert [p["escalation_rate"] for p in curve] == pytest.approx([0, 0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1])
    assert curve[0]["threshold"] == 0.0 and curve[-1]["threshold"] > 1.0
    fitted = fit_threshold(curve, target_quality=1.0)
    assert fitted["threshold"] == 0.7 and fitted["escalation_rate"] == pytest.approx(2 / 6)  # escalate 0.2 and 0.3
    assert fitted["quality"] == 1.0 and fitted["usd_per_1k"] == pytest.approx(0.1 + 2.0 * 2 / 6)
    assert fitted["random_routing_quality"] == pytest.approx(4 / 6 + 2 / 6 * 2 / 6)  # what chance would reach
    never = fit_threshold(curve, target_quality=0.5)
    assert never["escalation_rate"] == 0 and never["threshold"] == 0.0  # never escalating suffices, on any data
    assert fit_threshold(curve, target_quality=1.01) is None
    on_test = evaluate_threshold(
        0.7, [0.1, 0.99], [[0, 1], [1, 1]], [[1, 1], [0, 1]], local_usd_per_1k=0, llm_usd_per_1k=1
    )
    assert on_test["quality"] == 1.0 and on_test["escalation_rate"] == 0.5


def test_few_shot_covers_every_label_and_is_fixed_by_seed():
    examples = [Example(str(i), f"text {i}", label) for i, label in enumerate(["a", "b", "c", "d"] * 10)]
    shots = select_few_shot(examples, 4, seed=0)
    assert sorted(shot.target for shot in shots) == ["a", "b", "c", "d"]
    assert shots == select_few_shot(examples, 4, seed=0)
    assert shots != select_few_shot(examples, 4, seed=1)
    assert len(select_few_shot(examples, 100, seed=0)) == 40
    assert select_few_shot(examples, 0, seed=0) == []


def test_few_shot_on_free_form_targets_is_a_sample():
    examples = [Example(str(i), f"text {i}", f"summary {i}") for i in range(20)]
    assert len(select_few_shot(examples, 3, seed=0)) == 3


def test_percentile_interpolates():
    assert percentile([1.0], 95) == 1.0
    assert percentile([0.0, 10.0], 50) == 5.0
    assert percentile(list(range(101)), 95) == 95.0


def tier(name, low, monthly, per_1k, cascade_low=None, cascade_monthly=None):
    cascade = None if cascade_low is None else gap(cascade_low + 0.02, cascade_low, cascade_low + 0.04)
    return TierEvidence(name, gap(low + 0.02, low, low + 0.04), p95_ms=50.0, monthly_usd=monthly, usd_per_1k=per_1k,
                        cascade_gap=cascade, cascade_p95_ms=900.0, cascade_monthly_usd=cascade_monthly)  # fmt: skip


def test_the_verdict_names_the_cheapest_tier_that_passes():
    policy = DecisionConfig(margin=0.02)
    both = decide_tiers(metric="accuracy", policy=policy, llm_monthly_usd=12000.0,
                        tiers=[tier("encoder", -0.01, 66.0, 0.0001), tier("slm", 0.0, 66.0, 0.002)])  # fmt: skip
    assert both.verdict == "encoder" and both.tier == "encoder"  # same boxes a month: cheaper per request wins
    assert "the fine-tuned encoder is non-inferior" in both.reason and "slm passes too" in both.reason
    assert both.rule.startswith("the cheapest of encoder, slm for which")
    dear = [tier("encoder", -0.01, 700.0, 0.0001), tier("slm", 0.0, 66.0, 0.002)]
    dearer_boxes = decide_tiers(metric="accuracy", policy=policy, llm_monthly_usd=12000.0, tiers=dear)
    assert dearer_boxes.verdict == "slm"
    only_slm = decide_tiers(metric="accuracy", policy=policy, llm_monthly_usd=12000.0,
                            tiers=[tier("encoder", -0.05, 66.0, 0.0001), tier("slm", 0.0, 66.0, 0.002)])  # fmt: skip
    assert only_slm.verdict == "slm" and [c["passed"] for c in only_slm.checks] == [False, True]


def test_without_a_passing_tier_the_cheapest_passing_cascade_wins_else_the_llm():
    policy = DecisionConfig(margin=0.02)
    tiers = [tier("encoder", -0.06, 66.0, 0.0001, cascade_low=-0.01, cascade_monthly=3000.0),
             tier("slm", -0.05, 66.0, 0.002, cascade_low=-0.01, cascade_monthly=2500.0)]  # fmt: skip
    won = decide_tiers(metric="accuracy", policy=policy, tiers=tiers, llm_monthly_usd=12000.0)
    assert won.verdict == "cascade" and won.tier == "slm" and won.reason.startswith("cascade (slm first)")
    assert {check.get("via") for check in won.checks if check["tier"] == "cascade"} == {"encoder", "slm"}
    weak = [tier("encoder", -0.06, 66.0, 0.0001, cascade_low=-0.04, cascade_monthly=3000.0),
            tier("slm", -0.05, 66.0, 0.002)]  # fmt: skip
    kept = decide_tiers(metric="accuracy", policy=policy, tiers=weak, llm_monthly_usd=12000.0)
    assert kept.verdict == "llm" and kept.tier is None
    assert "encoder: accuracy gap -0.040" in kept.reason and "slm: accuracy gap -0.030" in kept.reason
    assert "cascade: accuracy gap -0.020" in kept.reason


def test_a_declared_throughput_is_the_generative_tiers_and_the_encoder_declares_its_own():
    from slmtier.config import HardwareConfig
    from slmtier.tiers import encoder, slm

    def priced(hardware, *, tier):
        return tier.price(hardware, 200.0)  # 200 requests/s measured in this run

    cpu = HardwareConfig(name="cpu_2core", usd_per_hour=0.09)  # nothing declared: this run's measurement
    assert priced(cpu, tier=encoder)["requests_per_s"] == 200.0 and priced(cpu, tier=slm)["requests_per_s"] == 200.0
    gpu = HardwareConfig(name="l4", usd_per_hour=0.8, requests_per_s=40.0)
    assert priced(gpu, tier=slm)["usd_per_1k"] == pytest.approx(1000 * 0.8 / (3600 * 40))
    unpriced = priced(gpu, tier=encoder)
    assert unpriced["usd_per_1k"] is None and "hardware.encoder_requests_per_s" in unpriced["basis"]
    both = HardwareConfig(name="l4", usd_per_hour=0.8, requests_per_s=40.0, encoder_requests_per_s=900.0)
    assert priced(both, tier=encoder)["requests_per_s"] == 900.0 and "declared" in priced(both, tier=encoder)["basis"]
