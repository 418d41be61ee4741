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


def test_warmup_cosine_matches_the_dino_schedule():
    """DINO: linear warm-up from 0 over 10 % of the steps, half cosine to 1e-6 (lr), weight
    decay on a cosine from 0.04 to 0.4 for the decayed group; the no-decay group stays at 0."""
    import math
    from utils.schedulers import WarmupDecayLR
    w, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([{"params": [w]}, {"params": [b], "weight_decay": 0.0}],
                            lr=5e-4, weight_decay=0.04)
    sched = WarmupDecayLR(opt, total_steps=50, warmup=0.1, final_lr=1e-6, weight_decay_end=0.4)
    lrs, wds, free = [], [], []
    for _ in range(50):
        lrs.append(opt.param_groups[0]["lr"])
        wds.append(opt.param_groups[0]["weight_decay"])
        free.append(opt.param_groups[1]["weight_decay"])
        opt.step()
        sched.step()
    assert lrs[:6] == pytest.approx([0.0, 1e-4, 2e-4, 3e-4, 4e-4, 5e-4])
    for k in range(5, 50):       # half cosine over the 45 steps after the warm-up
        assert lrs[k] == pytest.approx(1e-6 + (5e-4 - 1e-6) * 0.5 * (1 + math.cos(math.pi * (k - 5) / 45)))
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)     # held at the end
    assert wds[0] == pytest.approx(0.04) and wds[25] == pytest.approx(0.22)
    assert opt.param_groups[0]["weight_decay"] == pytest.approx(0.4) and set(free) == {0.0}


def test_warmup_linear_and_resume_from_state_dict():
    """wav2vec 2.0: 8 % warm-up then linear decay to 0; a scheduler rebuilt from its state dict
    continues the same sequence (a resumed run)."""
    from utils.schedulers import WarmupDecayLR
    sched = WarmupDecayLR(_opt(1.0), total_steps=100, warmup=0.08, decay="linear")
    lrs = _lrs(sched, 40)
    assert lrs[4] == pytest.approx(0.5) and lrs[8] == pytest.approx(1.0)
    assert lrs[31] == pytest.approx(1.0 - 23 / 92)
    again = WarmupDecayLR(_opt(1.0), total_steps=100, warmup=0.08, decay="linear")
    again.load_state_dict(sched.state_dict())
    again.optimizer.param_groups[0]["lr"] = sched.optimizer.param_groups[0]["lr"]
    assert _lrs(again, 10) == pytest.approx(_lrs(sched, 10))
    with pytest.raises(ValueError, match="warmup=1.5 is a fraction"):
        WarmupDecayLR(_opt(), total_steps=10, warmup=1.5)


def test_warmup_step_decays_by_gamma_at_fractional_milestones():
    """Instance discrimination: lr x0.1 at 60 % and 80 % of the run (epochs 120, 160 of 200)."""
    from utils.schedulers import WarmupDecayLR
    lrs = _lrs(WarmupDecayLR(_opt(1.0), total_steps=50, warmup=0.0, decay="step",
                             milestones=[0.6, 0.8], gamma=0.1), 50)
    assert lrs[:30] == pytest.approx([1.0] * 30)
    assert lrs[30:40] == pytest.approx([0.1] * 10) and lrs[40:] == pytest.approx([0.01] * 10)
    with pytest.raises(ValueError, match="milestones=.*fractions of the run"):
        WarmupDecayLR(_opt(), total_steps=10, decay="step", milestones=[120, 160])
