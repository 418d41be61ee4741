"""DETR and Deformable DETR in 1-D (models/detr.py, models/deformable_detr.py) and their
set-prediction loss (utils/losses/detr.py): shapes and ranges, the Hungarian matching, the
loss terms against direct computations, auxiliary outputs, gradients and a short fit."""
import pytest
import torch
import torch.nn.functional as F

from models.deformable_detr import DeformableDETR
from models.detr import DETR
from utils.losses.detr import DETRLoss

K = 3
TINY = dict(d_model=32, num_queries=8, enc_layers=1, dec_layers=2, num_heads=2, d_ff=64,
            backbone_channels=[8, 16, 16, 32])


def beats_batch(x: torch.Tensor) -> dict:
    """Two windows: three beats, and none."""
    return {"x": x, "beat_pos": torch.tensor([[0.2, 0.5, 0.8], [0.0, 0.0, 0.0]]),
            "beat_cls": torch.tensor([[0, 2, 1], [-1, -1, -1]])}


def check_outputs(model, out, width, dec_layers):
    b, n = 2, model.query_embed.num_embeddings
    assert out["logits"].shape == (b, n, width) and out["boxes"].shape == (b, n, 2)
    assert len(out["aux"]) == dec_layers - 1
    for layer in [out, *out["aux"]]:
        assert layer["logits"].shape == (b, n, width) and torch.isfinite(layer["logits"]).all()
        assert ((layer["boxes"] > 0) & (layer["boxes"] < 1)).all()
    found = model.detections(out)
    assert set(found) == {"score", "label", "centre", "width"}
    assert all(v.shape == (b, n) for v in found.values()) and found["label"].dtype == torch.int64
    assert ((found["score"] >= 0) & (found["score"] <= 1)).all()
    assert ((found["label"] >= 0) & (found["label"] < K)).all()


def test_detr_shapes_on_an_odd_window():
    torch.manual_seed(0)
    model = DETR(enc_in=2, seq_len=997, num_classes=K, **TINY).eval()
    check_outputs(model, model(torch.randn(2, 997, 2)), K + 1, TINY["dec_layers"])
    assert not DETR.sigmoid_classes
    assert DETR(2, 997, K, **{**TINY, "aux_loss": False})(torch.randn(2, 997, 2))["aux"] == []


@pytest.mark.parametrize("refine", [False, True])
def test_deformable_detr_shapes_on_an_odd_window(refine):
    torch.manual_seed(0)
    model = DeformableDETR(enc_in=2, seq_len=997, num_classes=K, iterative_refinement=refine,
                           **TINY).eval()
    check_outputs(model, model(torch.randn(2, 997, 2)), K, TINY["dec_layers"])
    assert DeformableDETR.sigmoid_classes
    assert [level.shape[1] for level in model.pyramid(torch.randn(2, 997, 2))] == [250, 125, 63, 32]


# ---------------------------------------------------------------------- the loss
# queries 4, 1, 3 carry targets 0, 1, 2 exactly; the others lie far from every target
PERM = {4: 0, 1: 1, 3: 2}
BOX_WIDTH = 0.05


def permuted_outputs(logits: torch.Tensor) -> dict:
    batch = beats_batch(torch.zeros(2, 10, 1))
    boxes = torch.tensor([[0.97, 0.02]]).repeat(2, 6, 1)
    for q, t in PERM.items():
        boxes[0, q] = torch.tensor([batch["beat_pos"][0, t], BOX_WIDTH])
    return {"logits": logits, "boxes": boxes, "aux": []}, batch


def target_classes(no_object: int) -> torch.Tensor:
    tc = torch.full((2, 6), no_object)
    for q, t in PERM.items():
        tc[0, q] = int(beats_batch(torch.zeros(1))["beat_cls"][0, t])
    return tc


