"""Unit tests of utils/explain: CAM/Grad-CAM identity, guided-backprop hooks leave no trace,
map lengths, deletion-curve bookkeeping on a model whose answer is known."""
import numpy as np
import pytest
import torch
from torch import nn

from models.resnet1d import ResNet1D
from utils.explain import (NotCAMCompatible, cam, class_profiles, curve_auc, default_layer,
                           deletion_curve, deletion_order, gradcam, guided_backprop,
                           guided_gradcam, normalize_maps, per_step, random_order)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: on a busy 2-core machine thread hand-offs cost more than they save."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_resnet(extra=0, seed=0):
    torch.manual_seed(seed)
    model = ResNet1D(in_channels=2, num_classes=3, widths=(4, 6), kernel_sizes=(5, 3),
                     extra_features=extra)
    # non-trivial BatchNorm statistics, then eval mode: samples independent
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(8, 40, 2), *( [torch.randn(8, extra)] if extra else []))
    return model.eval()


class StridedCNN(nn.Module):
    """GAP + linear CNN whose maps are shorter than the input (stride 2)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 5, 5, stride=2, padding=2)
        self.act = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(5, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def feature_maps(self, x):
        return self.conv2(self.act(self.conv1(x.transpose(1, 2))))

    def forward(self, x):
        return self.fc(self.feature_maps(x).mean(-1))


@pytest.mark.parametrize("extra", [0, 3])
def test_cam_equals_gradcam_on_gap_linear_resnet(extra):
    model = tiny_resnet(extra)
    x = torch.randn(5, 40, 2)
    kw = {"features": torch.randn(5, extra)} if extra else {}
    target = torch.tensor([0, 1, 2, 1, 0])
    assert default_layer(model, x, kw) == "blocks"      # the maps that are average-pooled
    c = cam(model, x, target, kw)
    g_raw = gradcam(model, x, target, forward_kwargs=kw, relu=False)
    g = gradcam(model, x, target, forward_kwargs=kw)
    t = x.shape[1]
    # known identity: Grad-CAM weights at the GAP input are fc weights / T
    torch.testing.assert_close(g_raw * t, c, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(g * t, c.clamp(min=0), rtol=1e-4, atol=1e-5)
    assert (c < 0).any() and (c > 0).any()               # the check is not vacuous
    # CAM sums to the class score minus bias (and minus the RR-feature part)
    logits = model(x, **kw)
    rest = (model.fc.weight[target, 4 + 2:] * kw["features"]).sum(-1) if extra else 0
    torch.testing.assert_close(c.mean(-1) + model.fc.bias[target] + rest,
                               logits.gather(1, target[:, None])[:, 0], rtol=1e-4, atol=1e-5)


def test_cam_equals_gradcam_last_conv_of_strided_cnn_and_maps_have_input_length():
    torch.manual_seed(1)
    model = StridedCNN().eval()
    x = torch.randn(3, 33, 1)                             # odd length: maps have 17 steps
    target = torch.tensor([1, 0, 1])
    assert default_layer(model, x) == "conv2"
    c = cam(model, x, target)
    g = gradcam(model, x, target, relu=False)
    assert c.shape == g.shape == (3, 33)
    torch.testing.assert_close(g * 17, c, rtol=1e-4, atol=1e-5)   # T' = 17 before upsampling
    gb = guided_backprop(model, x, target)
    assert gb.shape == x.shape
    assert guided_gradcam(gb, gradcam(model, x, target)).shape == x.shape
    assert per_step(gb).shape == (3, 33)
    # any named layer, e.g. the first conv, also comes back at the input's length
    assert gradcam(model, x, target, layer="conv1").shape == (3, 33)


def test_cam_refuses_models_without_gap_linear_structure():
    class NoMaps(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(20, 2)

        def forward(self, x):
            return self.fc(x.flatten(1))

    class MaxPooled(StridedCNN):
        def forward(self, x):
            return self.fc(self.feature_maps(x).amax(-1))

    x, target = torch.randn(2, 20, 1), torch.tensor([0, 1])
    with pytest.raises(NotCAMCompatible, match="feature_maps"):
        cam(NoMaps(), x, target)
    with pytest.raises(NotCAMCompatible, match="time-mean"):
        cam(MaxPooled().eval(), x, target)


def test_models_without_conv_gap_structure_get_gradcam_and_clear_refusals():
    from models.transformer import TransformerClassifier
    from utils.explain import NoReLUModules
    torch.manual_seed(3)
    model = TransformerClassifier(in_channels=1, seq_len=30, num_classes=3, patch_len=8,
                                  d_model=8, n_heads=2, n_layers=1, d_ff=16).eval()
    x, target = torch.randn(2, 30, 1), torch.tensor([0, 2])
    m = gradcam(model, x, target, layer="encoder")       # [B, 4 tokens, 8] -> [B, 30]
    assert m.shape == (2, 30) and (m >= 0).all() and m.any()
    with pytest.raises(ValueError, match="no Conv1d layer.*task.layer"):
        gradcam(model, x, target)
    with pytest.raises(NotCAMCompatible, match="feature_maps"):
        cam(model, x, target)
    with pytest.raises(NoReLUModules, match="nn.ReLU"):
        guided_backprop(model, x, target)


def test_gradcam_unknown_layer_names_the_choices():
    model = tiny_resnet()
    with pytest.raises(ValueError, match="nope.*conv layers: blocks.0.body.0"):
        gradcam(model, torch.randn(2, 40, 2), torch.tensor([0, 1]), layer="nope")


def test_guided_backprop_matches_hand_computation():
    torch.manual_seed(2)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.act, self.l2 = nn.Linear(12, 7), nn.ReLU(), nn.Linear(7, 3)

        def forward(self, x):
            return self.l2(self.act(self.l1(x.flatten(1))))

    model = MLP()
    x, target = torch.randn(4, 6, 2), torch.tensor([0, 2, 1, 2])
    gb = guided_backprop(model, x, target)
    h = model.l1(x.flatten(1))
    r = model.l2.weight[target]                           # d score / d relu output
    r = (h > 0) * r.clamp(min=0)                          # R_l = (f > 0)(R > 0) R
    expected = (r @ model.l1.weight).reshape(x.shape)
    torch.testing.assert_close(gb, expected.detach())
    plain = (((h > 0) * model.l2.weight[target]) @ model.l1.weight).reshape(x.shape)
    assert not torch.allclose(gb, plain)                  # the guidance changed something


def _hook_state(model):
    return [(n, len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
             len(m._backward_pre_hooks), getattr(m, "inplace", None), m._is_full_backward_hook)
            for n, m in model.named_modules()]


@pytest.mark.parametrize("make", [tiny_resnet, lambda: StridedCNN().eval()])
def test_guided_backprop_hooks_leave_no_trace(make):
    model = make()
    x = torch.randn(3, 40, 1 if isinstance(model, StridedCNN) else 2)
    target = torch.tensor([1, 0, 1])

    def out_and_grads():
        model.zero_grad()
        out = model(x)
        out.sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    state = _hook_state(model)
    out0, grads0 = out_and_grads()
    model.zero_grad()
    guided_backprop(model, x, target)
    gradcam(model, x, target)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # untouched
    assert _hook_state(model) == state
    assert all(not m._forward_hooks and not m._backward_hooks and not m._backward_pre_hooks
               for m in model.modules())
    out1, grads1 = out_and_grads()
    assert torch.equal(out0, out1)
    assert all(torch.equal(a, b) for a, b in zip(grads0, grads1))


def test_guided_backprop_refuses_models_without_relu_modules():
    model = nn.Sequential(nn.Flatten(), nn.Linear(10, 2))
    with pytest.raises(ValueError, match="nn.ReLU"):
        guided_backprop(model, torch.randn(1, 10, 1), torch.tensor([0]))


class LinearScore(nn.Module):
    """logit_0 = sum_t w_t x_t, logit_1 = 0: deleting step t lowers logit_0 by w_t x_t."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        s = (x[..., 0] * self.w).sum(-1)
        return torch.stack([s, torch.zeros_like(s)], dim=-1)


