"""SAM in 1-D (models/sam.py) and its loss (utils/losses/sam.py): shapes for odd windows and
every prompt kind, the multimask rule, encode + decode = forward, the Fourier prompt
encoding, padding points, the loss terms against direct computations, gradients and a short
fit on sine bursts."""
import math

import pytest
import torch

from models.sam import SAM1d
from utils.compose import compose_cfg
from utils.instantiate import build
from utils.losses.sam import SAMLoss, mask_iou

TINY = {"d_model": 32, "backbone_channels": [8, 16, 16, 32], "encoder_layers": 1, "num_heads": 2,
        "d_ff": 64, "decoder_layers": 2}
NAN = float("nan")


def tiny(seq_len=997, enc_in=2, seed=0):
    torch.manual_seed(seed)
    return SAM1d(enc_in=enc_in, seq_len=seq_len, **TINY).eval()


def sparse_tokens(model, *args, **kwargs):
    """The prompt tokens the mask decoder receives."""
    seen = []
    hook = model.mask_decoder.register_forward_hook(lambda m, inputs, out: seen.append(inputs[2]))
    with torch.no_grad():
        model(*args, **kwargs)
    hook.remove()
    return seen[0]


def check(out, b, m, w):
    assert out["masks"].shape == (b, m, w) and out["iou"].shape == (b, m)
    assert torch.isfinite(out["masks"]).all() and torch.isfinite(out["iou"]).all()


@torch.no_grad()
def test_shapes_on_an_odd_window_for_every_prompt():
    model, w = tiny(), 997
    x = torch.randn(2, w, 2)
    one = torch.tensor([[0.3], [0.7]]), torch.ones(2, 1, dtype=torch.long)
    check(model(x, *one), 2, 3, w)                                         # one point: 3 candidates
    check(model(x, *one, multimask=False), 2, 1, w)
    three = torch.tensor([[0.3, 0.5, 0.9], [0.7, 0.1, 0.0]]), torch.tensor([[1, 0, 1], [1, 0, -1]])
    check(model(x, *three), 2, 1, w)                                       # several: single output
    check(model(x, *three, multimask=True), 2, 3, w)
    padded = torch.tensor([[0.3, 0.0], [0.7, 0.0]]), torch.tensor([[1, -1], [1, -1]])
    check(model(x, *padded), 2, 3, w)                                      # padding is no prompt
    interval = torch.tensor([[0.2, 0.6], [NAN, NAN]])
    none = torch.zeros(2, 1), torch.full((2, 1), -1)
    check(model(x, *none, interval), 2, 1, w)                              # an interval: single
    check(model(x, *padded, torch.full((2, 2), NAN)), 2, 3, w)             # NaN rows: no interval
    check(model(torch.randn(1, 640, 2), torch.tensor([[0.5]]), torch.ones(1, 1, dtype=torch.long)), 1, 3, 640)
    assert model.encode(x).shape == (2, math.ceil(w / 16), 32)


@torch.no_grad()
def test_encode_then_decode_equals_forward():
    model, w = tiny(), 997
    x = torch.randn(3, w, 2)
    pts, lab = torch.tensor([[0.1, 0.4], [0.5, 0.0], [0.9, 0.2]]), torch.tensor([[1, 0], [1, -1], [1, 1]])
    interval = torch.tensor([[0.05, 0.3], [NAN, NAN], [0.6, 0.95]])
    emb = model.encode(x)
    for multimask in (True, False):
        full = model(x, pts, lab, interval, multimask=multimask)
        split = model.decode(emb, pts, lab, interval, multimask=multimask)      # length = seq_len
        for key in ("masks", "iou"):
            torch.testing.assert_close(split[key], full[key])
    # one window's embedding serves several prompts, as SAM's
    one = model.decode(emb[:1], pts, lab, interval)
    torch.testing.assert_close(one["masks"][0], model.decode(emb, pts, lab, interval)["masks"][0])
    with pytest.raises(ValueError, match="length"):
        model.decode(model.encode(torch.randn(1, 640, 2)), pts[:1], lab[:1])


