"""Statistics for honest verdicts: bootstrap intervals over examples and a paired SLM-vs-LLM comparison.

Every metric the benchmark reports is a ratio of per-example sums, so one resampling routine serves them all:
accuracy is `(correct, 1)` per example, mean ROUGE-L is `(score, 1)`, extraction micro-F1 is
`(2*tp, 2*tp + fp + fn)`. Resampling examples (not tokens or entities) matches how the test set was drawn.

The SLM and the LLM answer the same examples, so their outcomes are correlated; comparing them on the same
resampled indices (a paired bootstrap) gives a much tighter gap interval than two independent intervals would.
Written with numpy alone (scipy came later, for the monitor), so each routine is visible here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np

# Bound on the resampled-index matrix held at once (8 bytes each: ~40 MB, plus as much again for the gathered
# values), so a large test set with many resamples cannot exhaust memory.
MAX_INDEX_ELEMENTS = 5_000_000

Values = Sequence[float] | np.ndarray


@dataclass(frozen=True)
class Interval:
    """A statistic on the full sample with its percentile-bootstrap interval, and what is needed to reproduce it."""

    value: float  # the statistic on the full sample
    low: float
    high: float
    confidence: float  # e.g. 0.95
    n: int  # examples
    n_resamples: int
    seed: int

    def to_dict(self) -> dict:
        return asdict(self)


def _as_vector(values: Values, name: str) -> np.ndarray:
    """`values` as a 1-D float array; an empty one is an error because no verdict can rest on zero examples."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one value per example (1-D), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty: a statistic needs at least one example")
    return array


