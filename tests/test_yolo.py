"""YOLO v1 in 1-D (models/yolo.py, utils/losses/yolo.py): output shapes, the target assignment
(cell, offset, responsible predictor, beats sharing a cell), the loss terms on hand-made outputs,
decoding and NMS, gradients, the configs, and a short overfit of a synthetic batch."""
from __future__ import annotations

import math

import pytest
import torch

from models.yolo import YOLO1d
from tests.helpers import compose_cfg
from utils.instantiate import build
from utils.losses.yolo import YOLOLoss, interval_iou

BW = 0.03          # beat interval, fraction of the window


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models run fastest on one thread on a shared machine."""


def tiny(**overrides) -> YOLO1d:
    kwargs = {"enc_in": 2, "seq_len": 256, "num_classes": 2, "box_width": BW, "num_cells": 16,
              "boxes_per_cell": 2, "channels": [8, 16, 32], "hidden": 64, "dropout": 0.0}
    torch.manual_seed(0)
    return YOLO1d(**{**kwargs, **overrides})


def blank(n: int, cells: int, boxes: int = 2, classes: int = 2) -> dict:
    """Outputs that predict nothing: zero confidence, uniform classes."""
    return {"conf": torch.zeros(n, cells, boxes), "offset": torch.zeros(n, cells, boxes),
            "sqrt_width": torch.full((n, cells, boxes), math.sqrt(BW)),
            "class_prob": torch.full((n, cells, classes), 1.0 / classes)}


def beats(pos: list[list[float]], cls: list[list[int]]) -> dict:
    m = max(len(p) for p in pos)
    return {"beat_pos": torch.tensor([p + [0.0] * (m - len(p)) for p in pos]),
            "beat_cls": torch.tensor([c + [-1] * (m - len(c)) for c in cls])}


def perfect(batch: dict, cells: int, shift: float = 0.0) -> dict:
    """Outputs whose predictor 0 of each beat's cell sits on the beat (offset moved by ``shift``
    cells), predictor 1 half a cell away, classes one-hot; confidences 0."""
    out = blank(len(batch["beat_pos"]), cells)
    for b, (row, labels) in enumerate(zip(batch["beat_pos"].tolist(), batch["beat_cls"].tolist())):
        for p, c in zip(row, labels):
            if c < 0:
                continue
            cell, frac = int(p * cells), p * cells - int(p * cells)
            out["offset"][b, cell, 0] = frac + shift
            out["offset"][b, cell, 1] = (frac + 0.5) % 1
            out["class_prob"][b, cell] = torch.nn.functional.one_hot(torch.tensor(c), 2).float()
    return out


# ---------------------------------------------------------------------- model
@pytest.mark.parametrize("head", ["fc", "conv"])
def test_output_shapes_and_ranges_for_an_odd_window(head):
    model = tiny(seq_len=997, num_classes=5, num_cells=32, boxes_per_cell=3, head=head).eval()
    out = model(torch.randn(3, 997, 2))
    for key in ("conf", "offset", "sqrt_width"):
        assert out[key].shape == (3, 32, 3)
        assert ((out[key] > 0) & (out[key] < 1)).all()
    assert out["class_prob"].shape == (3, 32, 5)
    assert torch.allclose(out["class_prob"].sum(-1), torch.ones(3, 32))
    # the widths start at the beats' width
    assert torch.allclose(out["sqrt_width"].mean(), torch.tensor(math.sqrt(BW)), atol=0.05)
    found = model.detections(out)
    for key in ("score", "label", "centre", "width"):
        assert found[key].shape == (3, 96)
    assert found["label"].dtype == torch.int64


def test_detections_decode_and_suppress_a_duplicate():
    model = tiny(num_cells=4, num_classes=2)
    out = blank(1, 4)
    out["conf"][0, 1] = torch.tensor([0.9, 0.6])
    out["offset"][0, 1] = torch.tensor([0.25, 0.26])             # two near-identical intervals
    out["sqrt_width"][0, 1] = torch.tensor([0.2, 0.2])
    out["class_prob"][0, 1] = torch.tensor([0.2, 0.8])
    out["conf"][0, 3, 0], out["offset"][0, 3, 0], out["sqrt_width"][0, 3, 0] = 0.5, 0.5, 0.3
    out["class_prob"][0, 3] = torch.tensor([0.7, 0.3])
    found = model.detections(out)
    cell = torch.arange(4.0).repeat_interleave(2)
    assert torch.allclose(found["centre"][0], (cell + out["offset"][0].reshape(-1)) / 4)
    assert torch.allclose(found["width"][0], out["sqrt_width"][0].reshape(-1) ** 2)
    assert found["centre"][0, 2].item() == pytest.approx(1.25 / 4)
    assert found["width"][0, 6].item() == pytest.approx(0.09)
    assert found["score"][0, 2].item() == pytest.approx(0.72)       # 0.9 x 0.8
    assert found["label"][0, 2].item() == 1
    assert found["score"][0, 3].item() == 0.0                      # the duplicate, suppressed
    assert found["score"][0, 6].item() == pytest.approx(0.35) and found["label"][0, 6].item() == 0
    assert (found["score"][0, [0, 1, 4, 5, 7]] == 0).all()         # zero confidence


# ---------------------------------------------------------------------- targets
def test_a_beat_goes_to_the_cell_of_its_centre_with_its_offset():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=16)
    batch = beats([[0.37, 0.9], []], [[1, 0], []])
    t = loss.targets(blank(2, 16), batch)
    assert t["responsible"].sum() == 2 and not t["responsible"][1].any()
    for p, c in ((0.37, 1), (0.9, 0)):
        cell = math.floor(p * 16)                                  # 5 and 14
        assert t["responsible"][0, cell].any()
        j = t["responsible"][0, cell].nonzero().item()
        assert t["offset"][0, cell, j].item() == pytest.approx(p * 16 - cell, abs=1e-5)
        assert t["sqrt_width"][0, cell, j].item() == pytest.approx(math.sqrt(BW))
        assert t["class"][0, cell].tolist() == [float(c == 0), float(c == 1)]
    assert t["has_beat"].sum() == 2 and t["dropped"] == 0


def test_the_responsible_predictor_is_the_one_of_highest_iou():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=8)
    batch = beats([[0.3]], [[0]])                                   # cell 2, offset 0.4
    out = blank(1, 8)
    out["offset"][0, 2] = torch.tensor([0.9, 0.45])                # predictor 1 is nearer
    out["sqrt_width"][0, 2] = torch.tensor([math.sqrt(BW), math.sqrt(2 * BW)])
    t = loss.targets(out, batch)
    assert t["responsible"][0, 2].tolist() == [False, True]
    expected = interval_iou(torch.tensor([(2 + 0.45) / 8, 2 * BW]), torch.tensor([0.3, BW]))
    assert t["iou"][0, 2, 1].item() == pytest.approx(expected.item(), abs=1e-6)
    assert 0 < expected < 1


def test_beats_sharing_a_cell_take_distinct_predictors_and_extra_ones_are_dropped():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=4)
    out = blank(1, 4)
    out["offset"][0, 1] = torch.tensor([0.1, 0.9])                  # cell 1 spans [0.25, 0.5)
    # both beats overlap predictor 0 most; 0.27 overlaps it more, so 0.30 takes predictor 1
    t = loss.targets(out, beats([[0.30, 0.27]], [[0, 1]]))
    assert t["responsible"][0, 1].tolist() == [True, True] and t["dropped"] == 0
    assert t["offset"][0, 1].tolist() == pytest.approx([0.08, 0.2], abs=1e-5)
    assert t["class"][0, 1].tolist() == [0.5, 0.5]                  # v1: one class set per cell
    # three beats for two predictors: 0.285 loses predictor 0 to 0.27 and finds none free
    t = loss.targets(out, beats([[0.285, 0.27, 0.48]], [[0, 0, 1]]))
    assert t["responsible"][0, 1].all() and t["dropped"] == 1
    assert t["offset"][0, 1].tolist() == pytest.approx([0.08, 0.92], abs=1e-5)
    assert t["class"][0, 1].tolist() == pytest.approx([2 / 3, 1 / 3])


# ---------------------------------------------------------------------- loss terms
def test_predicting_the_targets_gives_zero_loss():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=8)
    batch = beats([[0.1, 0.55, 0.8], [0.3]], [[0, 1, 0], [1]])
    out = perfect(batch, 8)
    t = loss.targets(out, batch)
    out["conf"] = t["responsible"].float()                          # IoU 1 where responsible
    parts = loss(out, batch)
    for key in ("loss", "coord", "obj", "noobj", "cls"):
        assert parts[key].item() == pytest.approx(0.0, abs=1e-8)


def test_confidence_equal_to_the_iou_gives_zero_obj_loss():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=8)
    batch = beats([[0.1, 0.55], [0.3]], [[0, 1], [1]])
    out = perfect(batch, 8, shift=0.05)                             # centres 0.05 cell off
    t = loss.targets(out, batch)
    iou = (BW - 0.05 / 8) / (BW + 0.05 / 8)
    assert t["iou"][t["responsible"]].tolist() == pytest.approx([iou] * 3, abs=1e-5)
    out["conf"] = t["iou"]
    parts = loss(out, batch)
    assert parts["obj"].item() == pytest.approx(0.0, abs=1e-10)
    assert parts["coord"].item() == pytest.approx(5.0 * 3 * 0.05 ** 2 / 2, rel=1e-4)
    assert parts["cls"].item() == pytest.approx(0.0, abs=1e-10)


def test_loss_weights_scale_their_terms():
    batch = beats([[0.1, 0.55], [0.3]], [[0, 1], [1]])
    out = perfect(batch, 8, shift=0.05)
    out["conf"] = torch.full_like(out["conf"], 0.3)
    base = YOLOLoss(num_classes=2, box_width=BW, num_cells=8)(out, batch)
    t = YOLOLoss(num_classes=2, box_width=BW, num_cells=8).targets(out, batch)
    others = (~t["responsible"]).sum().item()
    assert base["noobj"].item() == pytest.approx(0.5 * others * 0.09 / 2, rel=1e-5)
    heavier = YOLOLoss(num_classes=2, box_width=BW, num_cells=8, lambda_noobj=1.0,
                       lambda_coord=10.0)(out, batch)
    assert heavier["noobj"].item() == pytest.approx(2 * base["noobj"].item(), rel=1e-6)
    assert heavier["coord"].item() == pytest.approx(2 * base["coord"].item(), rel=1e-6)
    assert heavier["obj"].item() == pytest.approx(base["obj"].item(), rel=1e-6)
    total = sum(base[k] for k in ("coord", "obj", "noobj", "cls"))
    assert base["loss"].item() == pytest.approx(total.item(), rel=1e-6)


def test_windows_without_beats_have_only_the_noobj_term():
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=8)
    out = blank(2, 8)
    out["conf"] += 0.2
    parts = loss(out, beats([[], []], [[], []]))
    assert parts["noobj"].item() == pytest.approx(0.5 * 16 * 0.04, rel=1e-5)
    assert parts["coord"] == 0 and parts["obj"] == 0 and parts["cls"] == 0


def test_gradients_reach_the_backbone():
    model = tiny().train()
    batch = beats([[0.1, 0.5], [0.7]], [[0, 1], [1]])
    parts = YOLOLoss(num_classes=2, box_width=BW, num_cells=16)(model(torch.randn(2, 256, 2)), batch)
    parts["loss"].backward()
    stem = model.backbone[0].weight.grad
    assert stem is not None and stem.abs().sum() > 0


def test_mismatched_grid_is_refused():
    out = blank(1, 8)
    with pytest.raises(ValueError, match="num_cells"):
        YOLOLoss(num_classes=2, box_width=BW, num_cells=16)(out, beats([[0.1]], [[0]]))
    with pytest.raises(ValueError, match="box_width"):
        YOLO1d(enc_in=2, seq_len=64, num_classes=2, box_width=1.5)


# ---------------------------------------------------------------------- configs
def test_configs_share_the_grid_between_model_and_loss():
    cfg = compose_cfg(["model=yolo", "data=ecg_stream", "model.num_cells=32", "model.boxes_per_cell=3"])
    assert cfg.task.name == "detect"
    loss = build(cfg.loss, num_classes=5, box_width=0.015, total_steps=10)
    assert (loss.num_cells, loss.boxes_per_cell, loss.lambda_coord, loss.lambda_noobj) == (32, 3, 5.0, 0.5)
    model = build(cfg.model, enc_in=2, seq_len=1800, num_classes=5, box_width=0.015, total_steps=10)
    assert (model.num_cells, model.boxes_per_cell) == (32, 3)
    out = model.eval()(torch.randn(1, 1800, 2))
    assert torch.isfinite(loss(out, beats([[0.2, 0.6]], [[0, 3]]))["loss"])


# ---------------------------------------------------------------------- training
def synthetic(n: int = 8, length: int = 256, seed: int = 0):
    """Windows of noise with a spike per beat (up for class 0, down for class 1) on lead 0,
    beats at least two cells of 16 apart."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 * torch.randn(n, length, 2, generator=g)
    t = torch.arange(length, dtype=torch.float32)
    pos, cls = [], []
    for i in range(n):
        centres = (torch.arange(3 + i % 3) * 0.2 + 0.05 + 0.1 * torch.rand(1, generator=g)).tolist()
        labels = torch.randint(0, 2, (len(centres),), generator=g).tolist()
        for c, k in zip(centres, labels):
            x[i, :, 0] += (3.0 if k == 0 else -3.0) * torch.exp(-0.5 * ((t - c * length) / 2.0) ** 2)
            x[i, :, 1] += 1.0 * torch.exp(-0.5 * ((t - c * length) / 2.0) ** 2)
        pos.append(centres)
        cls.append(labels)
    return x, beats(pos, cls)


def test_a_short_run_fits_a_synthetic_batch_and_finds_its_beats():
    x, batch = synthetic()
    model = tiny()
    loss = YOLOLoss(num_classes=2, box_width=BW, num_cells=16)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    with torch.no_grad():
        first = loss(model(x), batch)["loss"].item()
    for _ in range(300):
        opt.zero_grad()
        parts = loss(model(x), batch)
        parts["loss"].backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(x)
        last = loss(out, batch)["loss"].item()
        found = model.detections(out)
    assert last < 0.05 * first
    for i in range(len(x)):
        keep = found["score"][i] > 0.5
        real = batch["beat_cls"][i] >= 0
        truth, labels = batch["beat_pos"][i][real], batch["beat_cls"][i][real]
        centres = found["centre"][i][keep]
        assert len(centres) == len(truth)
        a, b = centres.argsort(), truth.argsort()
        assert ((centres[a] - truth[b]).abs() < 1 / 16).all()       # within one cell
        assert torch.equal(found["label"][i][keep][a], labels[b])