@pytest.mark.parametrize("classification", ["softmax", "focal"])
def test_matching_recovers_a_permutation(classification):
    width = K + 1 if classification == "softmax" else K
    logits = torch.full((2, 6, width), -8.0)
    tc = target_classes(K)
    logits[tc < K] = torch.where(F.one_hot(tc[tc < K], width).bool(), 8.0, -8.0)
    outputs, batch = permuted_outputs(logits)
    loss = DETRLoss(K, BOX_WIDTH, classification)
    out = loss(outputs, batch)
    assert out["l1"] < 1e-6 and out["giou"] < 1e-6
    rows, cols = loss.match(outputs["logits"], outputs["boxes"], loss.targets(batch))[0]
    assert rows.tolist() == [1, 3, 4] and cols.tolist() == [PERM[1], PERM[3], PERM[4]]


def test_no_object_weight_applies():
    torch.manual_seed(0)
    outputs, batch = permuted_outputs(torch.randn(2, 6, K + 1))
    out = DETRLoss(K, BOX_WIDTH, eos_coef=0.1)(outputs, batch)
    weight = torch.tensor([1.0] * K + [0.1])
    expected = F.cross_entropy(outputs["logits"].reshape(-1, K + 1), target_classes(K).reshape(-1),
                               weight=weight)
    assert torch.allclose(out["ce"], expected, atol=1e-6)
    plain = F.cross_entropy(outputs["logits"].reshape(-1, K + 1), target_classes(K).reshape(-1))
    assert not torch.allclose(out["ce"], plain, atol=1e-3)


def test_focal_loss_equals_a_direct_computation():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, K)
    outputs, batch = permuted_outputs(logits)
    alpha, gamma = 0.25, 2.0
    out = DETRLoss(K, BOX_WIDTH, "focal", focal_alpha=alpha, focal_gamma=gamma)(outputs, batch)
    tc = target_classes(K)
    onehot = torch.zeros(2, 6, K)
    onehot[tc < K] = F.one_hot(tc[tc < K], K).float()
    # torchvision.ops.sigmoid_focal_loss, written out; normalised by the 3 target beats
    p = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")
    p_t = p * onehot + (1 - p) * (1 - onehot)
    alpha_t = alpha * onehot + (1 - alpha) * (1 - onehot)
    expected = (alpha_t * ce * (1 - p_t) ** gamma).sum() / 3
    assert torch.allclose(out["focal"], expected, atol=1e-6)


@pytest.mark.parametrize("classification", ["softmax", "focal"])
def test_windows_without_beats(classification):
    torch.manual_seed(0)
    width = K + 1 if classification == "softmax" else K
    logits = torch.randn(2, 6, width, requires_grad=True)
    boxes = torch.rand(2, 6, 2, requires_grad=True)
    loss = DETRLoss(K, BOX_WIDTH, classification)
    mixed = loss({"logits": logits, "boxes": boxes}, beats_batch(torch.zeros(2, 10, 1)))
    empty = {"x": torch.zeros(2, 10, 1), "beat_pos": torch.zeros(2, 3),
             "beat_cls": torch.full((2, 3), -1)}
    none = loss({"logits": logits, "boxes": boxes}, empty)
    assert torch.isfinite(mixed["loss"]) and torch.isfinite(none["loss"])
    assert none["l1"] == 0 and none["giou"] == 0
    if classification == "softmax":   # every query is "no object"
        assert torch.allclose(none["ce"], F.cross_entropy(logits.reshape(-1, K + 1),
                                                          torch.full((12,), K)))
    none["loss"].backward()
    assert logits.grad.abs().sum() > 0
    no_rows = {"x": torch.zeros(2, 10, 1), "beat_pos": torch.zeros(2, 0),
               "beat_cls": torch.zeros(2, 0, dtype=torch.long)}
    assert torch.isfinite(loss({"logits": logits, "boxes": boxes}, no_rows)["loss"])


