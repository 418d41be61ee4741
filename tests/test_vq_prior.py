"""VQ tokenizer + autoregressive prior (models/vq_prior.py): the two quantisers
(layers/vector_quantizer.py: the EMA codebook against its formula, FSQ's grid and indices, the
straight-through gradients), the prior's causal mask, sampling and continuation, the freeze of
the tokenizer at model.tokenizer_epochs, refused options, and one tiny run on UCR ECG200 through
main.py's run()."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from layers.vector_quantizer import EMAVectorQuantizer, FiniteScalarQuantizer
from models.vq_prior import VQPrior
from tests.helpers import REPO, compose_cfg, read_metrics, require_ucr, run_experiment, run_paths
from utils.instantiate import build
from utils.losses.vq_prior import VQPriorLoss

LEN, C = 30, 2          # 30 steps pad to 32: 8 codes per window with downsample=2


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Tiny models run fastest on one thread on a shared machine."""


def tiny(**overrides) -> VQPrior:
    kwargs = dict(enc_in=C, seq_len=LEN, num_classes=3, num_codes=16, code_dim=8, hidden_channels=8,
                  downsample=2, res_blocks=1, d_model=16, depth=2, num_heads=2, d_ff=32, dropout=0.0,
                  tokenizer_epochs=2)
    torch.manual_seed(0)
    return VQPrior(**{**kwargs, **overrides})


def series(n: int = 6, length: int = LEN, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, length)
    phase = 6.28 * torch.rand(n, 1, C, generator=g)
    return torch.sin(12 * t.view(1, -1, 1) + phase) + 0.1 * torch.randn(n, length, C, generator=g)


# ---------------------------------------------------------------------- EMA vector quantiser
def test_ema_lookup_is_the_nearest_code_with_a_straight_through_gradient():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4, data_init=False).eval()
    z = torch.randn(3, 5, 4, requires_grad=True)
    out = vq(z)
    nearest = torch.cdist(z.detach().reshape(-1, 4), vq.codebook).argmin(1).view(3, 5)
    assert torch.equal(out["indices"], nearest)
    e = vq.codebook[nearest]
    assert torch.allclose(out["q"], e, atol=1e-6)                 # the forward value is the code
    q = out["q"]
    q.retain_grad()
    w = torch.randn_like(q)
    (q * w).sum().backward()
    assert torch.equal(z.grad, q.grad)                            # d loss / d z_e = d loss / d q
    # the commitment loss pulls z towards its (fixed) code: gradient 2 (z - e) / numel
    z.grad = None
    vq(z)["commitment"].backward()
    assert torch.allclose(z.grad, 2 * (z.detach() - e) / z.numel(), atol=1e-7)


def test_ema_update_is_the_counts_and_sums_formula():
    decay, eps = 0.9, 0.1             # a large eps, so that the smoothing shows
    vq = EMAVectorQuantizer(num_codes=4, code_dim=2, decay=decay, eps=eps, data_init=False).train()
    codes = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [5.0, 5.0]])   # the last one unused
    N0, m0 = torch.tensor([2.0, 1.0, 0.5, 3.0]), torch.tensor([[0.1, 0.0], [1.0, 0.2], [0.0, 0.4], [15.0, 15.0]])
    vq.codebook.copy_(codes)
    vq.cluster_size.copy_(N0)
    vq.code_sum.copy_(m0)
    z = torch.tensor([[0.1, 0.0], [0.9, 0.1], [1.2, -0.1], [0.0, 0.8], [-0.2, 0.1]])
    out = vq(z)
    assert out["indices"].tolist() == [0, 1, 1, 2, 0]
    # the paper's Appendix A.1, written out per code
    n = [2.0, 2.0, 1.0, 0.0]
    s = [z[0] + z[4], z[1] + z[2], z[3], torch.zeros(2)]
    N = [decay * N0[i].item() + (1 - decay) * n[i] for i in range(4)]
    total = sum(N)
    expected = torch.stack([(decay * m0[i] + (1 - decay) * s[i]) / ((N[i] + eps) / (total + 4 * eps) * total)
                            for i in range(4)])
    assert torch.allclose(vq.cluster_size, torch.tensor(N), atol=1e-6)
    assert torch.allclose(vq.codebook, expected, atol=1e-5)
    unsmoothed = decay * m0[3] / N[3]                            # an unused code keeps its vector,
    assert torch.allclose(vq.codebook[3], codes[3], rtol=0.1)    # but for the smoothing
    assert not torch.allclose(vq.codebook[3], unsmoothed, rtol=1e-3)
    assert out["usage"].item() == pytest.approx(3 / 4)
    p = torch.tensor([2, 2, 1]) / 5.0
    assert out["perplexity"].item() == pytest.approx(torch.exp(-(p * p.log()).sum()).item(), rel=1e-5)


