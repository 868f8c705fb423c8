"""romp_fast.metrics.agora: NMJE = MPJPE / F1, NMVE = MVE / F1 (AGORA paper), by hand."""
import math

import pytest
import torch

from romp_fast.metrics.agora import nmje, nmve, recall_normalised


def test_values_by_hand():
    assert nmje(90.0, 0.9).item() == pytest.approx(100.0)
    assert nmve(torch.tensor([50.0, 80.0]), torch.tensor([1.0, 0.5])).tolist() == pytest.approx([50.0, 160.0])
    assert recall_normalised(60.0, 0.75).item() == pytest.approx(80.0)


def test_perfect_detection_leaves_error_unchanged_and_zero_f1_is_inf():
    assert nmje(0.0, 1.0).item() == 0.0
    assert math.isinf(nmje(10.0, 0.0).item())


def test_f1_outside_unit_interval_is_an_error():
    with pytest.raises(ValueError, match="f1 must lie in"):
        nmje(1.0, 1.5)
