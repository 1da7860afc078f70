"""Decision policy, few-shot selection and latency summaries."""

import pytest

from slmtier.benchmark.candidates import select_few_shot
from slmtier.benchmark.decide import decide
from slmtier.benchmark.summary import percentile
from slmtier.config import DecisionConfig
from slmtier.data import Example


def result(value):
    return {"quality": {"metric": "accuracy", "value": value}}


@pytest.mark.parametrize(
    ("slm", "baseline", "verdict"),
    [(0.90, 0.80, "slm"), (0.79, 0.80, "slm"), (0.78, 0.80, "slm"), (0.77, 0.80, "llm"), (0.10, 0.95, "llm")],
)
def test_decide_applies_the_allowed_drop(slm, baseline, verdict):
    decision = decide(result(slm), result(baseline), DecisionConfig(max_quality_drop=0.02))
    assert decision.verdict == verdict
    assert f"{slm:.3f} vs {baseline:.3f}" in decision.reason
    assert "max_quality_drop (0.02)" in decision.rule


def test_zero_margin_needs_the_slm_to_match():
    assert decide(result(0.80), result(0.80), DecisionConfig(max_quality_drop=0.0)).verdict == "slm"
    assert decide(result(0.799), result(0.80), DecisionConfig(max_quality_drop=0.0)).verdict == "llm"


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
