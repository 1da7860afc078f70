"""Statistical checks of a window of live traffic against the reference: the run's split as benchmarked.

Each check takes plain lists or arrays (what the monitor command read from the request log and the run directory)
and returns a `Check`: whether it fired, the statistic and p-value behind the verdict, and one sentence a platform
engineer can act on. No file IO here, so every check can be called from a test or a notebook.

False alarms. A check run at significance `alpha` fires on undrifted traffic with probability at most alpha, but the
monitor runs k checks on every window, and the chance that at least one of them fires grows to about
1 - (1 - alpha)^k: at alpha = 0.05 and k = 8, a third of all healthy windows would raise an alarm. So each check runs
at `per_check_alpha(family_alpha, k)` = family_alpha / k (Bonferroni): by the union bound, the chance that any check
fires on an undrifted window is then at most family_alpha (0.05 by default), whatever the dependence between checks.
It is conservative when checks are correlated (the two confidence checks are), which an alarm can afford. Count in k
every statistical check run on the window (`category_drift` once per extraction field); `limit_check` has no p-value
(a limit is a contract, not a hypothesis) and does not count.

Small windows. A check with fewer than `min_n` examples on either side (30 by default) is skipped, never fired: the
large-sample approximations behind the tests (t, chi-square, normal) need them, and tiny windows make noisy alarms.
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import sparse
from scipy.stats import binomtest, chi2_contingency, fisher_exact, ks_2samp, ttest_ind_from_stats
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from slmtier.benchmark.stats import bootstrap_interval

Numbers = Sequence[float] | np.ndarray

REFERENCE = "the benchmark split"
OTHER = "(other)"  # pooled rare categories; the parentheses keep it apart from a real label "other"
SCRIPTS = {
    "LATIN": "latin",
    "CYRILLIC": "cyrillic",
    "GREEK": "greek",
    "ARABIC": "arabic",
    "HEBREW": "hebrew",
    "CJK": "cjk",
    "HIRAGANA": "cjk",  # Japanese kana go with the ideographs they are written among
    "KATAKANA": "cjk",
    "HANGUL": "hangul",
    "DEVANAGARI": "devanagari",
    "THAI": "thai",
}


@dataclass
class Check:
    """One check's verdict on one window: what was seen, against what, and whether it should alarm."""

    name: str  # what is checked, e.g. "escalation rate": the key reports use
    fired: bool
    statistic: float | None  # KS D, chi-square, t, ROC AUC, ...; None for a limit
    p_value: float | None  # None for a limit or a skipped check
    threshold: float  # the alpha the p-value was judged against, or the limit the value was
    sentence: str
    value: float | None = None  # the window's figure (mean score, median length, rate, ...)
    reference: float | None = None  # the same figure on the reference, or the limit
    interval: tuple[float, float] | None = None  # 95% interval of `value`
    n: int = 0  # window examples
    details: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return _plain(asdict(self))


