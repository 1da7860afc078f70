"""Monitor checks: each quiet on undrifted windows and firing on drifted ones, then the family's false-alarm rate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slmtier.monitor.checks import (
    Check,
    category_drift,
    category_share,
    charset_drift,
    confidence_drift,
    estimated_quality,
    input_drift,
    length_drift,
    limit_check,
    per_check_alpha,
    rate_check,
    script_of,
    shadow_quality,
    two_rate_check,
)

ALPHA = 0.05

SUBJECTS = ["my invoice", "the login page", "our account", "the mobile app", "my last order", "the password reset",
            "the export", "my subscription", "the dashboard", "the api key"]  # fmt: skip
PROBLEMS = ["is wrong", "does not load", "charged me twice", "keeps timing out", "shows an error", "is missing",
            "stopped working", "looks empty", "is very slow", "was cancelled"]  # fmt: skip
ASKS = ["please help", "can you check", "what should I do", "thanks in advance", "is this known", "urgent"]
GERMAN = ["die rechnung ist falsch, bitte prüfen", "ich kann mich nicht anmelden, bitte helfen",
          "mein konto wurde gesperrt, danke", "die bestellung fehlt noch, bitte schnell"]  # fmt: skip


def tickets(n: int, rng: np.random.Generator, *, german_share: float = 0.0) -> list[str]:
    """Short English support tickets, a `german_share` of them in German: the drift a new market brings."""
    texts = [f"{rng.choice(SUBJECTS)} {rng.choice(PROBLEMS)}, {rng.choice(ASKS)}" for _ in range(n)]
    return [str(rng.choice(GERMAN)) if rng.random() < german_share else text for text in texts]


# ---- per_check_alpha -------------------------------------------------------------------------------------------


def test_per_check_alpha_is_bonferroni() -> None:
    assert per_check_alpha(0.05, 8) == pytest.approx(0.00625)
    assert per_check_alpha(0.1, 1) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="n_checks"):
        per_check_alpha(0.05, 0)
    with pytest.raises(ValueError, match="alpha"):
        per_check_alpha(1.5, 3)


# ---- shadow_quality --------------------------------------------------------------------------------------------


def test_shadow_quality_quiet_on_same_agreement_and_gives_wilson_interval() -> None:
    rng = np.random.default_rng(1)
    check = shadow_quality(rng.random(300) < 0.9, rng.random(500) < 0.9, alpha=ALPHA)
    assert not check.fired and check.p_value > ALPHA
    assert check.interval[0] < check.value < check.interval[1] and check.details["binary"]
    assert "not significantly lower" in check.sentence and "matched the LLM" in check.sentence


def test_shadow_quality_fires_on_lower_agreement() -> None:
    window, reference = np.r_[np.ones(70), np.zeros(30)], np.r_[np.ones(450), np.zeros(50)]
    check = shadow_quality(window, reference, alpha=ALPHA)
    assert check.fired and check.p_value < 0.001
    assert check.sentence.startswith("Shadow quality: the local tier matched the LLM on 70.0% (95% CI 60.4-78.1%)")
    assert "against 90.0% on the benchmark split; significantly lower" in check.sentence


def test_shadow_quality_margin_tolerates_a_small_drop() -> None:
    rng = np.random.default_rng(2)
    window, reference = rng.beta(8.6, 1.4, 2000), rng.beta(9, 1, 2000)  # means 0.86 and 0.90
    assert shadow_quality(window, reference, alpha=ALPHA).fired
    check = shadow_quality(window, reference, alpha=ALPHA, margin=0.1)
    assert not check.fired and "by more than the margin 0.1" in check.sentence
    assert (
        not check.details["binary"] and "scored 0.859 against the LLM (95% CI 0.854-0.863)" in check.sentence
    )  # bootstrap interval for non-binary scores
    assert check.interval[0] < check.value < check.interval[1]


def test_shadow_quality_constant_scores_do_not_fire() -> None:
    check = shadow_quality(np.ones(40), np.ones(40), alpha=ALPHA)
    assert not check.fired and check.p_value == 1.0


# ---- estimated_quality -----------------------------------------------------------------------------------------


def test_estimated_quality_quiet_on_same_confidences() -> None:
    rng = np.random.default_rng(3)
    check = estimated_quality(rng.beta(8, 2, 400), rng.beta(8, 2, 600), alpha=ALPHA, reference_quality=0.79)
    assert not check.fired and check.p_value > ALPHA
    # The realized accuracy's interval: about m(1 - m)/n, the binomial variance.
    half_width = 1.96 * np.sqrt(check.value * (1 - check.value) / 400)
    assert check.interval == pytest.approx((check.value - half_width, check.value + half_width), abs=0.003)
    assert "where it measured 79.0%" in check.sentence


def test_estimated_quality_fires_when_confidence_falls() -> None:
    rng = np.random.default_rng(4)
    check = estimated_quality(rng.beta(5, 3, 400), rng.beta(8, 2, 600), alpha=ALPHA)
    assert check.fired and check.value == pytest.approx(5 / 8, abs=0.03)
    assert "should get 6" in check.sentence and "significantly lower" in check.sentence
    assert "not significantly" not in check.sentence


# ---- input_drift -----------------------------------------------------------------------------------------------


def test_input_drift_quiet_on_same_traffic() -> None:
    rng = np.random.default_rng(5)
    check = input_drift(tickets(200, rng), tickets(200, rng), alpha=ALPHA, n_permutations=39)
    assert not check.fired and check.p_value > ALPHA
    assert check.statistic < check.details["null_p95"] + 0.05
    assert "none detected" in check.sentence and "most telling" not in check.sentence


def test_input_drift_stops_permuting_once_the_null_has_reached_the_observed_auc_ten_times() -> None:
    rng = np.random.default_rng(5)
    check = input_drift(tickets(200, rng), tickets(200, rng), alpha=ALPHA, n_permutations=199, stop_after=10)
    run = check.details["n_permutations"]
    assert run < 199 and check.p_value == pytest.approx(10 / run) and not check.fired


def test_input_drift_fires_on_a_new_language_and_names_its_words() -> None:
    rng = np.random.default_rng(6)
    check = input_drift(tickets(400, rng), tickets(100, rng, german_share=0.3), alpha=ALPHA, n_permutations=39)
    assert check.fired and check.p_value == pytest.approx(1 / 40) and check.statistic > 0.6
    assert check.details["compared"] == {"reference": 300, "window": 100}  # larger side capped at 3x
    assert "most telling words: " in check.sentence and "'bitte'" in check.sentence


def test_input_drift_refuses_permutations_that_cannot_reach_alpha() -> None:
    with pytest.raises(ValueError, match="use at least 160"):
        input_drift(["a"] * 40, ["b"] * 40, alpha=per_check_alpha(0.05, 8), n_permutations=99)


# ---- length, confidence --------------------------------------------------------------------------------------


def test_length_drift() -> None:
    rng = np.random.default_rng(7)
    reference = np.round(rng.lognormal(5, 0.5, 600))
    assert not length_drift(reference, np.round(rng.lognormal(5, 0.5, 300)), alpha=ALPHA).fired
    check = length_drift(reference, np.round(rng.lognormal(5.5, 0.5, 300)), alpha=ALPHA)
    assert check.fired and check.value > 1.4 * check.reference
    assert f"median {check.value:.3g} characters in these 300 requests against {check.reference:.3g}" in check.sentence


def test_confidence_drift() -> None:
    rng = np.random.default_rng(8)
    reference = rng.beta(8, 2, 600)
    assert not confidence_drift(reference, rng.beta(8, 2, 300), alpha=ALPHA).fired
    check = confidence_drift(reference, rng.beta(4, 2, 300), alpha=ALPHA)
    assert (
        check.fired and check.sentence.startswith("Confidence: median 0.6") and "distributions differ" in check.sentence
    )


# ---- scripts and categories ------------------------------------------------------------------------------------


def test_script_of() -> None:
    assert script_of("Die Rechnung ist falsch!") == "latin"
    assert script_of("Счёт неверный, order 123") == "cyrillic"
    assert script_of("请帮我查一下订单") == "cjk"
    assert script_of("주문이 없어요") == "hangul"
    assert script_of("الفاتورة خاطئة") == "arabic"
    assert script_of("12345 ?!") == "none"


def test_charset_drift_names_a_script_never_seen() -> None:
    reference = ["latin"] * 450 + ["cyrillic"] * 50
    assert not charset_drift(reference, ["latin"] * 180 + ["cyrillic"] * 20, alpha=ALPHA).fired
    check = charset_drift(reference, ["latin"] * 150 + ["cyrillic"] * 20 + ["arabic"] * 30, alpha=ALPHA)
    assert check.fired and check.details["unseen"] == ["arabic"]
    assert "new in this window: 'arabic' (30)" in check.sentence and "'arabic' 0.0% -> 15.0%" in check.sentence


def test_category_drift_names_the_categories_that_moved() -> None:
    reference = ["billing"] * 200 + ["outage"] * 200 + ["access"] * 100
    assert not category_drift(reference, ["billing"] * 80 + ["outage"] * 78 + ["access"] * 42, alpha=ALPHA).fired
    check = category_drift(reference, ["billing"] * 140 + ["outage"] * 40 + ["access"] * 20, alpha=ALPHA)
    assert check.fired and check.details["unseen"] == []
    assert "moved most: 'billing' 40.0% -> 70.0%, 'outage' 40.0% -> 20.0%" in check.sentence


def test_category_drift_pools_rare_categories_and_skips_a_single_one() -> None:
    # Expected counts in the window row: refund 29/6 < 5 and spam 1/6 are pooled; the pool (25 + 5)/6 = 5 is enough.
    reference = ["billing"] * 300 + ["outage"] * 175 + ["refund"] * 25
    window = ["billing"] * 60 + ["outage"] * 35 + ["refund"] * 4 + ["spam"] * 1
    check = category_drift(reference, window, alpha=ALPHA)
    assert check.details["columns"] == ["billing", "outage", "(other)"] and check.details["dof"] == 2
    assert check.details["unseen"] == ["spam"] and not check.fired
    # A pool still too small takes in the next rarest real category: outage.
    thin = category_drift(reference[:-20], window[:-4] + ["spam"], alpha=ALPHA)
    assert thin.details["columns"] == ["billing", "(other)"] and thin.details["dof"] == 1
    single = category_drift(["latin"] * 100, ["latin"] * 98 + ["cyrillic"] * 2, alpha=ALPHA, name="input script")
    assert single.details["skipped"] and not single.fired and single.p_value is None
    assert "nearly every request is 'latin', too few others" in single.sentence and "'cyrillic' (2)" in single.sentence


def spread(n: int, labels: list[str]) -> list[str]:
    """n answers spread as evenly as they go over `labels` (the first ones get the remainder)."""
    return [labels[i % len(labels)] for i in range(n)]


INTENTS = [f"intent_{i:02d}" for i in range(77)]


def test_category_share_finds_one_label_of_77_that_the_chi_square_misses() -> None:
    reference = spread(26 * 77, INTENTS)  # 2,002: 26 of each, 1.3%
    quiet = spread(1000, INTENTS)
    assert not category_share(reference, quiet, alpha=ALPHA).fired
    # intent_05 four times as often: 5.0% of the window, the other 76 share the rest.
    shifted = ["intent_05"] * 50 + spread(950, [label for label in INTENTS if label != "intent_05"])
    check = category_share(reference, shifted, alpha=ALPHA)
    assert check.fired and check.details == {"reference_n": 2002, "category": "intent_05", "categories": 77}
    assert check.value == pytest.approx(0.05) and check.reference == pytest.approx(1 / 77)
    assert check.interval[0] < 0.05 < check.interval[1]
    assert check.sentence.startswith("Label share: 'intent_05' rose from 1.3% on the benchmark split to 5.0% of these")
    assert "Bonferroni over 77" in check.sentence
    # The omnibus test spreads its power over 76 degrees of freedom (no column pooled: every expected count is
    # at least 5) and stays quiet on the same window.
    omnibus = category_drift(reference, shifted, alpha=ALPHA)
    assert omnibus.details["dof"] == 76 and not omnibus.fired


def test_category_share_is_bonferroni_within_the_check() -> None:
    reference = ["billing"] * 100 + ["outage"] * 100
    window = ["billing"] * 62 + ["outage"] * 38
    single = category_share(reference, window, alpha=ALPHA)
    assert single.details["categories"] == 2
    from scipy.stats import fisher_exact

    assert single.p_value == pytest.approx(min(1.0, 2 * fisher_exact([[62, 38], [100, 100]]).pvalue))
    quiet = category_share(reference, ["billing"] * 52 + ["outage"] * 48, alpha=ALPHA)
    assert not quiet.fired and "no single label's share moved significantly" in quiet.sentence


# ---- rate and limit --------------------------------------------------------------------------------------------


def test_rate_check() -> None:
    check = rate_check(412, 1004, 0.3, alpha=ALPHA)
    assert check.fired and check.interval == pytest.approx((0.380, 0.441), abs=0.001)
    assert check.sentence == (
        "Escalation rate 41.0% (95% CI 38.0-44.1%, 412 of 1,004) against the expected 30.0%: "
        "significantly higher (p < 0.001)."
    )
    assert not rate_check(310, 1004, 0.3, alpha=ALPHA).fired
    assert "significantly lower" in rate_check(10, 200, 0.3, alpha=ALPHA, name="parse failure rate").sentence


def test_two_rate_check_counts_the_references_own_uncertainty() -> None:
    # 0 of 160 on test is no promise of 0%: 5 of 1,000 live is within chance (a one-sample test against a rate
    # clamped near 0 would fire), 30 of 1,000 is not.
    assert not two_rate_check(5, 1000, 0, 160, alpha=ALPHA, name="LLM answers the parser cannot read").fired
    check = two_rate_check(30, 1000, 0, 160, alpha=ALPHA, name="LLM answers the parser cannot read")
    assert check.fired and check.details == {"k": 30, "reference_k": 0, "reference_n": 160}
    assert "3.0% (95% CI 2.1-4.3%, 30 of 1,000) against 0.0% (0 of 160)" in check.sentence


def test_limit_check() -> None:
    over = limit_check(850, 600, name="p95 latency", unit="ms")
    assert over.fired and over.p_value is None and over.sentence == "P95 latency 850 ms is over the limit of 600 ms."
    assert not limit_check(650, 600, name="p95 latency", unit="ms", tolerance=0.1).fired
    assert limit_check(1.7, 1.5, name="cost", unit="USD per 1k requests", tolerance=0.1).fired


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        shadow_quality([1.5] * 40, [1.0] * 40, alpha=ALPHA)
    with pytest.raises(ValueError, match="1-D"):
        confidence_drift(np.ones((40, 2)), np.ones(40), alpha=ALPHA)
    with pytest.raises(ValueError, match="0 <= k <= n"):
        rate_check(50, 40, 0.3, alpha=ALPHA)


# ---- small windows and serialisation ---------------------------------------------------------------------------

SMALL = [
    lambda: shadow_quality([1.0] * 10, [1.0] * 100, alpha=ALPHA),
    lambda: estimated_quality([0.9] * 10, [0.9] * 100, alpha=ALPHA),
    lambda: input_drift(["a b"] * 100, ["c d"] * 10, alpha=ALPHA),
    lambda: length_drift([10] * 100, [500] * 10, alpha=ALPHA),
    lambda: confidence_drift([0.9] * 100, [0.1] * 10, alpha=ALPHA),
    lambda: charset_drift(["latin"] * 100, ["arabic"] * 10, alpha=ALPHA),
    lambda: category_drift(["a"] * 100, ["b"] * 10, alpha=ALPHA),
    lambda: category_share(["a"] * 100, ["b"] * 10, alpha=ALPHA),
    lambda: rate_check(10, 10, 0.1, alpha=ALPHA),
    lambda: two_rate_check(1, 10, 1, 100, alpha=ALPHA, name="x"),
]


@pytest.mark.parametrize("run", SMALL)
def test_small_windows_are_skipped_not_fired(run) -> None:
    check = run()
    assert not check.fired and check.details["skipped"] and check.p_value is None
    assert "not checked: the window has 10, below the minimum of 30" in check.sentence


def test_to_dict_is_json_with_rounded_floats() -> None:
    check = Check(
        "x", True, float("nan"), 0.000123456, 0.05, "s", 1234.5678, 0.912345, (0.1, 0.2), 5, {"a": [np.int64(3)]}
    )
    as_json = json.loads(json.dumps(check.to_dict()))
    assert as_json["statistic"] is None and as_json["p_value"] == 0.0001235
    assert as_json["value"] == 1235.0 and as_json["reference"] == 0.9123 and as_json["interval"] == [0.1, 0.2]
    assert as_json["details"] == {"a": [3]} and as_json["fired"] is True


# ---- the family's false-alarm rate -----------------------------------------------------------------------------


def undrifted_family(rng: np.random.Generator, alpha: float) -> list[Check]:
    """Every statistical check but input_drift on one window drawn like its reference (window 200, reference 500).

    input_drift is left out for time (200 windows x its permutations would take minutes); its p-value is exact by
    permutation, so it cannot add more than its alpha, and it still counts in the Bonferroni split below.
    """
    scripts, labels = ["latin", "cyrillic", "greek"], ["billing", "outage", "access", "refund", "other"]

    def draw(n: int) -> dict:
        return {
            "shadow": rng.random(n) < 0.85,
            "confidence": rng.beta(8, 2, n),
            "length": np.round(rng.lognormal(5, 0.6, n)),
            "script": rng.choice(scripts, n, p=[0.8, 0.15, 0.05]),
            "label": rng.choice(labels, n, p=[0.3, 0.3, 0.2, 0.1, 0.1]),
        }

    window, reference = draw(200), draw(500)
    return [
        shadow_quality(window["shadow"], reference["shadow"], alpha=alpha),
        estimated_quality(window["confidence"], reference["confidence"], alpha=alpha),
        length_drift(reference["length"], window["length"], alpha=alpha),
        confidence_drift(reference["confidence"], window["confidence"], alpha=alpha),
        charset_drift(reference["script"], window["script"], alpha=alpha),
        category_drift(reference["label"], window["label"], alpha=alpha),
        category_share(reference["label"], window["label"], alpha=alpha),
        rate_check(int(rng.binomial(200, 0.3)), 200, 0.3, alpha=alpha),
    ]


def test_family_false_alarm_rate_on_undrifted_windows() -> None:
    rng = np.random.default_rng(9)
    alpha = per_check_alpha(0.05, 9)  # the eight checks here plus input_drift
    families = [undrifted_family(rng, alpha) for _ in range(200)]
    assert all(check.p_value is not None for family in families for check in family)  # nothing skipped
    alarms = sum(any(check.fired for check in family) for family in families)
    assert alarms <= 16  # <= 8% of windows
    # The same p-values judged at 0.05 each, unadjusted, alarm on far more windows: the bound above can fail.
    unadjusted = sum(any(check.p_value < 0.05 for check in family) for family in families)
    assert unadjusted > 30