def test_deletion_curve_bookkeeping_on_a_known_model():
    g = torch.Generator().manual_seed(0)
    t = 20
    w = torch.rand(t, generator=g) + 0.1
    x = torch.rand(2, t, 1, generator=g) + 0.1
    model, target = LinearScore(w), torch.tensor([0, 0])
    contrib = x[..., 0] * w                                    # what each step adds
    order = deletion_order(contrib, g)
    fr, scores = deletion_curve(model, x, target, order, steps=10, baseline="zero",
                                score="logit")
    np.testing.assert_allclose(fr, np.linspace(0, 1, 11))
    # 10 % of 20 steps = 2 steps per point; removing the largest contributions first
    srt = torch.sort(contrib, dim=1, descending=True).values
    expected = contrib.sum(1, keepdim=True) - torch.cat(
        [torch.zeros(2, 1), srt.cumsum(1)[:, 1::2]], dim=1)
    np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 1e-6).all() and np.allclose(scores[:, -1], 0, atol=1e-6)
    auc = curve_auc(fr, scores)
    np.testing.assert_allclose(auc, np.trapezoid(scores, fr, axis=1), rtol=1e-6)
    _, rnd = deletion_curve(model, x, target, random_order(2, t, g), steps=10, baseline="zero",
                            score="logit")
    assert (auc < curve_auc(fr, rnd)).all()                # the true order beats random
    # probabilities: sigmoid of the logit, also monotone, starting at the full-input score
    _, prob = deletion_curve(model, x, target, order, steps=10, baseline="zero", score="prob")
    np.testing.assert_allclose(prob, torch.sigmoid(expected).numpy(), rtol=1e-5)
    # the 'mean' baseline replaces a removed step by the sample's mean value
    _, mean_scores = deletion_curve(model, x, target, order, steps=10, baseline="mean",
                                    score="logit")
    np.testing.assert_allclose(mean_scores[:, -1], (w * x[..., 0].mean(1, keepdim=True))
                               .sum(1).numpy(), rtol=1e-5)