def _plain(value: object) -> object:
    """`value` as JSON-ready Python: floats to 4 significant digits (integer digits kept), NaN and inf as None."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return None
        return round(value, max(0, 3 - math.floor(math.log10(abs(value))))) if value else 0.0
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    return value


def per_check_alpha(family_alpha: float, n_checks: int) -> float:
    """Bonferroni: the alpha for each of `n_checks` checks, so a healthy window alarms with chance <= family_alpha."""
    _check_alpha(family_alpha)
    if n_checks < 1:
        raise ValueError(f"n_checks is the number of statistical checks run on a window (>= 1), got {n_checks}")
    return family_alpha / n_checks


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha is a significance level strictly between 0 and 1 (e.g. 0.05), got {alpha}")


def _vector(values: Numbers, name: str, *, unit_interval: bool = False) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one number per request (1-D), got shape {array.shape}")
    if np.isnan(array).any():
        raise ValueError(f"{name} holds NaN: give one number per request")
    if unit_interval and ((array < 0).any() or (array > 1).any()):
        raise ValueError(f"{name} must lie in [0, 1], got values from {array.min():g} to {array.max():g}")
    return array


def _skip_if_small(name: str, threshold: float, min_n: int, **sizes: int) -> Check | None:
    """A skipped Check when a side has fewer than `min_n` examples, else None."""
    short = [f"the {side} has {size:,}" for side, size in sizes.items() if size < min_n]
    if not short:
        return None
    sentence = f"{_capital(name)} not checked: {' and '.join(short)}, below the minimum of {min_n} for a verdict."
    return Check(name, False, None, None, threshold, sentence, n=sizes["window"], details={"skipped": True, **sizes})


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _p(p_value: float) -> str:
    return "p < 0.001" if p_value < 0.001 else f"p = {p_value:.2g}"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _share_range(interval: tuple[float, float]) -> str:
    return f"{interval[0]:.1%}-{interval[1]:.1%}".replace("%-", "-", 1)


def _welch_less(window: np.ndarray, reference: np.ndarray, shift: float = 0.0) -> tuple[float, float]:
    """One-sided Welch t-test of mean(window) + shift < mean(reference): (t, p). Two constant samples give p = 1.

    From the summary statistics, so that a constant sample (a reference scored 1.0 throughout) is a standard
    deviation of 0 rather than scipy's precision warning.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        result = ttest_ind_from_stats(
            window.mean() + shift,
            window.std(ddof=1),
            len(window),
            reference.mean(),
            reference.std(ddof=1),
            len(reference),
            equal_var=False,
            alternative="less",
        )
    if math.isnan(result.pvalue):
        return 0.0, 1.0
    return float(result.statistic), float(result.pvalue)


def shadow_quality(
    window_scores: Numbers,
    reference_scores: Numbers,
    *,
    alpha: float,
    margin: float = 0.0,
    min_n: int = 30,
    seed: int = 0,
) -> Check:
    """Does the local tier agree with the LLM on the shadow sample less than it did on the benchmark split?

    Scores are per request in [0, 1] (label match 0/1, field F1, ROUGE-L): the local tier's answer scored against the
    LLM's. Fires on a one-sided Welch t-test of mean(window) < mean(reference) - margin. Welch, not a bootstrap: the
    two samples are independent and of different sizes, which the paired bootstrap in benchmark.stats does not fit,
    and with 30+ bounded scores a side the t approximation holds. The window's interval is Wilson when every score
    is 0 or 1 (it stays inside [0, 1] and keeps its coverage when agreement is near 100%, where a bootstrap interval
    shrinks to a point), a percentile bootstrap of the mean (benchmark.stats) otherwise.
    """
    _check_alpha(alpha)
    name = "shadow quality"
    window = _vector(window_scores, "window_scores", unit_interval=True)
    reference = _vector(reference_scores, "reference_scores", unit_interval=True)
    if skipped := _skip_if_small(name, alpha, min_n, window=len(window), reference=len(reference)):
        return skipped
    statistic, p_value = _welch_less(window, reference, shift=margin)
    fired = p_value < alpha
    binary = bool(np.isin(window, (0.0, 1.0)).all())
    if binary:
        ci = binomtest(int(window.sum()), len(window)).proportion_ci(0.95, method="wilson")
        interval = (float(ci.low), float(ci.high))
        seen = f"the local tier matched the LLM on {window.mean():.1%} (95% CI {_share_range(interval)})"
        against = f"{reference.mean():.1%}"
    else:
        boot = bootstrap_interval(window, np.ones_like(window), seed=seed)
        interval = (boot.low, boot.high)
        seen = f"the local tier scored {window.mean():.3f} against the LLM (95% CI {interval[0]:.3f}-{interval[1]:.3f})"
        against = f"{reference.mean():.3f}"
    below = "significantly lower" if fired else "not significantly lower"
    if margin:
        below += f" by more than the margin {margin:g}"
    sentence = (
        f"Shadow quality: {seen} on {len(window):,} shadowed requests against {against} on {REFERENCE}; "
        f"{below} (one-sided Welch t-test, {_p(p_value)})."
    )
    details = {"reference_n": len(reference), "margin": margin, "test": "Welch t, one-sided", "binary": binary}
    value, reference_value = float(window.mean()), float(reference.mean())
    return Check(
        name, fired, statistic, p_value, alpha, sentence, value, reference_value, interval, len(window), details
    )