def test_fourier_point_encoding_is_fixed_and_positional():
    model = tiny()
    assert "prompt_encoder.gaussian" in model.state_dict()                  # saved, not trained
    assert all(p is not model.prompt_encoder.gaussian for p in model.parameters())
    lab = torch.ones(1, 2, dtype=torch.long)
    a = sparse_tokens(model, torch.randn(1, 997, 2), torch.tensor([[0.3, 0.6]]), lab)
    b = sparse_tokens(model, torch.randn(1, 640, 2) * 3, torch.tensor([[0.3, 0.8]]), lab)
    torch.testing.assert_close(a[0, 0], b[0, 0])                           # same position, other window
    assert (a[0, 1] - b[0, 1]).abs().max() > 1e-3                          # other position
    pe = model.prompt_encoder.fourier(torch.tensor([0.3, 0.6]))
    torch.testing.assert_close(a[0, :2], pe + model.prompt_encoder.label_embed.weight[1])


def test_padding_points_carry_only_the_not_a_point_embedding():
    model = tiny()
    enc = model.prompt_encoder
    tokens = enc.embed_points(torch.tensor([[0.2, 0.9, NAN]]), torch.tensor([[1, -1, -1]]))
    torch.testing.assert_close(tokens[0, 1:], enc.not_a_point.weight.expand(2, -1))
    interval = enc.embed_interval(torch.tensor([[0.1, 0.5], [NAN, NAN]]))
    torch.testing.assert_close(interval[1], enc.not_a_point.weight.expand(2, -1))
    corners = enc.fourier(torch.tensor([0.1, 0.5])) + enc.corner_embed.weight
    torch.testing.assert_close(interval[0], corners)
    # SAM attends to padding tokens (nothing masked), so their position must not matter
    x = torch.randn(1, 997, 2)
    with torch.no_grad():
        a = model(x, torch.tensor([[0.4, 0.1]]), torch.tensor([[1, -1]]))
        b = model(x, torch.tensor([[0.4, 0.8]]), torch.tensor([[1, -1]]))
    torch.testing.assert_close(a["masks"], b["masks"])
    # without an interval SAM appends one padding point
    assert sparse_tokens(model, x, torch.tensor([[0.4]]), torch.ones(1, 1, dtype=torch.long)).shape[1] == 2


def direct_terms(logits, target, valid, alpha=0.25, gamma=2.0):
    """Focal and dice of one mask, written out step by step."""
    p = torch.sigmoid(logits)
    steps = torch.nonzero(valid).flatten().tolist()
    focal = sum(-alpha * (1 - p[i]) ** gamma * torch.log(p[i]) if target[i]
                else -(1 - alpha) * p[i] ** gamma * torch.log(1 - p[i]) for i in steps) / max(len(steps), 1)
    inter = sum(p[i] for i in steps if target[i])
    dice = 1 - (2 * inter + 1) / (sum(p[i] for i in steps) + sum(int(target[i]) for i in steps) + 1)
    return focal, dice


def test_loss_keeps_the_best_candidate():
    w = 40
    target = torch.zeros(1, w, dtype=torch.bool)
    target[0, 10:25] = True
    masks = torch.full((1, 3, w), -50.0)
    masks[0, 0] = 50.0                             # everything
    masks[0, 1, 30:] = 50.0                        # the wrong part
    masks[0, 2, 10:25] = 50.0                      # perfect
    masks.requires_grad_(True)
    iou = torch.tensor([[0.2, 0.1, 0.9]])
    out = SAMLoss()({"masks": masks, "iou": iou}, {"target_mask": target})
    assert set(out) == {"loss", "focal", "dice", "iou_mse"}
    assert out["focal"].item() < 1e-6 and out["dice"].item() < 1e-6
    actual = torch.tensor([15 / 40, 0.0, 1.0])
    torch.testing.assert_close(out["iou_mse"], ((iou[0] - actual) ** 2).mean())
    out["loss"].backward()
    assert masks.grad[0, :2].abs().max() == 0      # the other candidates get no mask gradient


