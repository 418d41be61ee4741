"""The encoder contract every registered backbone keeps, the generic backbone classifier, and
TS2Vec training another encoder."""
from __future__ import annotations

import math

import pytest
import torch

from tests.helpers import finite_scores, read_metrics, require_ucr, run_experiment, run_paths

from layers.encoders import ENCODERS, build_encoder
from layers.fusion import FUSIONS
from models.backbone import BackboneClassifier
from models.ssl.ts2vec import TS2Vec, TimestampMasked


@pytest.mark.parametrize("name", sorted(ENCODERS))
@pytest.mark.parametrize("channels,length", [(1, 37), (3, 64)])
def test_every_encoder_maps_any_length_to_per_step_representations(name, channels, length):
    torch.manual_seed(0)
    enc = build_encoder(name, channels, 16)
    x = torch.randn(2, length, channels)
    h = enc(x)
    assert h.shape == (2, length, 16) and torch.isfinite(h).all()
    h.square().mean().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    # NaN (unobserved) entries are treated as missing, not propagated
    x[0, 5] = float("nan")
    assert torch.isfinite(enc(x)).all()


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_every_encoder_takes_a_step_mask(name):
    torch.manual_seed(0)
    enc = build_encoder(name, 2, 16).eval()
    x = torch.randn(3, 40, 2)
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[1, 25:] = False                                    # a shorter series, padded
    assert enc(x, mask).shape == (3, 40, 16)


def test_unknown_encoder_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown encoder 'nope'.*resnet1d"):
        build_encoder("nope", 1, 8)
    with pytest.raises(ValueError, match="check model.encoder_kwargs"):
        build_encoder("resnet1d", 1, 8, not_a_key=1)


def test_backbone_classifier_pools_observed_steps_and_appends_side_features():
    torch.manual_seed(0)
    model = BackboneClassifier(2, 4, "transformer", repr_dim=16,
                               encoder_kwargs={"n_heads": 2, "n_layers": 1, "dropout": 0.0},
                               extra_features=3).eval()
    x, features = torch.randn(2, 30, 2), torch.randn(2, 3)
    mask = torch.ones(2, 30, dtype=torch.bool)
    mask[:, 20:] = False
    logits = model(x, features, mask)
    assert logits.shape == (2, 4)
    padded = x.clone()
    padded[:, 20:] = 99.0                                   # padding values do not matter
    assert torch.allclose(model(padded, features, mask), logits, atol=1e-5)
    h = model.encoder(x, mask)
    pooled = h[:, :20].mean(dim=1)                          # mean over the observed steps
    assert torch.allclose(model.head.fc(torch.cat([pooled, features], -1)), logits, atol=1e-5)
    with pytest.raises(ValueError, match="no 'features'"):
        model(x)


def test_ts2vec_trains_another_encoder_with_its_timestamp_mask():
    torch.manual_seed(0)
    model = TS2Vec(1, output_dims=16, encoder="resnet1d", encoder_kwargs={"widths": [8, 8]},
                   average_weights=False)
    assert isinstance(model.encoder, TimestampMasked)
    out = model({"x": torch.randn(4, 50, 1)})
    assert out["z1"].shape == out["z2"].shape and out["z1"].shape[-1] == 16
    # the mask zeroes the masked input steps: everything masked = the encoder on zeros
    net = model.encoder.eval()
    x = torch.randn(2, 20, 1)
    none = torch.zeros(2, 20, dtype=torch.bool)
    assert torch.allclose(net(x, none), net.net(torch.zeros_like(x), none))
    assert torch.allclose(net(x), net.net(x, torch.ones(2, 20, dtype=torch.bool)))


def fusion_model(fusion: str, **kw) -> BackboneClassifier:
    torch.manual_seed(0)
    return BackboneClassifier(2, 3, "resnet1d", repr_dim=8, encoder_kwargs={"widths": [8, 8]},
                              extra_features=4, fusion=fusion, fusion_heads=1, **kw).eval()


def test_early_fusion_feeds_the_side_features_as_channels():
    model = fusion_model("early")
    x, side = torch.randn(2, 30, 2), torch.randn(2, 4)
    h = model.encoder(torch.cat([x, side.unsqueeze(1).expand(-1, 30, -1)], -1))
    assert torch.allclose(model(x, side), model.head.fc(h.mean(1)), atol=1e-5)


def test_late_fusion_averages_the_two_heads_probabilities():
    model = fusion_model("late")
    x, side = torch.randn(2, 30, 2), torch.randn(2, 4)
    wave = model.head.fc(model.encoder(x).mean(1)).softmax(-1)
    side_p = model.head.side_head(side).softmax(-1)
    out = model(x, side)
    assert torch.allclose(out.exp(), (wave + side_p) / 2, atol=1e-6)
    assert torch.allclose(out.log_softmax(-1), out, atol=1e-6)    # cross-entropy takes it as is