def estimated_quality(
    window_confidences: Numbers,
    reference_confidences: Numbers,
    *,
    alpha: float,
    reference_quality: float | None = None,
    min_n: int = 30,
) -> Check:
    """The accuracy the window should have, from the local tier's confidences alone: no labels needed.

    Confidence-based performance estimation (CBPE, as in NannyML): with calibrated confidences request i is right
    with probability p_i, so the window's expected accuracy is m = mean(p). The interval is for the accuracy the
    window actually scored: the Poisson-binomial variance of the share right, sum p_i(1 - p_i) / n^2, plus the
    sampling variance of the mean confidence, var(p) / n (together about m(1 - m) / n), normal approximation.
    The test is about the expected accuracy itself, whose uncertainty is only the sampling one: a one-sided Welch
    t-test of mean confidence, window < reference. So the verdict can be "significantly lower" while the wider
    interval still reaches the reference. All of it is as good as the calibration: `reference_quality` (the
    benchmark's measured accuracy) next to the reference's mean confidence in the sentence shows how far that holds.
    """
    _check_alpha(alpha)
    name = "estimated accuracy"
    window = _vector(window_confidences, "window_confidences", unit_interval=True)
    reference = _vector(reference_confidences, "reference_confidences", unit_interval=True)
    if skipped := _skip_if_small(name, alpha, min_n, window=len(window), reference=len(reference)):
        return skipped
    expected, n = float(window.mean()), len(window)
    half_width = 1.96 * math.sqrt(np.sum(window * (1 - window)) / n**2 + window.var(ddof=1) / n)
    interval = (max(0.0, expected - half_width), min(1.0, expected + half_width))
    statistic, p_value = _welch_less(window, reference)
    fired = p_value < alpha
    measured = "" if reference_quality is None else f", where it measured {reference_quality:.1%}"
    verdict = "significantly lower" if fired else "not significantly lower"
    sentence = (
        f"Estimated accuracy: from its confidences the local tier should get {expected:.1%} of these {n:,} requests "
        f"right (95% range {_share_range(interval)}) against {reference.mean():.1%} on {REFERENCE}{measured}; "
        f"{verdict} (one-sided Welch t-test on the confidences, {_p(p_value)})."
    )
    details = {"reference_n": len(reference), "reference_quality": reference_quality}
    return Check(
        name, fired, statistic, p_value, alpha, sentence, expected, float(reference.mean()), interval, n, details
    )


