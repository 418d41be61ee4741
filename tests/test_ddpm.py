"""DDPM (models/ddpm.py): the forward process and its schedule, the 1-D U-Net, the training
outputs and L_simple, the two samplers (checked against an exact denoiser), conditional
imputation and classifier-free guidance."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from layers.unet1d import UNet1D, timestep_embedding
from models.ddpm import DDPM
from utils.losses.ddpm import DenoisingMSE

T_STEPS, LEN, C = 50, 20, 3


def tiny(**overrides) -> DDPM:
    # no averaged copy unless a test asks: tests swap model.net for an exact denoiser
    kwargs = dict(enc_in=C, seq_len=LEN, timesteps=T_STEPS, base_channels=8, channel_mults=(1, 2),
                  num_res_blocks=1, dropout=0.0, ema_decay=None)
    return DDPM(**{**kwargs, **overrides})


def randomise_zero_layers(module: nn.Module) -> None:
    """The zero-initialised last layers make a fresh network output 0; give them weights so
    that what a test checks does not hold trivially."""
    torch.manual_seed(0)
    for p in module.parameters():
        if torch.count_nonzero(p) == 0:
            nn.init.normal_(p, std=0.1)


def random_mask(shape, seed: int = 12345) -> torch.Tensor:
    # a seed no sampler here uses: the mask drawn from the sampler's own stream would be
    # correlated with x_T and bias what the hidden entries become
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < 0.5
    mask[:, 0] = True                   # some of each kind in every window
    mask[:, 1] = False
    return mask


# ---------------------------------------------------------------------- schedule, q(x_t | x_0)
def test_betas_are_the_linear_schedule():
    model = tiny(beta_start=1e-4, beta_end=0.02)
    assert model.betas.shape == (T_STEPS,)
    assert torch.allclose(model.betas, torch.linspace(1e-4, 0.02, T_STEPS), atol=1e-7)
    assert model.betas.dtype == torch.float32


def test_quadratic_schedule_spaces_sqrt_beta_evenly_as_csdi():
    model = tiny(beta_start=1e-4, beta_end=0.5, schedule="quadratic")
    roots = model.betas.double().sqrt()
    assert roots[0].item() == pytest.approx(0.01, rel=1e-5) and roots[-1].item() == pytest.approx(0.5 ** 0.5, rel=1e-5)
    steps = roots.diff()
    assert torch.allclose(steps, steps[0].expand_as(steps), rtol=1e-4)
    with pytest.raises(ValueError, match="model.schedule='cosine'"):
        tiny(schedule="cosine")


def test_closed_form_coefficients_are_the_products_over_the_chain():
    model = tiny()
    betas = model.betas.double()
    for t in (0, 1, 17, T_STEPS - 1):
        alphas = 1 - betas[: t + 1]
        product = torch.prod(alphas.sqrt()).item()
        assert model.sqrt_alphas_cumprod[t].item() == pytest.approx(product, rel=1e-6)
        assert model.sqrt_one_minus_alphas_cumprod[t].item() ** 2 == pytest.approx(
            1 - torch.prod(alphas).item(), rel=1e-5)


def test_q_sample_matches_iterating_the_forward_chain_in_distribution():
    model = tiny(timesteps=30)
    g = torch.Generator().manual_seed(0)
    n, t = 40_000, 12
    x0 = torch.tensor([[1.5, -2.0, 0.3]]).expand(n, 3)
    x = x0.clone()
    for s in range(t + 1):              # q(x_s | x_{s-1}) = N(sqrt(1 - beta_s) x_{s-1}, beta_s I)
        beta = model.betas[s]
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g)
    closed = model.q_sample(x0, torch.full((n,), t), torch.randn(x0.shape, generator=g))
    abar = torch.prod(1 - model.betas[: t + 1].double()).float()
    for samples in (x, closed):
        assert torch.allclose(samples.mean(0), abar.sqrt() * x0[0], atol=0.03)
        assert torch.allclose(samples.var(0), (1 - abar).expand(3), atol=0.03)


# ---------------------------------------------------------------------- U-Net
@pytest.mark.parametrize("length", [21, 37])
def test_unet_keeps_any_length(length):
    net = UNet1D(3, 2, base_channels=8, channel_mults=(1, 2, 2), num_res_blocks=1)
    out = net(torch.randn(2, 3, length), torch.tensor([0, 7]))
    assert out.shape == (2, 2, length)


def test_unet_gradients_reach_every_parameter():
    net = UNet1D(3, 3, base_channels=8, channel_mults=(1, 2), num_res_blocks=1, attention_heads=2,
                 num_classes=2)
    randomise_zero_layers(net)
    out = net(torch.randn(2, 3, 21), torch.tensor([3, 40]), torch.tensor([0, 2]))
    out.square().sum().backward()
    without = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without


def test_timestep_embedding_is_the_sinusoid():
    dim, half = 8, 4
    t = torch.tensor([0, 1, 17, 999])
    emb = timestep_embedding(t, dim)
    for row, step in enumerate(t.tolist()):
        for i in range(half):
            freq = 10000 ** (-i / (half - 1))
            assert emb[row, i].item() == pytest.approx(math.sin(step * freq), abs=1e-4)
            assert emb[row, half + i].item() == pytest.approx(math.cos(step * freq), abs=1e-4)


# ---------------------------------------------------------------------- training outputs, L_simple
def test_imputation_training_scores_hidden_entries_only():
    torch.manual_seed(0)
    model = tiny()
    x = torch.randn(4, LEN, C)
    observed = random_mask(x.shape)
    out = model(x, observed=observed)
    assert set(out) == {"eps_pred", "eps", "weight"}
    assert all(v.shape == x.shape for v in out.values())
    assert torch.equal(out["weight"], (~observed).float())
    assert torch.all(out["eps"][observed] == 0) and torch.all(out["eps"][~observed] != 0)

    loss = DenoisingMSE()
    expected = ((out["eps_pred"] - out["eps"]) ** 2)[~observed].mean()
    assert loss(out).item() == pytest.approx(expected.item(), rel=1e-5)
    changed = dict(out, eps_pred=torch.where(observed, torch.full_like(x, 100.0), out["eps_pred"]))
    assert loss(changed).item() == pytest.approx(loss(out).item(), rel=1e-6)


def test_generation_training_scores_every_entry_and_zero_weight_is_safe():
    torch.manual_seed(0)
    model = tiny(conditional_imputation=False)
    out = model(torch.randn(4, LEN, C))
    assert torch.equal(out["weight"], torch.ones(4, LEN, C))
    assert torch.all(out["eps"] != 0)
    assert DenoisingMSE()(dict(out, weight=torch.zeros(4, LEN, C))).item() == 0.0


def test_the_denoiser_sees_observed_values_and_noisy_hidden_ones():
    model = tiny()
    seen = {}

    def spy(inp, t, y=None):
        seen["inp"] = inp
        return torch.zeros_like(inp[:, :C])
    model.net.forward = spy
    x = torch.randn(2, LEN, C)
    observed = random_mask(x.shape)
    model(x, observed=observed)
    x_t, values, mask = seen["inp"].transpose(1, 2).split(C, dim=-1)
    assert torch.equal(mask, observed.float())
    assert torch.equal(values, torch.where(observed, x, torch.zeros_like(x)))
    assert torch.all(x_t[observed] == 0) and torch.all(x_t[~observed] != x[~observed])


def test_a_tiny_model_learns_to_denoise_sine_waves():
    torch.manual_seed(0)
    model = DDPM(enc_in=1, seq_len=16, timesteps=50, base_channels=8, channel_mults=(1, 2),
                 num_res_blocks=1, dropout=0.0, conditional_imputation=False)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    grid = torch.arange(16) / 16 * 2 * math.pi
    loss_fn, losses = DenoisingMSE(), []
    for _ in range(200):
        phase = torch.rand(16, 1) * 2 * math.pi
        x = torch.sin(grid + phase).unsqueeze(-1)
        loss = loss_fn(model(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.5 * first, (first, last)


# ---------------------------------------------------------------------- samplers against exact denoisers
# A schedule that ends in noise (abar_T ~ 5e-5), so that x_T ~ N(0, I) is the right start.
EXACT = dict(timesteps=200, beta_end=0.1)


class GaussianDenoiser(nn.Module):
    """The exact eps for entries i.i.d. N(mu, s^2): E[eps | x_t] = b (x_t - a mu) / (a^2 s^2 + b^2),
    a = sqrt(abar_t), b = sqrt(1 - abar_t). Reads x_t, the first C channels of its input."""

    def __init__(self, model: DDPM, mu: float, s: float):
        super().__init__()
        self.channels, self.mu, self.s = model.enc_in, mu, s
        self.a, self.b = model.sqrt_alphas_cumprod, model.sqrt_one_minus_alphas_cumprod

    def forward(self, inp, t, y=None):
        a, b = self.a[t][:, None, None], self.b[t][:, None, None]
        return b * (inp[:, : self.channels] - a * self.mu) / (a * a * self.s ** 2 + b * b)


class ObservedLevelDenoiser(GaussianDenoiser):
    """The exact eps of a conditional imputation model when every entry of a window equals the
    same level: the hidden entries then equal the mean of the observed values (given to the
    network in channels C..2C, with the mask in 2C..3C)."""

    def forward(self, inp, t, y=None):
        a, b = self.a[t][:, None, None], self.b[t][:, None, None]
        x_t, values, mask = inp.split(self.channels, dim=1)
        level = values.sum(dim=(1, 2), keepdim=True) / mask.sum(dim=(1, 2), keepdim=True)
        return (x_t - a * level) / b


class LevelDenoiser(GaussianDenoiser):
    """The exact eps of an unconditional model of windows whose entries all equal one level
    ~ N(0, 1): covariance 11^T (n entries), E[eps | x_t] = (x_t - proj) / b with
    proj = 1 a^2 sum(x_t) / (b^2 + n a^2)."""

    def forward(self, inp, t, y=None):
        a, b = self.a[t][:, None, None], self.b[t][:, None, None]
        n = inp[0].numel()
        proj = inp.sum(dim=(1, 2), keepdim=True) * a * a / (b * b + n * a * a)
        return (inp - proj) / b


@pytest.mark.parametrize("sample_steps, sigma, std_tolerance", [
    (None, "beta", 0.03), (None, "posterior", 0.06), (200, "beta", 0.03), (50, "beta", 0.08)])
@pytest.mark.parametrize("conditional", [True, False])
def test_samplers_draw_the_data_distribution_with_the_exact_denoiser(sample_steps, sigma, std_tolerance,
                                                                      conditional):
    model = tiny(**EXACT, sample_steps=sample_steps, sigma=sigma, conditional_imputation=conditional)
    model.net = GaussianDenoiser(model, mu=0.7, s=0.5)
    g = torch.Generator().manual_seed(0)
    if conditional:                      # the hidden entries of imputed windows
        x = torch.randn(300, LEN, C)
        observed = random_mask(x.shape)
        draws = model.impute(x, observed, generator=g)[~observed]
    else:
        draws = model.sample(300, generator=g)
    assert draws.mean().item() == pytest.approx(0.7, abs=0.02)
    assert draws.std().item() == pytest.approx(0.5, rel=std_tolerance)


def test_posterior_variance_samples_are_less_spread_than_beta_ones():
    stds = {}
    for sigma in ("beta", "posterior"):
        model = tiny(**EXACT, sigma=sigma, conditional_imputation=False)
        model.net = GaussianDenoiser(model, mu=0.0, s=0.5)
        stds[sigma] = model.sample(100, generator=torch.Generator().manual_seed(0)).std().item()
    assert stds["posterior"] < stds["beta"]


def test_reverse_step_noise_is_the_chosen_sigma():
    beta, posterior = tiny(sigma="beta"), tiny(sigma="posterior")
    assert torch.allclose(beta.sigmas ** 2, beta.betas)
    abar = torch.cumprod(1 - posterior.betas.double(), 0)
    abar_prev = torch.cat([torch.ones(1, dtype=torch.float64), abar[:-1]])
    expected = posterior.betas.double() * (1 - abar_prev) / (1 - abar)
    assert torch.allclose(posterior.sigmas.double() ** 2, expected, rtol=1e-5, atol=1e-12)
    assert posterior.sigmas[0] == 0


@pytest.mark.parametrize("sample_steps", [None, 7])
def test_conditional_imputation_gives_the_denoiser_the_observed_values(sample_steps):
    model = tiny(**EXACT, sample_steps=sample_steps)
    model.net = ObservedLevelDenoiser(model, mu=0.0, s=1.0)
    levels = torch.randn(4, 1, 1)
    x = levels.expand(4, LEN, C).contiguous()
    observed = random_mask(x.shape)
    out = model.impute(x, observed, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x, atol=1e-4)


@pytest.mark.parametrize("sample_steps, tolerance", [(None, 0.05), (20, 0.3)])
def test_unconditional_imputation_follows_the_observed_entries(sample_steps, tolerance):
    model = tiny(**EXACT, sample_steps=sample_steps, conditional_imputation=False)
    model.net = LevelDenoiser(model, mu=0.0, s=1.0)
    levels = torch.tensor([-1.8, -0.6, 0.5, 1.4]).reshape(4, 1, 1)
    x = levels.expand(4, LEN, C).contiguous()
    observed = random_mask(x.shape)
    out = model.impute(x, observed, generator=torch.Generator().manual_seed(0))
    assert (out - x).abs().max().item() < tolerance
    # without the observed entries the same model draws levels of its own
    free = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert (free - x).abs().max().item() > 3 * tolerance


def test_ddim_timesteps_are_evenly_spaced_from_the_last_to_the_first():
    assert tiny(sample_steps=5).sampling_timesteps().tolist() == [0, 12, 24, 37, 49]
    assert tiny(sample_steps=1).sampling_timesteps().tolist() == [T_STEPS - 1]
    assert tiny(sample_steps=T_STEPS).sampling_timesteps().tolist() == list(range(T_STEPS))
    assert tiny().sampling_timesteps().tolist() == list(range(T_STEPS))


# ---------------------------------------------------------------------- impute
@pytest.mark.parametrize("sample_steps", [None, 5])
@pytest.mark.parametrize("conditional", [True, False])
def test_impute_keeps_observed_values_and_never_reads_hidden_ones(sample_steps, conditional):
    model = tiny(sample_steps=sample_steps, conditional_imputation=conditional)
    randomise_zero_layers(model)
    x = torch.randn(2, LEN, C)
    observed = random_mask(x.shape)
    out = model.impute(x, observed, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape and torch.isfinite(out).all()
    marks = torch.randn(2, LEN, 4)                       # calendar features: accepted, not used
    assert torch.equal(model.impute(x, observed, torch.Generator().manual_seed(3), x_mark=marks), out)
    assert torch.equal(out[observed], x[observed])
    assert not torch.equal(out[~observed], x[~observed])

    for hidden_value in (float("nan"), 1e6):
        other = torch.where(observed, x, torch.full_like(x, hidden_value))
        again = model.impute(other, observed, generator=torch.Generator().manual_seed(3))
        assert torch.equal(again, out)
    different_seed = model.impute(x, observed, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(different_seed, out)


def test_impute_averages_n_samples_draws_and_restores_the_mode():
    model = tiny(sample_steps=4)
    randomise_zero_layers(model)
    model.train()
    x = torch.randn(2, LEN, C)
    observed = random_mask(x.shape)
    g = torch.Generator().manual_seed(5)
    first, second = model.impute(x, observed, generator=g), model.impute(x, observed, generator=g)
    mean = model.impute(x, observed, generator=torch.Generator().manual_seed(5), n_samples=2)
    assert torch.allclose(mean, (first + second) / 2, atol=1e-6)
    assert model.training


# ---------------------------------------------------------------------- generation, guidance
def test_sample_shape_and_reproducibility():
    model = tiny(conditional_imputation=False, sample_steps=5)
    randomise_zero_layers(model)
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert a.shape == (4, LEN, C) and torch.isfinite(a).all() and torch.equal(a, b)
    assert model.sample(2).shape == (2, LEN, C)          # ancestral path, global RNG


def test_classifier_free_guidance_combines_conditional_and_null_predictions():
    w = 1.5
    model = tiny(num_classes=2, guidance_scale=w, conditional_imputation=False).eval()
    randomise_zero_layers(model)
    x_t, t, y = torch.randn(3, LEN, C), torch.tensor([4, 20, 49]), torch.tensor([0, 1, 1])
    net_in = x_t.transpose(1, 2)
    eps_c = model.net(net_in, t, y).transpose(1, 2)
    eps_null = model.net(net_in, t, torch.full_like(y, 2)).transpose(1, 2)
    assert not torch.allclose(eps_c, eps_null)          # the label matters, so the check below can fail
    guided = model.predict_noise(x_t, t, y)
    assert torch.allclose(guided, (1 + w) * eps_c - w * eps_null, atol=1e-5)
    assert torch.allclose(model.predict_noise(x_t, t), eps_null, atol=1e-6)   # no label: the null one


def test_sampling_with_labels_asks_for_both_predictions():
    model = tiny(num_classes=2, guidance_scale=2.0, conditional_imputation=False, sample_steps=3)
    labels_seen = []
    real = model.net.forward

    def spy(inp, t, y=None):
        labels_seen.append(y.clone())
        return real(inp, t, y)
    model.net.forward = spy
    out = model.sample(2, y=torch.tensor([0, 1]), generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, LEN, C) and len(labels_seen) == 3
    assert all(seen.tolist() == [0, 1, 2, 2] for seen in labels_seen)


def test_training_replaces_labels_by_the_null_label_with_cond_drop_prob():
    for prob, expected in ((0.0, [0, 1, 1, 0]), (1.0, [2, 2, 2, 2])):
        model = tiny(num_classes=2, cond_drop_prob=prob, conditional_imputation=False).train()
        seen = {}

        def spy(inp, t, y=None):
            seen["y"] = y
            return torch.zeros_like(inp)
        model.net.forward = spy
        model(torch.randn(4, LEN, C), y=torch.tensor([0, 1, 1, 0]))
        assert seen["y"].tolist() == expected


# ---------------------------------------------------------------------- config, errors
def test_the_config_builds_the_model_with_the_data_sizes_it_takes():
    from omegaconf import OmegaConf

    from tests.helpers import REPO
    from utils.instantiate import build
    node = OmegaConf.load(REPO / "conf" / "model" / "ddpm.yaml").model
    node.base_channels, node.timesteps = 8, 50          # small: the sizes are not what is checked
    model = build(node, enc_in=7, seq_len=96, dec_in=7, c_out=7, total_steps=100)
    assert isinstance(model, DDPM) and (model.enc_in, model.seq_len) == (7, 96)
    assert model.net.conv_in.in_channels == 21           # x_t, observed values, mask
    loss = build(OmegaConf.load(REPO / "conf" / "loss" / "ddpm.yaml"))
    assert isinstance(loss, DenoisingMSE)
    node.sampel_steps = 5                                # a misspelt option is not silently dropped
    with pytest.raises(Exception, match="sampel_steps"):
        build(node, enc_in=7, seq_len=96)



# ---------------------------------------------------------------------- averaged weights


def test_the_average_follows_the_warmed_up_decay_and_is_not_trained():
    model = tiny(ema_decay=0.9)
    assert all(not p.requires_grad for p in model.ema_net.parameters())
    assert any(k.startswith("ema_net.") for k in model.state_dict())        # checkpointed
    start = [p.detach().clone() for p in model.ema_net.parameters()]
    for step, decay in ((1, 2 / 11), (100, 0.9)):                          # min(0.9, (1+k)/(10+k))
        with torch.no_grad():
            for p in model.net.parameters():
                p.add_(torch.randn_like(p))
        before = [p.detach().clone() for p in model.ema_net.parameters()]
        model.after_optimizer_step(step)
        for avg, old, p in zip(model.ema_net.parameters(), before, model.net.parameters()):
            assert torch.allclose(avg, decay * old + (1 - decay) * p, atol=1e-6)
    assert not torch.allclose(start[0], next(model.ema_net.parameters()))


def test_eval_mode_predicts_the_noise_with_the_averaged_weights():
    model = tiny(ema_decay=0.99)
    randomise_zero_layers(model.net)
    model.ema_net.load_state_dict(model.net.state_dict())
    with torch.no_grad():
        for p in model.net.parameters():
            p.add_(0.1 * torch.randn_like(p))             # the average lags the trained weights
    x_t, t = torch.randn(4, LEN, C), torch.full((4,), 7)
    net_in = torch.cat([x_t, torch.zeros_like(x_t), torch.zeros_like(x_t)], dim=-1).transpose(1, 2)
    with torch.no_grad():
        model.eval()
        assert torch.allclose(model.predict_noise(x_t, t), model.ema_net(net_in, t).transpose(1, 2))
        assert not torch.allclose(model.predict_noise(x_t, t), model.net(net_in, t).transpose(1, 2))
        model.train()
        assert torch.allclose(model.predict_noise(x_t, t), model.net(net_in, t).transpose(1, 2))
    assert tiny().ema_net is None


def test_bad_options_are_refused_with_their_valid_values():
    with pytest.raises(ValueError, match=r"sigma='sd'.*beta, posterior"):
        tiny(sigma="sd")
    with pytest.raises(ValueError, match=rf"sample_steps={T_STEPS + 1}.*1 to model.timesteps={T_STEPS}"):
        tiny(sample_steps=T_STEPS + 1)
    with pytest.raises(ValueError, match=r"ema_decay=1.0"):
        tiny(ema_decay=1.0)
    with pytest.raises(ValueError, match=r"\[batch, time, 3\]"):
        tiny()(torch.randn(2, LEN, C + 1))