def test_aux_outputs_add_to_the_loss():
    torch.manual_seed(0)
    final = {"logits": torch.randn(2, 6, K + 1), "boxes": torch.rand(2, 6, 2)}
    aux = [{"logits": torch.randn(2, 6, K + 1), "boxes": torch.rand(2, 6, 2)}]
    batch = beats_batch(torch.zeros(2, 10, 1))
    loss = DETRLoss(K, BOX_WIDTH)
    alone = loss({**final, "aux": []}, batch)
    both = loss({**final, "aux": aux}, batch)
    assert both["loss"] > alone["loss"]
    assert torch.allclose(both["loss"], alone["loss"] + loss({**aux[0], "aux": []}, batch)["loss"])
    assert torch.allclose(both["ce"], alone["ce"])      # logged parts: the final layer's


@pytest.mark.parametrize("model_class, classification",
                         [(DETR, "softmax"), (DeformableDETR, "focal")])
def test_gradients_reach_the_backbone(model_class, classification):
    torch.manual_seed(0)
    model = model_class(enc_in=2, seq_len=301, num_classes=K, **TINY)
    x = torch.randn(2, 301, 2)
    out = DETRLoss(K, BOX_WIDTH, classification)(model(x), beats_batch(x))
    out["loss"].backward()
    grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_iterative_refinement_refines_each_layer():
    torch.manual_seed(0)
    model = DeformableDETR(enc_in=2, seq_len=301, num_classes=K, iterative_refinement=True,
                           **{**TINY, "dec_layers": 3}).eval()
    assert len(model.bbox_embed) == len(model.class_embed) == 3
    with torch.no_grad():           # zero-initialised deltas would leave every box unchanged
        for head in model.bbox_embed:
            head.layers[-1].weight.normal_(std=0.1)
            head.layers[-1].bias.normal_(std=0.1)
    references = []
    for layer in model.decoder:
        layer.cross_attn.register_forward_pre_hook(lambda m, args: references.append(args[1]))
    out = model(torch.randn(2, 301, 2))
    boxes = [a["boxes"] for a in out["aux"]] + [out["boxes"]]
    for a, b in zip(boxes[:-1], boxes[1:]):
        assert (a - b).abs().max() > 1e-3
    assert references[0].shape[-1] == 1          # the first reference: a point from the query
    for ref, prev in zip(references[1:], boxes[:-1]):
        assert torch.equal(ref, prev) and not ref.requires_grad   # the previous box, detached


def test_a_short_fit_lowers_the_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    b, w, m = 4, 256, 4
    x = 0.05 * torch.randn(b, w, 1, generator=g)
    pos, cls = torch.zeros(b, m), torch.full((b, m), -1)
    for i in range(b):      # 2-4 spikes per window, up for class 0, down for class 1
        n = 2 + i % 3
        p = (torch.arange(n) + 0.5 + 0.3 * torch.rand(n, generator=g)) / n
        c = torch.randint(0, 2, (n,), generator=g)
        pos[i, :n], cls[i, :n] = p, c
        x[i, (p * w).long(), 0] += torch.where(c == 0, 3.0, -3.0)
    batch = {"x": x, "beat_pos": pos, "beat_cls": cls}
    model = DETR(1, w, 2, d_model=32, num_queries=8, enc_layers=1, dec_layers=1, num_heads=2,
                 d_ff=64, dropout=0.0, backbone_channels=[8, 16, 16, 32])
    loss = DETRLoss(2, 0.04)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(300):
        out = loss(model(x), batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append(out["loss"].item())
    assert sum(history[-10:]) / 10 < history[0] / 4


@pytest.mark.parametrize("name, target", [("detr", DETR), ("deformable_detr", DeformableDETR)])
def test_configs_build_a_model_and_its_loss(name, target):
    from utils.compose import compose_cfg
    from utils.instantiate import build
    cfg = compose_cfg([f"model={name}", "data=ecg_stream"])
    assert cfg.task.name == "detect" and cfg.trainer.grad_clip == 0.1
    dims = {"enc_in": 2, "seq_len": 1800, "num_classes": 5, "box_width": 0.015}
    model, loss = build(cfg.model, **dims), build(cfg.loss, **dims)
    assert isinstance(model, target)
    assert (loss.classification == "focal") == model.sigmoid_classes
    assert loss.box_width == 0.015 and loss.num_classes == 5