def input_drift(
    reference_texts: Sequence[str],
    window_texts: Sequence[str],
    *,
    alpha: float,
    n_permutations: int = 99,
    seed: int = 0,
    min_n: int = 30,
    stop_after: int = 10,
) -> Check:
    """Can a classifier tell this window's inputs from the benchmark split's? If so, the traffic has moved.

    TF-IDF (word 1-2-grams and char 3-5-grams) and a logistic regression; the statistic is the ROC AUC of 5-fold
    cross-validated probabilities of "from the window". Under no drift the membership labels are exchangeable, so
    the p-value is exact by permutation: the same cross-validation on shuffled labels `n_permutations` times,
    p = (1 + #null AUC >= observed) / (1 + n_permutations). The vectorizers are fitted once on all texts, which uses
    no label and so leaves the permutation test exact. The larger side is subsampled (seeded) to at most 3x the
    smaller, so a big reference cannot make every window look alike. The most telling words are those whose share of
    requests rose most in the window, in standard errors, not the model's largest weights: a weight is split among
    every feature of a new phrase (its char n-grams too), and noise bigrams outranked the new language's words.

    Time, 500 vs 500 texts with 99 permutations (none stopped early) on one core (OMP_NUM_THREADS=1) of a busy
    2-core machine: 1.8 s for ticket-like texts of ~7 words, 3.0 s for ~24 words. It grows linearly with the
    permutations run and with text length.
    """
    _check_alpha(alpha)
    if n_permutations < math.floor(1 / alpha):
        raise ValueError(
            f"n_permutations={n_permutations} cannot give a p-value below alpha={alpha:.3g} (the smallest is "
            f"1 / (1 + n_permutations)); use at least {math.floor(1 / alpha)} (more give a steadier p-value)"
        )
    name = "input drift"
    if skipped := _skip_if_small(name, alpha, min_n, window=len(window_texts), reference=len(reference_texts)):
        return skipped
    rng = np.random.default_rng(seed)
    reference = _subsample(list(reference_texts), 3 * len(window_texts), rng)
    window = _subsample(list(window_texts), 3 * len(reference), rng)
    features, words = _featurize(reference + window)
    labels = np.r_[np.zeros(len(reference), dtype=int), np.ones(len(window), dtype=int)]
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed)
    auc = _cv_auc(features, labels, folds)
    # Besag & Clifford's sequential Monte Carlo test: stop once `stop_after` null AUCs reach the observed one; then
    # p = stop_after / permutations run (a valid p-value, at least stop_after / n_permutations, far above any
    # alpha here), and an undrifted window, the common case, costs a few dozen permutations instead of all.
    null, reached = [], 0
    for _ in range(n_permutations):
        null.append(_cv_auc(features, rng.permutation(labels), folds))
        reached += null[-1] >= auc
        if reached >= stop_after:
            break
    null = np.array(null)
    p_value = reached / len(null) if reached >= stop_after else (1 + reached) / (1 + len(null))
    null_p95 = float(np.quantile(null, 0.95))
    top_terms = _telling_words(features[:, : len(words)], labels, words)
    fired = p_value < alpha
    seen = f"ROC AUC {auc:.2f} (permutation null 95th percentile {null_p95:.2f}, {_p(p_value)})"
    if fired:
        telling = f"; most telling words: {', '.join(repr(term) for term in top_terms)}" if top_terms else ""
        sentence = f"Input drift: a classifier tells this window's inputs from {REFERENCE}'s with {seen}{telling}."
    else:
        sentence = (
            f"Input drift: none detected; a classifier tells this window's inputs from {REFERENCE}'s with {seen}."
        )
    details = {
        "null_p95": null_p95,
        "n_permutations": len(null),
        "reference_n": len(reference_texts),
        "compared": {"reference": len(reference), "window": len(window)},
        "top_terms": top_terms,
    }
    return Check(name, fired, auc, p_value, alpha, sentence, n=len(window_texts), details=details)


def _subsample(texts: list[str], limit: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= limit:
        return texts
    return [texts[i] for i in np.sort(rng.choice(len(texts), size=limit, replace=False))]


def _featurize(texts: list[str]) -> tuple[sparse.csr_matrix, np.ndarray]:
    """TF-IDF rows for `texts` and the names of the word columns, which come first."""
    words = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    # Char n-grams catch what words miss (spelling, scripts without spaces); capped because they dominate the cost.
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), min_df=2, sublinear_tf=True, max_features=5000)
    matrix = sparse.hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    return matrix, words.get_feature_names_out()


def _cv_auc(features: sparse.csr_matrix, labels: np.ndarray, folds: StratifiedKFold) -> float:
    # A loose tolerance: the AUC needs the ranking, not the optimum's last digits; it cuts the time by a quarter.
    model = LogisticRegression(max_iter=200, tol=1e-3)
    probabilities = cross_val_predict(model, features, labels, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, probabilities))


def _telling_words(word_features: sparse.csr_matrix, labels: np.ndarray, words: np.ndarray, k: int = 5) -> list[str]:
    """The k words whose share of requests rose most from reference to window, by two-proportion z: a new word in
    15% of the window outranks "the" going from 55% to 60%."""
    present = (word_features > 0).astype(np.float64)
    n = np.array([np.sum(labels == 1), np.sum(labels == 0)])
    shares = [np.asarray(present[labels == side].mean(axis=0)).ravel() for side in (1, 0)]
    pooled = (shares[0] * n[0] + shares[1] * n[1]) / n.sum()
    standard_error = np.sqrt(pooled * (1 - pooled) * (1 / n[0] + 1 / n[1]))
    rise = shares[0] - shares[1]
    z = np.divide(rise, standard_error, out=np.zeros_like(rise), where=standard_error > 0)
    return [str(words[i]) for i in np.argsort(-z, kind="stable")[:k] if z[i] > 0]