def test_ema_codebook_stays_put_in_eval_mode_and_when_frozen():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4, data_init=True)
    before = copy.deepcopy(vq.state_dict())
    z = torch.randn(40, 4)
    vq.eval()(z)
    vq.train()
    vq.frozen = True
    vq(z)
    for k, v in vq.state_dict().items():
        assert torch.equal(v, before[k]), k                      # neither update nor data init
    vq.frozen = False
    vq(z)                                                        # training: data init + update
    assert bool(vq.initialised) and not torch.equal(vq.codebook, before["codebook"])


def test_ema_codes_no_batch_uses_keep_their_vectors():
    vq = EMAVectorQuantizer(num_codes=6, code_dim=3, data_init=False).train()
    before = vq.codebook.clone()
    z = before[0] + 0.01 * torch.randn(30, 3)                    # every vector nearest to code 0
    for _ in range(20):
        assert (vq(z)["indices"] == 0).all()
    assert torch.allclose(vq.codebook[1:], before[1:], rtol=1e-3, atol=1e-4)
    assert torch.allclose(vq.codebook[0], z.mean(0), atol=0.02)


def test_ema_data_init_takes_codes_from_the_first_training_batch():
    vq = EMAVectorQuantizer(num_codes=8, code_dim=4, decay=0.99).train()
    z = torch.randn(50, 4)
    vq._init_from(z)
    assert all((z == code).all(1).any() for code in vq.codebook)  # every code is one of the vectors
    assert len(torch.unique(vq.codebook, dim=0)) == 8