def test_loss_terms_against_direct_computation():
    torch.manual_seed(1)
    b, m, w = 2, 3, 30
    masks, iou = torch.randn(b, m, w) * 2, torch.rand(b, m)
    target, valid = torch.rand(b, w) < 0.4, torch.rand(b, w) < 0.8
    loss = SAMLoss(focal_weight=20.0, dice_weight=1.0, iou_weight=0.5)
    out = loss({"masks": masks, "iou": iou}, {"target_mask": target, "target_valid": valid})
    focal, dice, mse = [], [], 0.0
    for i in range(b):
        terms = [direct_terms(masks[i, j], target[i], valid[i]) for j in range(m)]
        j = min(range(m), key=lambda k: 20 * terms[k][0] + terms[k][1])
        focal.append(terms[j][0])
        dice.append(terms[j][1])
        for k in range(m):
            pred = masks[i, k] > 0
            inter = int((pred & target[i] & valid[i]).sum())
            union = int(((pred | target[i]) & valid[i]).sum())
            mse += (iou[i, k] - inter / union) ** 2 / (b * m)
    focal, dice = sum(focal) / b, sum(dice) / b
    torch.testing.assert_close(out["focal"], focal)
    torch.testing.assert_close(out["dice"], dice)
    torch.testing.assert_close(out["iou_mse"], mse)
    torch.testing.assert_close(out["loss"], 20 * focal + dice + 0.5 * mse)


def test_mask_iou_counts():
    logits = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0, -1.0], [-1.0] * 6])
    target = torch.tensor([[True, False, True, False, True, False], [False] * 6])
    torch.testing.assert_close(mask_iou(logits, target), torch.tensor([2 / 4, 1.0]))   # empty union: 1
    valid = torch.tensor([[True, True, False, True, True, True], [True] * 6])
    torch.testing.assert_close(mask_iou(logits, target, valid), torch.tensor([2 / 3, 1.0]))
    # broadcast: candidates [B, M, W] against a [B, 1, W] target
    assert mask_iou(logits[:, None].expand(2, 3, 6), target[:, None]).shape == (2, 3)


def test_gradients_reach_the_encoder():
    model = tiny(seq_len=200).train()
    out = model(torch.randn(2, 200, 2), torch.tensor([[0.3], [0.6]]), torch.ones(2, 1, dtype=torch.long))
    target = torch.zeros(2, 200, dtype=torch.bool)
    target[:, 50:120] = True
    SAMLoss()(out, {"target_mask": target})["loss"].backward()
    for name in ("image_encoder.backbone.stem.0.weight", "image_encoder.blocks.0.linear1.weight",
                 "prompt_encoder.label_embed.weight", "prompt_encoder.no_mask.weight",
                 "mask_decoder.iou_head.layers.0.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_short_fit_segments_a_sine_burst():
    torch.manual_seed(0)
    w, b = 256, 16
    start, length = torch.randint(0, w - 128, (b,)), torch.randint(48, 112, (b,))
    t = torch.arange(w)
    target = (t >= start[:, None]) & (t < (start + length)[:, None])
    x = 0.1 * torch.randn(b, w, 1) + (target * torch.sin(2 * math.pi * t / 8)).unsqueeze(-1)
    inside = ((start + torch.rand(b) * length).floor() + 0.5) / w            # a point in the burst
    pts, lab = inside[:, None], torch.ones(b, 1, dtype=torch.long)
    model = SAM1d(enc_in=1, seq_len=w, **TINY)
    loss, opt = SAMLoss(), torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(200):
        opt.zero_grad()
        loss(model(x, pts, lab), {"target_mask": target})["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(x, pts, lab)
    chosen = out["masks"][torch.arange(b), out["iou"].argmax(1)]             # SAM's pick: top predicted IoU
    assert mask_iou(chosen, target).mean() > 0.8


def test_config_builds_the_model_and_loss():
    cfg = compose_cfg(["model=sam"])
    assert (cfg.task.name, cfg.data.family, cfg.data.window_seconds) == ("segment", "ecg_stream", 60.0)
    assert (cfg.optimizer.lr, cfg.optimizer.weight_decay) == (8e-4, 0.1)
    model = build(cfg.model, enc_in=2, seq_len=1000, num_classes=5)
    assert isinstance(model, SAM1d) and model.num_masks == 3
    assert isinstance(build(cfg.loss, num_classes=5), SAMLoss)
