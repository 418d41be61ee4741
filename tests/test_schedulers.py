"""Per-batch schedules of utils/schedulers.py against torch's OneCycleLR."""
import pytest
import torch

from utils.schedulers import PatchTSTFineTuneLR


def _lrs(scheduler, steps):
    out = []
    for _ in range(steps):
        out.append(scheduler.optimizer.param_groups[0]["lr"])
        scheduler.optimizer.step()
        scheduler.step()
    return out


def _opt(lr=1e-4):
    return torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def test_single_phase_equals_torch_one_cycle():
    ours = _lrs(PatchTSTFineTuneLR(_opt(), steps_per_epoch=7, epochs=3), 21)
    ref = _lrs(torch.optim.lr_scheduler.OneCycleLR(_opt(), max_lr=1e-4, total_steps=21,
                                                   pct_start=0.3), 21)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_fine_tune_is_head_cycle_then_half_lr_cycle():
    lrs = _lrs(PatchTSTFineTuneLR(_opt(), steps_per_epoch=10, epochs=3, freeze_epochs=1), 30)
    head, whole = lrs[:10], lrs[10:]
    assert head[0] == pytest.approx(1e-4 / 25) and max(head) == pytest.approx(1e-4)
    assert whole[0] == pytest.approx(0.5e-4 / 25) and max(whole) == pytest.approx(0.5e-4)
    ref = _lrs(torch.optim.lr_scheduler.OneCycleLR(_opt(), max_lr=0.5e-4, total_steps=20,
                                                   pct_start=0.3), 20)
    assert whole == pytest.approx(ref, rel=1e-6)


def test_freeze_epochs_must_leave_epochs_for_the_whole_network():
    with pytest.raises(ValueError, match="model.freeze_epochs=3 must lie in"):
        PatchTSTFineTuneLR(_opt(), steps_per_epoch=10, epochs=3, freeze_epochs=3)