def _ks_check(name: str, reference: np.ndarray, window: np.ndarray, *, alpha: float, min_n: int, unit: str) -> Check:
    """Two-sample Kolmogorov-Smirnov: any change in the distribution, not only in its middle."""
    _check_alpha(alpha)
    if skipped := _skip_if_small(name, alpha, min_n, window=len(window), reference=len(reference)):
        return skipped
    result = ks_2samp(reference, window)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    fired = p_value < alpha
    medians = float(np.median(window)), float(np.median(reference))
    verdict = "distributions differ" if fired else "no significant difference"
    sentence = (
        f"{_capital(name)}: median {_number(medians[0])}{unit} in these {len(window):,} requests against "
        f"{_number(medians[1])}{unit} on {REFERENCE}; {verdict} (Kolmogorov-Smirnov D = {statistic:.2f}, "
        f"{_p(p_value)})."
    )
    details = {"reference_n": len(reference)}
    return Check(name, fired, statistic, p_value, alpha, sentence, medians[0], medians[1], None, len(window), details)


def length_drift(
    reference_lengths: Numbers, window_lengths: Numbers, *, alpha: float, min_n: int = 30, unit: str = "characters"
) -> Check:
    """Have the inputs become longer or shorter (or more spread)? Long inputs cost more and can leave the model's
    trained range; `unit` is what a length counts, for the sentence."""
    reference, window = _vector(reference_lengths, "reference_lengths"), _vector(window_lengths, "window_lengths")
    return _ks_check("input length", reference, window, alpha=alpha, min_n=min_n, unit=f" {unit}")


def confidence_drift(
    reference_confidences: Numbers, window_confidences: Numbers, *, alpha: float, min_n: int = 30
) -> Check:
    """Has the local tier's confidence changed? It sets the escalation rate and, if calibrated, tracks accuracy."""
    reference = _vector(reference_confidences, "reference_confidences", unit_interval=True)
    window = _vector(window_confidences, "window_confidences", unit_interval=True)
    return _ks_check("confidence", reference, window, alpha=alpha, min_n=min_n, unit="")


def script_of(text: str) -> str:
    """The script most of `text`'s letters are written in ("latin", "cyrillic", "cjk", ...; "none" without letters)."""
    counts: Counter[str] = Counter()
    for character in text:
        if character.isalpha():
            words = unicodedata.name(character, "").split()
            counts[next((SCRIPTS[word] for word in words if word in SCRIPTS), "other")] += 1
    return counts.most_common(1)[0][0] if counts else "none"


def charset_drift(
    reference_scripts: Sequence[str], window_scripts: Sequence[str], *, alpha: float, min_n: int = 30
) -> Check:
    """Are requests arriving in other scripts than the benchmark's? A new script often means a new language the
    local tier was never trained on. Takes script names: map texts with `script_of` first."""
    return category_drift(reference_scripts, window_scripts, alpha=alpha, name="input script", min_n=min_n)


def category_drift(
    reference_values: Sequence[object],
    window_values: Sequence[object],
    *,
    alpha: float,
    name: str = "predicted label",
    min_n: int = 30,
) -> Check:
    """Have the shares of a categorical value moved (predicted labels; for extraction, a field null or not)?

    Chi-square test of homogeneity on the 2 x k table of counts. Categories with an expected count below 5 in either
    row are pooled into "(other)" so the chi-square approximation holds; with fewer than 2 columns left there is
    nothing to test and the check is skipped. Values are compared as strings. Categories the reference never had
    are named in the sentence and listed in `details["unseen"]`, whatever the test says.
    """
    _check_alpha(alpha)
    reference, window = Counter(map(str, reference_values)), Counter(map(str, window_values))
    n_reference, n_window = sum(reference.values()), sum(window.values())
    if skipped := _skip_if_small(name, alpha, min_n, window=n_window, reference=n_reference):
        return skipped
    unseen = sorted((key for key in window if key not in reference), key=lambda key: -window[key])
    new = f"; new in this window: {', '.join(f'{key!r} ({window[key]:,})' for key in unseen)}" if unseen else ""
    columns = _pool_rare(reference, window)
    details: dict = {"reference_n": n_reference, "unseen": unseen, "columns": list(columns)}
    if len(columns) < 2:
        most = (reference + window).most_common(1)[0][0]
        sentence = f"{_capital(name)} not checked: nearly every request is {most!r}, too few others to compare{new}."
        return Check(name, False, None, None, alpha, sentence, n=n_window, details={"skipped": True, **details})
    # No Yates correction: with every expected count >= 5 it only costs power, and only on 2 x 2 tables.
    result = chi2_contingency(np.array(list(columns.values())).T, correction=False)
    statistic, p_value = float(result.statistic), float(result.pvalue)
    fired = p_value < alpha
    shares = {key: (reference[key] / n_reference, window[key] / n_window) for key in sorted(reference | window)}
    moved = sorted(shares, key=lambda key: -abs(shares[key][1] - shares[key][0]))[:3]
    moves = ", ".join(f"{key!r} {shares[key][0]:.1%} -> {shares[key][1]:.1%}" for key in moved)
    verdict = "shares differ" if fired else "no significant shift"
    sentence = (
        f"{_capital(name)}: {verdict} between {REFERENCE} and these {n_window:,} requests (chi-square "
        f"{statistic:.1f}, {result.dof} df, {_p(p_value)}); moved most: {moves}{new}."
    )
    details["dof"] = int(result.dof)
    details["total_variation"] = sum(abs(after - before) for before, after in shares.values()) / 2
    return Check(name, fired, statistic, p_value, alpha, sentence, n=n_window, details=details)