def test_interpolate_baseline_draws_lines_between_kept_steps():
    from utils.explain.deletion import remove_steps
    x = torch.stack([torch.arange(8.0), torch.arange(8.0) ** 2], dim=-1)[None]   # [1, 8, 2]
    removed = torch.tensor([[True, False, True, True, False, False, True, True]])
    out = remove_steps(x, removed, "interpolate")[0]
    # kept steps 1, 4, 5 unchanged; 2, 3 on the line from step 1 to 4; ends take the nearest kept
    np.testing.assert_allclose(out[:, 0], [1, 1, 2, 3, 4, 5, 5, 5])
    np.testing.assert_allclose(out[:, 1], [1, 1, 6, 11, 16, 25, 25, 25])
    assert (remove_steps(x, torch.ones(1, 8, dtype=torch.bool), "interpolate") == 0).all()
    # on a straight trace, removing any inner steps changes nothing (no information lost)
    ramp = torch.linspace(-1, 1, 20).view(1, 20, 1).repeat(3, 1, 1)
    inner = torch.zeros(3, 20, dtype=torch.bool)
    inner[:, 1:-1] = torch.rand(3, 18, generator=torch.Generator().manual_seed(0)) < 0.6
    torch.testing.assert_close(remove_steps(ramp, inner, "interpolate"), ramp)
    with pytest.raises(ValueError, match="interpolate"):
        remove_steps(x, removed, "noise")


