"""Temperature scaling and expected calibration error on crafted cases with known answers."""

import pytest
import torch

from slmtier.benchmark.calibration import calibrate, expected_calibration_error, fit_temperature


def test_ece_by_hand():
    confidence = torch.tensor([0.9, 0.9, 0.6, 0.6])
    correct = torch.tensor([1, 0, 1, 1])
    # bin (0.8, 0.9]: accuracy 0.5 vs confidence 0.9, half the examples; bin (0.5, 0.6]: 1.0 vs 0.6, half.
    assert expected_calibration_error(confidence, correct, bins=10) == pytest.approx(0.4)
    assert expected_calibration_error(torch.tensor([1.0, 0.0]), torch.tensor([1, 0]), bins=10) == 0.0


def overconfident(scale: float, n: int = 20000, classes: int = 5):
    """Labels drawn from softmax(z), logits reported as scale * z: the true temperature is `scale`."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(n, classes, generator=generator) * 1.5
    labels = torch.multinomial(torch.softmax(z, dim=-1), 1, generator=generator).squeeze(1)
    return z * scale, labels


@pytest.mark.parametrize("scale", [0.5, 1.0, 3.0])
def test_the_true_temperature_is_recovered(scale):
    logits, labels = overconfident(scale)
    assert fit_temperature(logits, labels) == pytest.approx(scale, rel=0.08)


def test_calibration_lowers_ece_and_changes_no_answer():
    logits, labels = overconfident(3.0)
    result = calibrate(logits, labels)
    assert result.ece_before > 0.1 and result.ece_after < 0.02 and result.n == len(labels)
    assert torch.equal((logits / result.temperature).argmax(-1), logits.argmax(-1))


def test_no_temperature_is_fitted_to_a_split_without_errors():
    logits = torch.tensor([[4.0, 0.0, 0.0], [0.0, 3.0, 1.0], [0.5, 0.0, 2.0]])
    labels = logits.argmax(dim=-1)  # every answer right: the likelihood would keep rising as T -> 0
    calibration = calibrate(logits, labels)
    assert calibration.temperature == 1.0 and not calibration.fitted and calibration.errors == 0
    assert calibration.ece_after == calibration.ece_before
    one_wrong = calibrate(logits, torch.tensor([0, 1, 0]))
    assert one_wrong.fitted and one_wrong.errors == 1 and one_wrong.temperature > 0.1