def test_cross_fusion_is_attention_from_the_steps_to_the_side_tokens():
    model = fusion_model("cross")
    x, side = torch.randn(2, 30, 2), torch.randn(2, 4)
    head, h = model.head, model.encoder(x)
    tokens = side.unsqueeze(-1) * head.side_tokens.weight + head.side_tokens.bias
    wq, wk, wv = head.attn.in_proj_weight.chunk(3)
    bq, bk, bv = head.attn.in_proj_bias.chunk(3)
    q, k, v = h @ wq.T + bq, tokens @ wk.T + bk, tokens @ wv.T + bv
    attended = torch.softmax(q @ k.transpose(1, 2) / 8 ** 0.5, -1) @ v
    fused = head.norm(h + head.attn.out_proj(attended))
    assert torch.allclose(model(x, side), head.fc(fused.mean(1)), atol=1e-5)
    assert not torch.allclose(model(x, side), model(x, side + 1))


def test_single_stream_ignores_padded_patches_and_reads_the_side_tokens():
    head = fusion_model("single_stream", fusion_patch_len=5).head
    h, side = torch.randn(2, 40, 8), torch.randn(2, 4)
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[:, 25:] = False
    padded = h.clone()
    padded[:, 25:] = 7.0
    # the padded steps' patches are left out of the attention: the same scores as the
    # representations cut to their 25 observed steps (5 patches)
    assert torch.allclose(head(padded, side, mask), head(h[:, :25], side), atol=1e-5)
    assert not torch.allclose(head(h, side), head(h, side + 1))


@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_fusion_trains_and_refuses_a_batch_without_side_features(fusion):
    model = fusion_model(fusion).train()
    out = model(torch.randn(4, 21, 2), torch.randn(4, 4))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    assert out.shape == (4, 3)
    with pytest.raises(ValueError, match="no 'features'"):
        model(torch.randn(4, 21, 2))
    with pytest.raises(ValueError, match="model.fusion=nope"):
        fusion_model("nope")


MITDB_FEW = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
             "data.ds2_records=[100]", "trainer.max_epochs=1", "trainer.batch_size=256",
             "trainer.progress=false"]


@pytest.mark.parametrize("fusion", ["cross", "single_stream"])
def test_fused_classifier_trains_on_mitdb_beats_with_rr_features(fusion, data_dir, cache_dir, tmp_path,
                                                                one_thread):
    def paths(cfg):
        cfg.paths.data_dir, cfg.paths.cache_dir = str(data_dir), str(cache_dir)
    run_experiment(["task=classification", "model=backbone", f"model.fusion={fusion}",
                    "model.repr_dim=16", "model.encoder_kwargs.widths=[16,16]"] + MITDB_FEW,
                   tmp_path, paths)
    metrics = read_metrics(tmp_path)
    assert metrics["steps"] > 0 and math.isfinite(metrics["test"]["loss"])
    assert set(metrics["test"]["per_class"]) >= {"N", "S", "V"}


# every backbone, small, as the encoder of a siamese method and of TS2Vec on real data; the
# encoder's arguments replace the method's (SimCLR's are resnet1d's, TS2Vec's empty)
SMALL_ENCODERS = {
    "mixconv": "{stem_width:8,widths:[8,12],kernel_sizes:[3,7],expand_ratio:2.0}",
    "pkinet": "{stem_width:8,widths:[16],depths:[1],kernel_sizes:[3,5,7],caa_kernel_size:5,ffn_scale:2.0}",
    "danet": "{width: 16, dilations: [1, 2], head_reduction: 2}",
    "dat": "{dim: 8, groups: 1, depth: 2, num_heads: 2, window: 8}",
    "dualvit": "{d_model:16,n_heads:2,depth:1,mlp_ratio:2.0,n_semantic:4,patch_len:4}",
    "atd": "{d_model:16,n_blocks:1,depth:2,n_heads:2,window:8,category_size:8,n_tokens:4,reduced_dim:4,mlp_ratio:1.0,patch_len:2}",
    "deformable": "{d_model:8,n_heads:2,n_levels:2,n_points:2,n_layers:1,d_ffn:16}",
    "multiway": "{d_model:8,n_heads:2,n_layers:2,d_ff:16,patch_len:4}",
    "two_stream": "{widths:[8,8],kernel_sizes:[5,3]}",
}


@pytest.mark.parametrize("name", sorted(SMALL_ENCODERS))
@pytest.mark.parametrize("method", ["simclr", "ts2vec"])
def test_backbone_is_a_self_supervised_encoder_on_ecg200(method, name, data_dir, cache_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    width = ["model.repr_dim=16", "model.proj_dim=8"] if method == "simclr" else ["model.output_dims=16"]
    run_experiment([f"model={method}", f"model.encoder={name}", "~model.encoder_kwargs",
                    f"+model.encoder_kwargs={SMALL_ENCODERS[name]}", *width, "data=ucr",
                    "data.name=ECG200", "trainer.max_steps=3", "task.protocol=knn",
                    "task.embedding_limit=0", *run_paths(data_dir, cache_dir)], tmp_path)
    metrics = read_metrics(tmp_path)
    assert metrics["steps"] == 3 and finite_scores(metrics["test"])
