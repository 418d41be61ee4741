"""DDPM (Ho, Jain & Abbeel, "Denoising Diffusion Probabilistic Models", NeurIPS 2020) for
series [B, T, C], with a conditional imputation variant in the style of CSDI (Tashiro et al.,
"CSDI: Conditional Score-based Diffusion Models for Probabilistic Time Series Imputation",
NeurIPS 2021).

The forward process adds Gaussian noise over ``timesteps`` steps with a linear schedule
beta_1..beta_T (the paper: T = 1000, beta from 1e-4 to 0.02; ``schedule="quadratic"`` spaces
sqrt(beta) evenly instead, CSDI's schedule, which it runs with T = 50 up to beta 0.5), so that
q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), abar_t = prod_{s<=t} (1 - beta_s).
A 1-D U-Net (layers/unet1d.py) predicts the noise eps from (x_t, t); training minimises the
paper's L_simple = E ||eps - eps_theta(x_t, t)||^2 (utils/losses/ddpm.py, DenoisingMSE).
Sampling runs the reverse chain x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps_theta) /
sqrt(alpha_t) + sigma_t z, with sigma_t^2 = beta_t (``sigma="beta"``) or the posterior
variance beta~_t (``sigma="posterior"``), no noise at the last step; ``sample_steps=k``
samples instead with DDIM (Song et al., ICLR 2021), deterministic (eta = 0), on k evenly
spaced timesteps. Samples are not clipped: series, unlike images, have no fixed range.

Generation. ``forward(x, y=None)`` -> {"eps_pred", "eps", "weight"} for a random t per window
(weight: ones). With ``num_classes > 0`` the label y is embedded and, in training, replaced by
a null label with probability ``cond_drop_prob``, so one network learns the conditional and
the unconditional noise (classifier-free guidance, Ho & Salimans 2021); ``sample(n, y)``
then uses eps = (1 + w) eps(x, y) - w eps(x, null) with w = ``guidance_scale``.

Imputation. ``forward(x, observed=mask)``, x the complete window and ``observed`` a bool
[B, T, C] (True: the value is given; False: hidden, to impute). With
``conditional_imputation`` (CSDI), only the hidden entries are noised and the network sees,
stacked along channels, x_t on the hidden entries, x on the observed ones and the mask (3C
input channels); "weight" is the hidden mask, so the loss counts hidden entries only.
``impute(x_observed, observed)`` runs the reverse chain on the hidden entries alone and
returns the observed entries unchanged; it never reads the input at hidden positions. With
``n_samples = k`` it returns the mean of k draws (an estimate of the conditional mean; CSDI
reports the median of 100). Without ``conditional_imputation`` the network is an
unconditional model of whole windows (trained on every entry) and ``impute`` replaces the
observed entries at every step by their forward-noised values (the replacement method, Song
et al. 2021). ``x_mark`` (calendar features) is accepted and not used.

Averaged weights. As the paper (which samples from an exponential moving average of the
weights, decay 0.9999), ``ema_decay`` keeps a copy of the network updated after every optimizer
step, with TensorFlow's ExponentialMovingAverage warm-up: decay_k = min(ema_decay,
(1 + k) / (10 + k)) at step k, so a run of a few thousand steps averages its recent weights
rather than its initial ones. In eval mode (the validation loss that picks the checkpoint,
sampling, imputation) the averaged copy predicts the noise; in training, the trained network.
``ema_decay=null`` keeps no copy.

Sampling is an evaluation: ``sample`` and ``impute`` run without gradients in eval mode (the
model's mode is restored afterwards) and draw all their noise from ``generator`` when given
(a generator on the model's device).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from layers.unet1d import UNet1D
from models.base import BaseModel
from utils.module_state import ema_update, evaluating, frozen_copy

SIGMAS = ("beta", "posterior")
SCHEDULES = ("linear", "quadratic")


class DDPM(BaseModel):
    imputes_by_sampling = True      # task=impute: own loss in training, impute() at test time

    def __init__(self, enc_in: int, seq_len: int, num_classes: int = 0, timesteps: int = 1000,
                 beta_start: float = 1e-4, beta_end: float = 0.02, schedule: str = "linear",
                 sigma: str = "beta",
                 base_channels: int = 64, channel_mults: Sequence[int] = (1, 2, 2),
                 num_res_blocks: int = 2, attention: bool = True, attention_heads: int = 1,
                 dropout: float = 0.1, cond_drop_prob: float = 0.1, guidance_scale: float = 0.0,
                 sample_steps: int | None = None, conditional_imputation: bool = True,
                 impute_samples: int = 1, ema_decay: float | None = 0.9999):
        super().__init__()
        if sigma not in SIGMAS:
            raise ValueError(f"model.sigma={sigma!r} is not known; choose one of {', '.join(SIGMAS)}")
        if timesteps < 1:
            raise ValueError(f"model.timesteps={timesteps} must be at least 1")
        if sample_steps is not None and not 1 <= sample_steps <= timesteps:
            raise ValueError(f"model.sample_steps={sample_steps} must be null (ancestral sampling over "
                             f"all {timesteps} steps) or a number of DDIM steps from 1 to "
                             f"model.timesteps={timesteps}")
        if schedule not in SCHEDULES:
            raise ValueError(f"model.schedule={schedule!r} is not known; choose one of {', '.join(SCHEDULES)}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"model.beta_start={beta_start} and model.beta_end={beta_end} must "
                             "satisfy 0 < beta_start <= beta_end < 1")
        if not 0 <= cond_drop_prob <= 1:
            raise ValueError(f"model.cond_drop_prob={cond_drop_prob} must lie in [0, 1]")
        if guidance_scale < 0:
            raise ValueError(f"model.guidance_scale={guidance_scale} must be >= 0 (0: no guidance)")
        if impute_samples < 1:
            raise ValueError(f"model.impute_samples={impute_samples} must be at least 1")
        if ema_decay is not None and not 0 <= ema_decay < 1:
            raise ValueError(f"model.ema_decay={ema_decay} must lie in [0, 1) (the paper: 0.9999) "
                             "or be null (no averaged weights)")
        self.enc_in, self.seq_len, self.num_classes = int(enc_in), int(seq_len), int(num_classes)
        self.timesteps, self.sigma = int(timesteps), sigma
        self.cond_drop_prob, self.guidance_scale = float(cond_drop_prob), float(guidance_scale)
        self.sample_steps = None if sample_steps is None else int(sample_steps)
        self.conditional_imputation, self.impute_samples = bool(conditional_imputation), int(impute_samples)

        # the schedule in float64, stored in float32 (the products over 1000 steps drift in fp32)
        if schedule == "linear":                   # Ho et al.
            betas = np.linspace(beta_start, beta_end, timesteps, dtype=np.float64)
        else:                                      # CSDI's quadratic: linear in sqrt(beta)
            betas = np.linspace(beta_start ** 0.5, beta_end ** 0.5, timesteps, dtype=np.float64) ** 2
        alphas = 1.0 - betas
        abar = np.cumprod(alphas)
        abar_prev = np.append(1.0, abar[:-1])
        posterior_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        schedule = {
            "betas": betas, "alphas_cumprod": abar, "alphas_cumprod_prev": abar_prev,
            "sqrt_alphas_cumprod": np.sqrt(abar), "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - abar),
            "sqrt_recip_alphas": 1.0 / np.sqrt(alphas), "posterior_variance": posterior_var,
            "sigmas": np.sqrt(betas if sigma == "beta" else posterior_var),
        }
        for name, values in schedule.items():
            self.register_buffer(name, torch.tensor(values, dtype=torch.float32))

        c = self.enc_in
        self.net = UNet1D(3 * c if self.conditional_imputation else c, c, base_channels,
                          tuple(channel_mults), num_res_blocks, attention, attention_heads, dropout,
                          self.num_classes)
        self.ema_decay = None if ema_decay is None else float(ema_decay)
        # the averaged weights: a frozen copy, checkpointed with the model, never given to the optimizer
        self.ema_net = frozen_copy(self.net) if self.ema_decay is not None else None

    # ------------------------------------------------------------------ averaged weights
    def after_optimizer_step(self, step: int) -> None:
        if self.ema_net is None:
            return
        # the U-Net holds no buffers (GroupNorm): its parameters are its whole state
        ema_update(self.ema_net, self.net, min(self.ema_decay, (1 + step) / (10 + step)))

    def denoiser(self) -> torch.nn.Module:
        """The network that predicts the noise: the averaged copy in eval mode, if kept."""
        return self.ema_net if self.ema_net is not None and not self.training else self.net

    # ------------------------------------------------------------------ forward process
    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, one t per window (any trailing shape)."""
        return _per_window(self.sqrt_alphas_cumprod, t, x0) * x0 \
            + _per_window(self.sqrt_one_minus_alphas_cumprod, t, x0) * noise

    # ------------------------------------------------------------------ training
    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                observed: torch.Tensor | None = None, x_mark: torch.Tensor | None = None) -> dict:
        """x [B, T, C] -> {"eps_pred", "eps", "weight"} [B, T, C] for t ~ U{0..T-1}, the terms
        of L_simple = sum(weight * (eps_pred - eps)^2) / sum(weight)."""
        self._check(x, observed)
        t = torch.randint(0, self.timesteps, (x.shape[0],), device=x.device)
        noise = torch.randn_like(x)
        if observed is not None and self.conditional_imputation:
            hidden = ~observed
            noise = noise * hidden                                 # the observed entries stay clean
            weight = hidden.to(x.dtype)
            x_t = self.q_sample(x, t, noise)
            cond = (torch.where(observed, x, torch.zeros_like(x)), observed)
        else:
            weight = torch.ones_like(x)
            x_t, cond = self.q_sample(x, t, noise), None
        labels = self._training_labels(y, x.shape[0], x.device)
        return {"eps_pred": self._eps(x_t, t, labels, cond, guide=False), "eps": noise, "weight": weight}

    def _training_labels(self, y, batch: int, device) -> torch.Tensor | None:
        if self.num_classes == 0:
            return None
        if y is None:
            return torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        y = y.reshape(-1).long()
        if self.training and self.cond_drop_prob > 0:               # classifier-free guidance
            drop = torch.rand(batch, device=device) < self.cond_drop_prob
            y = torch.where(drop, torch.full_like(y, self.num_classes), y)
        return y

    # ------------------------------------------------------------------ the noise prediction
    def predict_noise(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                      x_observed: torch.Tensor | None = None,
                      observed: torch.Tensor | None = None) -> torch.Tensor:
        """eps_theta(x_t, t[, y]) [B, T, C], guided when ``guidance_scale > 0`` and y is given;
        ``x_observed``/``observed`` condition an imputation model (read at observed entries only)."""
        cond = None
        if self.conditional_imputation:
            observed = torch.zeros_like(x_t, dtype=torch.bool) if observed is None else observed
            x_observed = torch.zeros_like(x_t) if x_observed is None else x_observed
            cond = (torch.where(observed, x_observed, torch.zeros_like(x_t)), observed)
        return self._eps(x_t, t, y, cond, guide=True)

    def _eps(self, x_t, t, y, cond, guide: bool) -> torch.Tensor:
        """The network on channels-last tensors; cond = (observed values, zero elsewhere; mask)."""
        if self.conditional_imputation:
            if cond is None:                       # generation with an imputation model: nothing observed
                cond = (torch.zeros_like(x_t), torch.zeros_like(x_t, dtype=torch.bool))
            values, mask = cond
            hidden_x_t = torch.where(mask, torch.zeros_like(x_t), x_t)
            x_t = torch.cat([hidden_x_t, values, mask.to(x_t.dtype)], dim=-1)
        inp = x_t.transpose(1, 2)
        if guide and self.guidance_scale > 0 and y is not None and self.num_classes > 0:
            # both passes in one batch: eps = (1 + w) eps(x, y) - w eps(x, null)
            y = y.reshape(-1).long()
            null = torch.full_like(y, self.num_classes)
            net = self.denoiser()
            eps_c, eps_u = net(torch.cat([inp, inp]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
            w = self.guidance_scale
            return ((1 + w) * eps_c - w * eps_u).transpose(1, 2)
        return self.denoiser()(inp, t, y).transpose(1, 2)

    # ------------------------------------------------------------------ reverse process
    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n new windows [n, seq_len, C] (of class y [n] when the model has classes)."""
        device = self.betas.device
        shape = (n, self.seq_len, self.enc_in)
        if y is not None:
            y = torch.as_tensor(y, device=device).reshape(-1).long()
            if y.numel() != n:
                raise ValueError(f"sample(n={n}) got {y.numel()} labels; give one per window")
        return self._reverse(shape, y, None, generator)

    def impute(self, x_observed: torch.Tensor, observed: torch.Tensor,
               generator: torch.Generator | None = None, n_samples: int | None = None,
               x_mark: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, C]: x_observed where ``observed``, elsewhere the mean of ``n_samples`` draws
        (default ``impute_samples``) from the model given the observed entries (``x_mark``
        is accepted, as in ``forward``, and not used)."""
        self._check(x_observed, observed)
        n_samples = self.impute_samples if n_samples is None else int(n_samples)
        values = torch.where(observed, x_observed, torch.zeros_like(x_observed))   # hidden never read
        draws = [self._reverse(tuple(x_observed.shape), None, (values, observed), generator)
                 for _ in range(n_samples)]
        return torch.where(observed, x_observed, torch.stack(draws).mean(0))

    def _reverse(self, shape, y, cond, generator) -> torch.Tensor:
        with evaluating(self):
            device = self.betas.device
            x = torch.randn(shape, generator=generator, device=device)
            steps = self.sampling_timesteps()
            prev_steps = np.append(-1, steps[:-1])
            for t, t_prev in zip(steps[::-1].tolist(), prev_steps[::-1].tolist()):
                if cond is not None and not self.conditional_imputation:
                    x = self._replace_observed(x, cond, t, generator)
                tt = torch.full((shape[0],), t, dtype=torch.long, device=device)
                eps = self._eps(x, tt, y, cond if self.conditional_imputation else None, guide=True)
                if self.sample_steps is None:
                    x = self._ancestral_step(x, t, eps, generator)
                else:
                    x = self._ddim_step(x, t, t_prev, eps)
            return x

    def sampling_timesteps(self) -> np.ndarray:
        """The timesteps the reverse chain visits, ascending: all of them (ancestral sampling)
        or DDIM's ``sample_steps`` evenly spaced ones, from T-1 down to 0 included."""
        if self.sample_steps is None:
            return np.arange(self.timesteps)
        return np.round(np.linspace(self.timesteps - 1, 0, self.sample_steps))[::-1].astype(int)

    def _ancestral_step(self, x, t: int, eps, generator) -> torch.Tensor:
        mean = self.sqrt_recip_alphas[t] * (x - self.betas[t] / self.sqrt_one_minus_alphas_cumprod[t] * eps)
        if t == 0:                                 # the paper's last step returns the mean
            return mean
        return mean + self.sigmas[t] * torch.randn(x.shape, generator=generator, device=x.device)

    def _ddim_step(self, x, t: int, t_prev: int, eps) -> torch.Tensor:
        abar = self.alphas_cumprod[t]
        abar_prev = self.alphas_cumprod[t_prev] if t_prev >= 0 else torch.ones_like(abar)
        x0 = (x - (1 - abar).sqrt() * eps) / abar.sqrt()
        return abar_prev.sqrt() * x0 + (1 - abar_prev).sqrt() * eps

    def _replace_observed(self, x, cond, t: int, generator) -> torch.Tensor:
        """The observed entries of x_t drawn from q(x_t | x_0) (unconditional models)."""
        values, mask = cond
        z = torch.randn(x.shape, generator=generator, device=x.device)
        noised = self.sqrt_alphas_cumprod[t] * values + self.sqrt_one_minus_alphas_cumprod[t] * z
        return torch.where(mask, noised, x)

    def _check(self, x: torch.Tensor, observed: torch.Tensor | None) -> None:
        if x.dim() != 3 or x.shape[-1] != self.enc_in:
            raise ValueError(f"DDPM takes series [batch, time, {self.enc_in}] (enc_in={self.enc_in}); "
                             f"got shape {tuple(x.shape)}")
        if observed is not None and (observed.shape != x.shape or observed.dtype != torch.bool):
            raise ValueError(f"the observed mask must be a bool tensor of the series' shape "
                             f"{tuple(x.shape)}; got {observed.dtype} {tuple(observed.shape)}")


def _per_window(values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped [B, 1, ..., 1] to broadcast over a window ``like`` [B, ...]."""
    return values[t].to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))