def category_share(
    reference_values: Sequence[object],
    window_values: Sequence[object],
    *,
    alpha: float,
    name: str = "label share",
    min_n: int = 30,
) -> Check:
    """Has one category's share moved (a queue that doubled after a product launch)?

    The chi-square test of `category_drift` spreads its power over every category: with 77 labels, one of them
    going from 1% to 5% of the traffic hides among 76 degrees of freedom. This check tests each category apart,
    Fisher's exact test of its count against all others (two-sided), and reports the smallest p-value times the
    number of categories tested (Bonferroni within the check), so the check as a whole keeps its `alpha`. The
    interval is Wilson's 95% for the moved category's share of the window.
    """
    _check_alpha(alpha)
    reference, window = Counter(map(str, reference_values)), Counter(map(str, window_values))
    n_reference, n_window = sum(reference.values()), sum(window.values())
    if skipped := _skip_if_small(name, alpha, min_n, window=n_window, reference=n_reference):
        return skipped
    keys = sorted(reference | window)
    if len(keys) < 2:
        sentence = f"{_capital(name)} not checked: every request is {keys[0]!r}."
        return Check(name, False, None, None, alpha, sentence, n=n_window, details={"skipped": True})
    p_values = {}
    for key in keys:
        table = [[window[key], n_window - window[key]], [reference[key], n_reference - reference[key]]]
        p_values[key] = float(fisher_exact(table).pvalue)
    moved = min(keys, key=lambda key: p_values[key])
    p_value = min(1.0, p_values[moved] * len(keys))
    fired = p_value < alpha
    before, after = reference[moved] / n_reference, window[moved] / n_window
    ci = binomtest(window[moved], n_window).proportion_ci(0.95, method="wilson")
    interval = (float(ci.low), float(ci.high))
    unit = name.split()[0]
    change = (
        f"from {before:.1%} on {REFERENCE} to {after:.1%} of these {n_window:,} requests (95% CI "
        f"{_share_range(interval)}; {_p(p_value)}, Fisher's exact test per {unit}, Bonferroni over {len(keys)})"
    )
    if fired:
        sentence = f"{_capital(name)}: {moved!r} {'rose' if after > before else 'fell'} {change}."
    else:
        quiet = f"no single {unit}'s share moved significantly; the most moved, {moved!r}"
        sentence = f"{_capital(name)}: {quiet}, {change}."
    details = {"reference_n": n_reference, "category": moved, "categories": len(keys)}
    return Check(name, fired, after - before, p_value, alpha, sentence, after, before, interval, n_window, details)


def _pool_rare(reference: Counter[str], window: Counter[str]) -> dict[str, tuple[int, int]]:
    """Columns (reference count, window count) of the table, the rarest pooled into OTHER until every expected
    count is at least 5: a column's smallest expected count is its total times the smaller row's share."""
    smaller_share = min(reference.total(), window.total()) / (reference.total() + window.total())
    columns = {key: (reference[key], window[key]) for key in sorted(reference | window)}
    while len(columns) > 1:
        rarest = min(columns, key=lambda key: sum(columns[key]))
        if sum(columns[rarest]) * smaller_share >= 5:
            break
        if rarest == OTHER:  # the pool itself is still too small: grow it with the rarest real category
            rarest = min((key for key in columns if key != OTHER), key=lambda key: sum(columns[key]))
        pooled, added = columns.pop(OTHER, (0, 0)), columns.pop(rarest)
        columns[OTHER] = (pooled[0] + added[0], pooled[1] + added[1])
    return columns