# ---------------------------------------------------------------------- finite scalar quantiser
def test_fsq_values_land_on_the_grid_with_every_level_used():
    levels = [8, 5, 3, 4]
    fsq = FiniteScalarQuantizer(levels, code_dim=6)
    codes = fsq.quantize(3 * torch.randn(20000, 4))
    half = torch.tensor(levels) // 2
    steps = codes * half
    assert torch.equal(steps, steps.round())                     # integers after scaling
    for j, L in enumerate(levels):
        values = torch.unique(steps[:, j]).tolist()
        assert values == list(range(-(L // 2), L - L // 2))      # exactly L levels, even ones offset
    assert codes.abs().max() <= 1
    assert torch.allclose(fsq.bound(torch.zeros(4)), torch.zeros(4), atol=1e-6)   # 0 maps to 0


def test_fsq_index_and_code_round_trip():
    fsq = FiniteScalarQuantizer([8, 5, 5, 5], code_dim=6)
    assert fsq.num_codes == 1000
    idx = torch.arange(1000)
    codes = fsq.indices_to_codes(idx)
    assert torch.equal(fsq.codes_to_indices(codes), idx)
    assert len(torch.unique(codes, dim=0)) == 1000               # one grid point per index
    some = fsq.quantize(2 * torch.randn(300, 4))
    assert torch.allclose(fsq.indices_to_codes(fsq.codes_to_indices(some)), some)
    z = torch.randn(2, 7, 6)
    out = fsq(z)
    assert out["indices"].shape == (2, 7) and out["commitment"].item() == 0.0
    assert torch.allclose(out["q"], fsq.lookup(out["indices"]), atol=1e-6)   # q = code of its index


def test_fsq_gradient_passes_through_the_rounding():
    fsq = FiniteScalarQuantizer([8, 5, 5, 5], code_dim=6)
    h = torch.randn(10, 4, requires_grad=True)
    w = torch.randn(10, 4)
    (fsq.quantize(h) * w).sum().backward()
    through_rounding = h.grad.clone()
    h.grad = None
    (fsq.bound(h) / (torch.tensor([8, 5, 5, 5]) // 2) * w).sum().backward()   # rounding removed
    assert torch.allclose(through_rounding, h.grad) and through_rounding.abs().sum() > 0
    z = torch.randn(3, 6, requires_grad=True)                    # and into the input through q
    fsq(z)["q"].sum().backward()
    assert z.grad.abs().sum() > 0


# ---------------------------------------------------------------------- the prior
def test_prior_is_causal_and_reads_the_class_token():
    model = tiny().eval()
    codes = torch.randint(0, 16, (2, model.num_positions - 1))
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        logits = model.prior_logits(codes, labels)
        assert logits.shape == (2, model.num_positions, 16)
        for j in (0, 3, codes.shape[1] - 1):
            changed = codes.clone()
            changed[:, j] = (changed[:, j] + 1) % 16
            other = model.prior_logits(changed, labels)
            assert torch.allclose(other[:, :j + 1], logits[:, :j + 1], atol=1e-6)   # before code j
            assert not torch.allclose(other[:, j + 1], logits[:, j + 1], atol=1e-4)  # after it
        other = model.prior_logits(codes, torch.tensor([1, 2]))
        assert not torch.allclose(other[0, 0], logits[0, 0]) and torch.allclose(other[1], logits[1])


def test_losses_reach_only_their_own_stage():
    model = tiny().train()
    outputs = model(series(), y=torch.tensor([0, 1, 2, 0, 1, 2]))
    parts = VQPriorLoss()(outputs)
    assert parts["loss"].item() == pytest.approx(
        (parts["recon_mse"] + 0.25 * parts["commitment"] + parts["prior_ce"]).item())
    assert set(parts) == {"loss", "recon_mse", "commitment", "prior_ce", "perplexity", "codebook_usage"}
    tokenizer = [p for m in model.tokenizer_modules() for p in m.parameters()]
    prior = [p for m in model.prior_modules() for p in m.parameters()]
    parts["prior_ce"].backward(retain_graph=True)
    assert all(p.grad is None for p in tokenizer) and any(p.grad is not None for p in prior)
    model.zero_grad(set_to_none=True)
    (parts["recon_mse"] + parts["commitment"]).backward()
    assert all(p.grad is None for p in prior) and all(p.grad is not None for p in tokenizer)


# ---------------------------------------------------------------------- sampling
def test_samples_have_the_window_shape_and_follow_the_generator_seed():
    model = tiny().train()
    y = torch.tensor([0, 1, 2, 0])
    draw = lambda seed: model.sample(4, y=y, generator=torch.Generator().manual_seed(seed))
    a = draw(1)
    assert a.shape == (4, LEN, C) and torch.isfinite(a).all() and not a.requires_grad
    assert model.training                                          # the mode is restored
    assert torch.equal(draw(1), a) and not torch.equal(draw(2), a)
    model.eval()
    assert torch.equal(draw(1), a) and not model.training
    greedy = tiny(top_k=1)
    one = greedy.sample(2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(greedy.sample(2, generator=torch.Generator().manual_seed(2)), one)   # argmax
    with pytest.raises(ValueError, match="got 3 labels for 4 windows"):
        model.sample(4, y=torch.tensor([0, 1, 2]))


def test_continuation_keeps_the_prefix_codes_and_reads_only_the_prefix():
    model = tiny(quantizer="fsq", levels=[5, 5, 5])
    x = series(4)
    model.train()(x)                                              # a batch through, then sample
    prefix_len = 13                                               # floor(13 / 4) = 3 codes kept
    masked = x.clone()
    masked[:, prefix_len:] = 0
    with torch.no_grad():
        kept = model.eval().tokenize(masked)["indices"][:, :3]
    assert len(torch.unique(kept)) > 1                            # codes that could be told apart
    out, codes = model.continue_series(x, prefix_len, y=torch.tensor([0, 1, 2, 0]),
                                       generator=torch.Generator().manual_seed(0), return_codes=True)
    assert out.shape == (4, LEN, C) and codes.shape == (4, model.num_positions)
    assert torch.equal(codes[:, :3], kept)
    with torch.no_grad():
        assert torch.allclose(out, model.decode_indices(codes))
    later = x.clone()
    later[:, prefix_len:] = 100.0                                 # what follows the prefix is not read
    again = model.continue_series(later, prefix_len, y=torch.tensor([0, 1, 2, 0]),
                                  generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, out)
    with pytest.raises(ValueError, match="prefix_len <= L <= seq_len"):
        model.continue_series(x, LEN + 1)


# ---------------------------------------------------------------------- freezing the tokenizer
def _step(model, optimizer, x, y):
    loss = VQPriorLoss()(model(x, y=y))["loss"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _snapshot(modules):
    return [t.detach().clone() for m in modules for t in (*m.parameters(), *m.buffers())]


def test_tokenizer_freezes_at_tokenizer_epochs_and_the_prior_trains_on():
    model = tiny(tokenizer_epochs=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)     # as the loop: built before any freeze
    x, y = series(), torch.tensor([0, 1, 2, 0, 1, 2])
    for epoch in (0, 1):
        model.on_train_epoch_start(epoch)
        model.train()
        tok, prior = _snapshot(model.tokenizer_modules()), _snapshot(model.prior_modules())
        _step(model, optimizer, x, y)
        assert not model.tokenizer_frozen
        assert any(not torch.equal(a, b) for a, b in zip(tok, _snapshot(model.tokenizer_modules())))
    model.on_train_epoch_start(2)
    model.train()                                                 # the loop's train() keeps the freeze
    assert model.tokenizer_frozen and not model.quantizer.training and not model.encoder.training
    tok, prior = _snapshot(model.tokenizer_modules()), _snapshot(model.prior_modules())
    _step(model, optimizer, x, y)
    assert all(torch.equal(a, b) for a, b in zip(tok, _snapshot(model.tokenizer_modules())))
    assert any(not torch.equal(a, b) for a, b in zip(prior, _snapshot(model.prior_modules())))
    assert all(p.grad is None for m in model.tokenizer_modules() for p in m.parameters())
    with torch.no_grad():                                         # eval and back: still frozen
        model.eval()
    model.train()
    assert not model.decoder.training and model.transformer.training


def test_freeze_is_restored_on_resume_and_follows_the_epoch():
    model = tiny(tokenizer_epochs=3)
    resumed = tiny(tokenizer_epochs=3)
    resumed.load_state_dict(model.state_dict())
    resumed.on_train_epoch_start(5)                               # the loop resumes at epoch 5
    resumed.train()
    assert resumed.tokenizer_frozen and resumed.quantizer.frozen and not resumed.quantizer.training
    assert not any(p.requires_grad for m in resumed.tokenizer_modules() for p in m.parameters())
    before = resumed.quantizer.codebook.clone()
    resumed(series(), y=None)
    assert torch.equal(resumed.quantizer.codebook, before)
    resumed.on_train_epoch_start(0)                               # set by the epoch, both ways
    assert not resumed.tokenizer_frozen and resumed.quantizer.training
    never = tiny(tokenizer_epochs=None)
    never.on_train_epoch_start(10_000)
    assert not never.tokenizer_frozen


# ---------------------------------------------------------------------- config, refusals
def test_the_config_builds_the_model_and_the_loss():
    cfg = compose_cfg(["model=vq_prior"])
    assert cfg.task.name == "generate" and cfg.loss._target_.endswith("VQPriorLoss")
    node = OmegaConf.load(REPO / "conf" / "model" / "vq_prior.yaml").model
    assert (node.num_codes, node.decay, list(node.levels)) == (512, 0.99, [8, 5, 5, 5])
    node.hidden_channels, node.d_model, node.d_ff = 8, 16, 32
    model = build(node, enc_in=1, seq_len=96, num_classes=2, total_steps=100)
    assert isinstance(model, VQPrior) and model.num_positions == 24 and model.num_codes == 512
    node.quantizer = "fsq"
    assert build(node, enc_in=1, seq_len=96, num_classes=2).num_codes == 1000
    loss = build(OmegaConf.load(REPO / "conf" / "loss" / "vq_prior.yaml"))
    assert isinstance(loss, VQPriorLoss) and loss.beta == 0.25
    node.codebok_size = 5                                         # a misspelt option is not dropped
    with pytest.raises(Exception, match="codebok_size"):
        build(node, enc_in=1, seq_len=96)


@pytest.mark.parametrize("options,message", [
    ({"quantizer": "rvq"}, r"model.quantizer='rvq' is not known; choose one of ema, fsq"),
    ({"downsample": 0}, r"model.downsample=0 must be at least 1"),
    ({"tokenizer_epochs": -1}, r"model.tokenizer_epochs=-1 must be >= 0"),
    ({"temperature": 0.0}, r"model.temperature=0.0 must be > 0"),
    ({"top_k": 0}, r"model.top_k=0 must be null"),
    ({"num_codes": 1}, r"model.num_codes=1 must be at least 2"),
    ({"decay": 1.0}, r"model.decay=1.0 must lie in \[0, 1\)"),
    ({"quantizer": "fsq", "levels": [8, 1]}, r"model.levels=\[8, 1\].*each at least 2"),
    ({"d_model": 15}, r"model.d_model=15 must be divisible by model.num_heads=2"),
])
def test_bad_options_are_refused_naming_the_key(options, message):
    with pytest.raises(ValueError, match=message):
        tiny(**options)


def test_bad_inputs_and_loss_weights_are_refused():
    with pytest.raises(ValueError, match=r"loss.beta=-1.*>= 0"):
        VQPriorLoss(beta=-1)
    with pytest.raises(ValueError, match=r"\[batch, time <= 30, 2\]"):
        tiny()(torch.randn(2, LEN, C + 1))


# ---------------------------------------------------------------------- end to end
TINY = ["model=vq_prior", "model.num_codes=64", "model.code_dim=16", "model.hidden_channels=16",
        "model.res_blocks=1", "model.d_model=32", "model.depth=1", "model.num_heads=2",
        "model.d_ff=64", "model.tokenizer_epochs=4"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Matrix is singular")      # Fréchet on 20 series x 16 features
def test_tiny_vq_prior_trains_generates_and_scores_ecg200(tmp_path, data_dir, cache_dir):
    require_ucr(data_dir, "ECG200")
    overrides = ["task=generate", "data=ucr", "data.name=ECG200", *run_paths(data_dir, cache_dir),
                 "logger.log_hparams=false", *TINY, "trainer.max_steps=40", "trainer.batch_size=16",
                 "optimizer.lr=2e-3", "trainer.eval_batch_size=64", "task.samples_per_class_min=0",
                 "task.samples_per_class_max=10", "task.classifier.widths=[8,16,16]",
                 "task.classifier_epochs=2", "task.plot_series=0"]
    run_experiment(overrides, tmp_path)
    m = read_metrics(tmp_path)
    test = m["test"]
    assert m["steps"] == 40 and m["epochs"] == 8                  # 80 training series, batches of 16
    assert np.isfinite(test["loss"]) and np.isfinite(m["val"]["loss"])
    assert test["generated_per_class"] == {"-1": 10, "1": 10}
    for score in ("tstr", "trtr"):
        assert 0 <= test[score]["accuracy"] <= 1
    assert 0 <= test["discriminative"]["score"] <= 0.5
    assert np.isfinite(test["frechet"]["generated_vs_test"])
    with np.load(tmp_path / "generated.npz") as f:
        assert f["x"].shape == (20, 96, 1) and np.isfinite(f["x"]).all()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path)).Reload()
    epochs = [e.value for e in ev.Scalars("train/epoch_loss")]
    assert len(epochs) == 8 and epochs[-1] < 0.8 * epochs[0]      # the training loss fell
    for part in ("recon_mse", "commitment", "prior_ce", "perplexity", "codebook_usage"):
        assert f"train/loss/{part}" in ev.Tags()["scalars"]