def test_deletion_order_takes_the_top_steps_first_and_breaks_ties_at_random():
    sal = torch.tensor([[0.0, 3.0, 0.0, 5.0, 0.0, 0.0, 1.0, 0.0]]).repeat(50, 1)
    order = deletion_order(sal, torch.Generator().manual_seed(0))
    assert (order[:, :3] == torch.tensor([3, 1, 6])).all()
    assert len({tuple(o[3:].tolist()) for o in order}) > 10    # zeros: no fixed order


def test_segment_deletion_orders_whole_segments():
    sal = torch.tensor([[0.0, 0.0, 0.0, 9.0, 1.0, 1.0, 5.0]])   # segments of 3: means 0, 10/3, 5
    order = deletion_order(sal, torch.Generator().manual_seed(0), segment_len=3)
    assert order[0, :1].tolist() == [6] and sorted(order[0, 1:4].tolist()) == [3, 4, 5]
    assert order[0, 1:4].tolist() == [3, 4, 5] and order[0, 4:].tolist() == [0, 1, 2]
    rnd = random_order(4, 10, torch.Generator().manual_seed(1), segment_len=4)
    assert all(sorted(r.tolist()) == list(range(10)) for r in rnd)
    for r in rnd.tolist():                                # each segment stays contiguous
        seg_ids = [v // 4 for v in r]
        assert sum(a != b for a, b in zip(seg_ids, seg_ids[1:])) == 2      # 3 runs
        assert all(b == a + 1 for a, b, sa, sb in zip(r, r[1:], seg_ids, seg_ids[1:]) if sa == sb)


def test_class_profiles_average_normalised_maps():
    maps = np.array([[0.0, 2.0, 4.0], [1.0, 1.0, 1.0], [3.0, 1.0, 2.0]])
    np.testing.assert_allclose(normalize_maps(maps), [[0, .5, 1], [0, 0, 0], [1, 0, .5]])
    prof = class_profiles(maps, np.array([0, 0, 2]), num_classes=3)
    np.testing.assert_allclose(prof[0], [0, .25, .5])
    assert np.isnan(prof[1]).all()
    np.testing.assert_allclose(prof[2], [1, 0, .5])


def test_figures_have_colour_bars_and_titles(tmp_path):
    from utils.explain.plots import figure_to_png, plot_class_profiles, plot_explanation
    trace = np.sin(np.linspace(0, 6, 50))[:, None]
    fig = plot_explanation(trace, {"Grad-CAM": np.linspace(0, 1, 50), "CAM": np.ones(50)},
                           "true V, pred V (p=0.97)")
    assert fig._suptitle.get_text() == "true V, pred V (p=0.97)"
    assert sum(ax.get_label() == "<colorbar>" for ax in fig.axes) == 2
    figure_to_png(fig, tmp_path / "a.png")
    prof = {"Grad-CAM": np.stack([np.linspace(0, 1, 50), np.full(50, np.nan)])}
    fig = plot_class_profiles(prof, np.stack([trace, trace]), ["N", "V"], [3, 0])
    figure_to_png(fig, tmp_path / "b.png")
    assert (tmp_path / "a.png").stat().st_size > 1000 and (tmp_path / "b.png").stat().st_size > 1000


def test_explain_task_settings_fail_at_start_with_the_fix(tmp_path):
    from exp.exp_explain import check_settings, checkpoint_path
    from utils.compose import compose_cfg
    cfg = compose_cfg(["task=explain"])
    with pytest.raises(ValueError, match="task.checkpoint=<run dir>/checkpoints/best.pt"):
        checkpoint_path(cfg.task)
    cfg = compose_cfg(["task=explain", f"task.checkpoint={tmp_path}/best.pt"])
    with pytest.raises(FileNotFoundError, match="best.pt"):
        checkpoint_path(cfg.task)
    check_settings(cfg.task)                              # the defaults are valid
    for bad, msg in (("task.methods=[cam,lime]", "lime"),
                     ("task.deletion.baseline=noise", "interpolate, zero, mean"),
                     ("task.layout=rows", "channels_first")):
        with pytest.raises(ValueError, match=msg):
            check_settings(compose_cfg(["task=explain", bad]).task)
