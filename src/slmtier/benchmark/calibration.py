"""Calibration of a classifier's probabilities: temperature scaling fitted on the validation split, and the
expected calibration error (ECE) that says how far stated confidence is from observed accuracy.

A cascade escalates the answers its tier is least sure of, so "90% sure" should mean right about 90% of
the time. Temperature scaling divides every logit by one number T, fitted to minimise the negative
log-likelihood of the validation labels: it changes no prediction (the argmax stays), only how sure each
one claims to be (Guo et al., 2017, "On Calibration of Modern Neural Networks").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Fewer wrong validation answers than this and the likelihood is minimised by T -> 0 (every answer "certain"),
# which would make the confidence useless for a cascade: the temperature is then left at 1.
MIN_ERRORS = 1


@dataclass(frozen=True)
class Calibration:
    temperature: float
    ece_before: float  # on the split it was fitted on
    ece_after: float
    n: int
    errors: int = 0  # wrong answers in that split
    fitted: bool = True  # False: too few errors to fit a temperature (it stays 1)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, steps: int = 200) -> float:
    """The T > 0 that minimises the NLL of `labels` under softmax(logits / T), by L-BFGS on log T."""
    logits, labels = logits.detach().float(), labels.detach().long()
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.exp().item())


def expected_calibration_error(confidence: torch.Tensor, correct: torch.Tensor, *, bins: int = 15) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence| x the bin's share of examples."""
    confidence, correct = confidence.detach().float(), correct.detach().float()
    edges = torch.linspace(0, 1, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        in_bin = (confidence > low) & (confidence <= high) if low > 0 else (confidence >= low) & (confidence <= high)
        if in_bin.any():
            gap = (correct[in_bin].mean() - confidence[in_bin].mean()).abs().item()
            total += gap * in_bin.float().mean().item()
    return total


def calibrate(logits: torch.Tensor, labels: torch.Tensor, *, bins: int = 15) -> Calibration:
    """Temperature fitted on (logits, labels), with the ECE of the top-class probability before and after.
    With no wrong answer among them, nothing bounds the fit (the likelihood keeps rising as T -> 0): the
    temperature stays 1 and `fitted` says so."""
    correct = logits.argmax(dim=-1) == labels
    errors = int((~correct).sum())
    fitted = errors >= MIN_ERRORS
    temperature = fit_temperature(logits, labels) if fitted else 1.0
    before = torch.softmax(logits.float(), dim=-1).max(dim=-1).values
    after = torch.softmax(logits.float() / temperature, dim=-1).max(dim=-1).values
    return Calibration(
        temperature=temperature,
        ece_before=expected_calibration_error(before, correct, bins=bins),
        ece_after=expected_calibration_error(after, correct, bins=bins),
        n=len(labels),
        errors=errors,
        fitted=fitted,
    )
