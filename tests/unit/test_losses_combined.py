"""combine_kd_losses: KD = Seg + α·Mid + β·KL with named components."""

from __future__ import annotations

import pytest
import torch

from nnunet_kd.losses import combine_kd_losses


def test_default_weights_are_the_papers() -> None:
    # 1 + 0.1*2 + 0.1*3 = 1.5
    seg, mid, kl = (torch.tensor(v, requires_grad=True) for v in (1.0, 2.0, 3.0))
    parts = combine_kd_losses(seg, mid, kl)
    assert set(parts) == {"loss", "seg", "mid", "kl"}
    assert parts["loss"].item() == pytest.approx(1.5)
    assert (parts["seg"].item(), parts["mid"].item(), parts["kl"].item()) == (1.0, 2.0, 3.0)
    parts["loss"].backward()
    assert (seg.grad.item(), mid.grad.item(), kl.grad.item()) == pytest.approx((1.0, 0.1, 0.1))
    assert not parts["kl"].requires_grad


def test_missing_terms_count_as_zero_and_custom_weights() -> None:
    parts = combine_kd_losses(torch.tensor(1.0), kl=torch.tensor(3.0), alpha=0.5, beta=2.0)
    assert parts["loss"].item() == pytest.approx(7.0)  # 1 + 2*3
    assert parts["mid"].item() == 0.0