def _as_columns(*named: tuple[str, Values]) -> np.ndarray:
    """Stack per-example vectors into a (k, n) array, checking they all describe the same n examples."""
    vectors = [_as_vector(values, name) for name, values in named]
    lengths = {name: len(vector) for (name, _), vector in zip(named, vectors, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-example vectors must have the same length (one entry per example), got {lengths}")
    return np.stack(vectors)


def _check_resampling(n_resamples: int, confidence: float) -> None:
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be at least 1, got {n_resamples}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be strictly between 0 and 1 (e.g. 0.95), got {confidence}")


def _ratios(numerator_sums: np.ndarray, denominator_sums: np.ndarray, empty_value: float) -> np.ndarray:
    """Elementwise num/den, `empty_value` where den == 0 (e.g. no entities to extract and none predicted)."""
    empty = denominator_sums == 0
    safe = np.where(empty, 1.0, denominator_sums)
    return np.where(empty, empty_value, numerator_sums / safe)


def _resampled_sums(columns: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Sums of each column over `n_resamples` bootstrap resamples of the examples: shape (k, n_resamples).

    All columns use the same resampled indices in each resample, which is what makes a comparison paired.
    Indices are drawn in chunks of rows to bound memory; the chunking is deterministic, so a seed fixes the result.
    """
    n = columns.shape[1]
    rng = np.random.default_rng(seed)
    rows_per_chunk = max(1, MAX_INDEX_ELEMENTS // n)
    sums = np.empty((columns.shape[0], n_resamples))
    for start in range(0, n_resamples, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_resamples)
        indices = rng.integers(0, n, size=(stop - start, n))
        # One column at a time keeps the gathered values as small as the index matrix; `take` is several times
        # faster than fancy indexing (column[indices]) for a 2-D index matrix.
        for row, column in enumerate(columns):
            sums[row, start:stop] = column.take(indices).sum(axis=1)
    return sums


def _percentile_interval(value: float, resampled: np.ndarray, *, confidence: float, n: int, seed: int) -> Interval:
    """The equal-tailed percentile interval of the resampled statistic."""
    alpha = 1.0 - confidence
    low, high = np.quantile(resampled, [alpha / 2, 1.0 - alpha / 2])
    return Interval(float(value), float(low), float(high), confidence, n, len(resampled), seed)


def ratio_of_sums(numerators: Values, denominators: Values, *, empty_value: float = 1.0) -> float:
    """sum(numerators) / sum(denominators), or `empty_value` when sum(denominators) == 0.

    Pooling before dividing is what micro-averaging means: an example with many entities weighs more in F1.
    """
    columns = _as_columns(("numerators", numerators), ("denominators", denominators))
    total = columns.sum(axis=1)
    return float(_ratios(total[0], total[1], empty_value))


def bootstrap_interval(
    numerators: Values,
    denominators: Values,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    empty_value: float = 1.0,
) -> Interval:
    """Percentile-bootstrap interval for `ratio_of_sums`, resampling whole examples with replacement."""
    _check_resampling(n_resamples, confidence)
    columns = _as_columns(("numerators", numerators), ("denominators", denominators))
    value = ratio_of_sums(columns[0], columns[1], empty_value=empty_value)
    sums = _resampled_sums(columns, n_resamples, seed)
    resampled = _ratios(sums[0], sums[1], empty_value)
    return _percentile_interval(value, resampled, confidence=confidence, n=columns.shape[1], seed=seed)


def paired_bootstrap_gap(
    num_a: Values,
    den_a: Values,
    num_b: Values,
    den_b: Values,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    empty_value: float = 1.0,
) -> Interval:
    """Interval for ratio(a) - ratio(b), both recomputed on the same resampled examples each time (paired).

    `a` is the candidate (the SLM), `b` the reference (the LLM): a negative gap means the SLM is worse.
    Both tiers must have been scored on the same examples in the same order.
    """
    _check_resampling(n_resamples, confidence)
    columns = _as_columns(("num_a", num_a), ("den_a", den_a), ("num_b", num_b), ("den_b", den_b))
    value = ratio_of_sums(columns[0], columns[1], empty_value=empty_value) - ratio_of_sums(
        columns[2], columns[3], empty_value=empty_value
    )
    sums = _resampled_sums(columns, n_resamples, seed)
    resampled = _ratios(sums[0], sums[1], empty_value) - _ratios(sums[2], sums[3], empty_value)
    return _percentile_interval(value, resampled, confidence=confidence, n=columns.shape[1], seed=seed)


def mcnemar_exact(correct_a: Sequence[object] | np.ndarray, correct_b: Sequence[object] | np.ndarray) -> dict:
    """Exact two-sided McNemar test on paired binary outcomes (truthy = correct).

    Only the discordant pairs carry information about which tier is better; under "equally good" each one is a
    fair coin flip. Python integers keep the binomial tail exact for thousands of discordant pairs.
    """
    a, b = [bool(x) for x in correct_a], [bool(x) for x in correct_b]
    if not a or not b:
        raise ValueError("paired outcomes are empty: mcnemar_exact needs at least one example")
    if len(a) != len(b):
        raise ValueError(f"paired outcomes must have the same length, got {len(a)} and {len(b)}")
    a_only = sum(x and not y for x, y in zip(a, b, strict=True))
    b_only = sum(y and not x for x, y in zip(a, b, strict=True))
    discordant = a_only + b_only
    if discordant == 0:
        return {"a_only": 0, "b_only": 0, "p_value": 1.0}
    tail = sum(math.comb(discordant, k) for k in range(min(a_only, b_only) + 1))
    # Integer true division is correctly rounded even when 2**discordant has hundreds of digits.
    p_value = min(1.0, 2 * tail / 2**discordant)
    return {"a_only": a_only, "b_only": b_only, "p_value": p_value}


def required_n(discordant_rate: float, margin: float, *, confidence: float = 0.95, power: float = 0.8) -> int:
    """Rough number of examples for a paired non-inferiority test of two truly equal binary tiers.

    Normal approximation: with equal tiers the per-example difference has variance `discordant_rate`, so the gap's
    SE is sqrt(discordant_rate / n), and n = (z_{1-alpha/2} + z_power)^2 * discordant_rate / margin^2.
    Reports use it to say when a test set is too small to show non-inferiority at the chosen margin.
    """
    if not 0.0 < discordant_rate <= 1.0:
        raise ValueError(f"discordant_rate is a fraction of examples in (0, 1], got {discordant_rate}")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not 0.0 < confidence < 1.0 or not 0.0 < power < 1.0:
        raise ValueError(f"confidence and power must be strictly between 0 and 1, got {confidence} and {power}")
    normal = NormalDist()
    z_total = normal.inv_cdf(1.0 - (1.0 - confidence) / 2) + normal.inv_cdf(power)
    return math.ceil(z_total**2 * discordant_rate / margin**2)