def rate_check(
    k: int, n: int, expected: float, *, alpha: float, name: str = "escalation rate", min_n: int = 30
) -> Check:
    """Is k of n (escalations, parse failures, LLM errors) off the rate the benchmark projected?

    Two-sided exact binomial test: a rate far below the projection matters too (a threshold set wrong, a tier
    that stopped escalating). The interval is Wilson's 95%.
    """
    _check_alpha(alpha)
    if not 0 <= k <= n or not 0.0 <= expected <= 1.0:
        raise ValueError(f"need 0 <= k <= n and an expected rate in [0, 1], got k={k}, n={n}, expected={expected}")
    if skipped := _skip_if_small(name, alpha, min_n, window=n):
        return skipped
    result = binomtest(k, n, expected)
    ci = result.proportion_ci(0.95, method="wilson")
    interval, rate, p_value = (float(ci.low), float(ci.high)), k / n, float(result.pvalue)
    fired = p_value < alpha
    verdict = ("significantly higher" if rate > expected else "significantly lower") if fired else "within chance"
    sentence = (
        f"{_capital(name)} {rate:.1%} (95% CI {_share_range(interval)}, {k:,} of {n:,}) against the expected "
        f"{expected:.1%}: {verdict} ({_p(p_value)})."
    )
    return Check(name, fired, rate, p_value, alpha, sentence, rate, expected, interval, n, {"k": k})


def two_rate_check(k: int, n: int, k_reference: int, n_reference: int, *, alpha: float, name: str,
                   min_n: int = 30) -> Check:  # fmt: skip
    """Is k of n in the window off k_reference of n_reference measured before (both samples, so the reference's
    own uncertainty counts)? Fisher's exact test, two-sided; the window's interval is Wilson's 95%."""
    _check_alpha(alpha)
    if not 0 <= k <= n or not 0 <= k_reference <= n_reference:
        raise ValueError(f"need 0 <= k <= n on both sides, got {k}/{n} and {k_reference}/{n_reference}")
    if skipped := _skip_if_small(name, alpha, min_n, window=n, reference=n_reference):
        return skipped
    p_value = float(fisher_exact([[k, n - k], [k_reference, n_reference - k_reference]]).pvalue)
    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    interval, rate, before = (float(ci.low), float(ci.high)), k / n, k_reference / n_reference
    fired = p_value < alpha
    verdict = ("significantly higher" if rate > before else "significantly lower") if fired else "within chance"
    sentence = (
        f"{_capital(name)}: {rate:.1%} (95% CI {_share_range(interval)}, {k:,} of {n:,}) against {before:.1%} "
        f"({k_reference:,} of {n_reference:,}) on {REFERENCE}: {verdict} (Fisher's exact test, {_p(p_value)})."
    )
    return Check(name, fired, rate, p_value, alpha, sentence, rate, before, interval, n,
                 {"k": k, "reference_k": k_reference, "reference_n": n_reference})  # fmt: skip


def limit_check(value: float, limit: float, *, name: str, unit: str, tolerance: float = 0.0, n: int = 0) -> Check:
    """Is a figure over its limit (cost per 1k requests against the projection, p95 latency against the SLO)?

    No statistic: a limit is a contract, so it fires whenever value > limit * (1 + tolerance). `n` is the number of
    requests behind the figure, for the report.
    """
    threshold = limit * (1 + tolerance)
    fired = value > threshold
    slack = f" (+{tolerance:.0%} tolerance)" if tolerance else ""
    verdict = "over" if fired else "within"
    sentence = f"{_capital(name)} {_number(value)} {unit} is {verdict} the limit of {_number(limit)} {unit}{slack}."
    return Check(name, fired, None, None, threshold, sentence, value, limit, None, n, {"tolerance": tolerance})
