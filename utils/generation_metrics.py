"""Scores of a generated set of labelled series against the real ones (task=generate).

- Train on synthetic, test on real (TSTR; Esteban, Hyland & Rätsch 2017): a classifier
  trained on the generated series and their labels, tested on the real test split, beside
  the same classifier with the same budget and seed trained on the real training split
  (TRTR): ``classifier_scores``.
- Discriminative score (Yoon, Jarrett & van der Schaar, TimeGAN, NeurIPS 2019): a classifier
  trained to tell real from generated series; |held-out accuracy - 0.5|, 0 when it cannot
  tell them apart: ``discriminative_score``.
- Fréchet distance (as FID, Heusel et al. 2017) between two sets of feature vectors,
  ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)): ``frechet_distance``; the features
  are a classifier's pooled representation (``pooled_features``).

The classifiers train in a plain seeded loop (Adam, cross-entropy, a fixed number of epochs,
no model selection) that leaves the caller's random streams untouched.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.linalg import sqrtm
from torch import nn

from utils.metrics import classification_metrics

# make_classifier(num_classes) -> an nn.Module mapping [B, T, C] to logits [B, num_classes]
ClassifierFactory = Callable[[int], nn.Module]


@dataclass(frozen=True)
class FitSettings:
    """Budget of one scoring classifier: epochs of Adam at ``lr`` on batches of ``batch_size``,
    predictions in batches of ``eval_batch_size``, all on ``device``, seeded by ``seed``."""
    epochs: int
    lr: float
    batch_size: int
    eval_batch_size: int = 512
    device: torch.device | str = "cpu"
    seed: int = 0


# ----------------------------------------------------------------------------- the synthetic set
def samples_per_class(train_labels: np.ndarray, num_classes: int, minimum: int, maximum: int) -> np.ndarray:
    """Series to generate per class: the training split's count clipped to [minimum, maximum];
    a class absent from the training split gets none (there is nothing to learn it from)."""
    if not 0 <= minimum <= maximum:
        raise ValueError(f"samples per class: the minimum ({minimum}) must lie between 0 and the "
                         f"maximum ({maximum})")
    labels = np.asarray(train_labels, dtype=np.int64)
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
    return np.where(counts > 0, np.clip(counts, minimum, maximum), 0).astype(np.int64)


def matched_by_class(y_real: np.ndarray, y_gen: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of as many real as generated series in every class (min of the two counts, drawn
    at random without replacement), so that real and generated sets have the same class mix
    and a discriminator cannot tell them apart by class frequencies alone."""
    rng = np.random.default_rng(seed)
    real_idx, gen_idx = [], []
    for c in np.union1d(np.unique(y_real), np.unique(y_gen)):
        r, g = np.flatnonzero(y_real == c), np.flatnonzero(y_gen == c)
        n = min(len(r), len(g))
        real_idx.append(rng.choice(r, n, replace=False))
        gen_idx.append(rng.choice(g, n, replace=False))
    return np.concatenate(real_idx).astype(np.int64), np.concatenate(gen_idx).astype(np.int64)


# ----------------------------------------------------------------------------- classifiers
@contextmanager
def _seeded(seed: int, device: torch.device):
    """torch's global generators seeded for the block (weight init, dropout) and restored after."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def train_classifier(make_classifier: ClassifierFactory, num_classes: int, x: np.ndarray,
                     y: np.ndarray, settings: FitSettings) -> nn.Module:
    """A classifier from ``make_classifier(num_classes)`` trained on x [N, T, C], y [N] for
    ``settings.epochs`` epochs; the same settings and data give the same weights."""
    device = torch.device(settings.device)
    if len(x) == 0:
        raise ValueError("a scoring classifier needs at least one training series; got none")
    with _seeded(settings.seed, device):
        model = make_classifier(num_classes).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        # the lr decays to 0 over the budget (cosine): with no model selection, the last
        # weights are the result, and a constant lr leaves them wherever the last step landed
        steps = settings.epochs * -(-len(x) // settings.batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
        xs = torch.as_tensor(np.asarray(x, dtype=np.float32), device=device)
        ys = torch.as_tensor(np.asarray(y, dtype=np.int64), device=device)
        order = torch.Generator().manual_seed(settings.seed)
        model.train()
        for _ in range(settings.epochs):
            perm = torch.randperm(len(xs), generator=order).to(device)
            for start in range(0, len(xs), settings.batch_size):
                idx = perm[start:start + settings.batch_size]
                if len(idx) < 2 < len(xs):    # batch norm cannot train on a batch of one
                    continue
                loss = nn.functional.cross_entropy(model(xs[idx]), ys[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    model.eval()
    return model


@torch.no_grad()
def predict(model: nn.Module, x: np.ndarray, settings: FitSettings) -> np.ndarray:
    """Logits [N, K] of x [N, T, C], in eval mode."""
    model.eval()
    device = torch.device(settings.device)
    out = []
    for start in range(0, len(x), settings.eval_batch_size):
        batch = torch.as_tensor(np.asarray(x[start:start + settings.eval_batch_size], dtype=np.float32),
                                device=device)
        out.append(model(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def final_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last nn.Linear (the one its forward ends with, as in ResNet1D.fc)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer whose input could serve "
                         "as the pooled features of the Fréchet distance; use a classifier that "
                         "ends with one (e.g. models.resnet1d.ResNet1D)")
    return linears[-1]


@torch.no_grad()
def pooled_features(model: nn.Module, x: np.ndarray, settings: FitSettings) -> np.ndarray:
    """The input of the classifier's final linear layer for x [N, T, C] -> [N, D] (float64)."""
    captured = []
    hook = final_linear(model).register_forward_hook(
        lambda module, inputs, output: captured.append(inputs[0].detach().float().cpu().numpy()))
    try:
        predict(model, x, settings)
    finally:
        hook.remove()
    return np.concatenate(captured).astype(np.float64)


def classifier_scores(make_classifier: ClassifierFactory, x_fit: np.ndarray, y_fit: np.ndarray,
                      x_test: np.ndarray, y_test: np.ndarray, class_names: list[str],
                      settings: FitSettings) -> tuple[dict, nn.Module]:
    """Train on (x_fit, y_fit), test on (x_test, y_test): accuracy, macro-F1, AUROC, per-class
    sensitivity / PPV (utils/metrics.py) and the training set's size; and the classifier.
    With the generated set as x_fit this is TSTR, with the real training split TRTR."""
    k = len(class_names)
    model = train_classifier(make_classifier, k, x_fit, y_fit, settings)
    metrics = classification_metrics(y_test, predict(model, x_test, settings), class_names)
    return {**metrics, "n_train": int(len(x_fit))}, model


def discriminative_score(make_classifier: ClassifierFactory, x_real: np.ndarray, x_gen: np.ndarray,
                         settings: FitSettings, train_fraction: float = 0.8) -> dict:
    """TimeGAN's discriminative score: real (label 1) and generated (label 0) series, as many of
    each, are each split train / held-out by a seeded permutation (``train_fraction`` to train);
    a 2-class classifier learns to tell them apart. Returns the held-out accuracy and
    score = |accuracy - 0.5| (0: indistinguishable, 0.5: always told apart)."""
    if len(x_real) != len(x_gen):
        raise ValueError(f"the discriminative score compares as many real as generated series; "
                         f"got {len(x_real)} real and {len(x_gen)} generated")
    if not 0 < train_fraction < 1:
        raise ValueError(f"train_fraction={train_fraction} must lie strictly between 0 and 1")
    n = len(x_real)
    n_train = int(round(train_fraction * n))
    if n_train < 1 or n_train >= n:
        raise ValueError(f"the discriminative score needs series on both sides of its "
                         f"{train_fraction:.0%} split; {n} real and {n} generated are too few")
    rng = np.random.default_rng(settings.seed)
    parts = {"train": ([], []), "test": ([], [])}
    for label, x in ((1, x_real), (0, x_gen)):
        perm = rng.permutation(n)
        for split, idx in (("train", perm[:n_train]), ("test", perm[n_train:])):
            parts[split][0].append(np.asarray(x)[idx])
            parts[split][1].append(np.full(len(idx), label, dtype=np.int64))
    (x_tr, y_tr), (x_te, y_te) = ((np.concatenate(a), np.concatenate(b)) for a, b in
                                  (parts["train"], parts["test"]))
    model = train_classifier(make_classifier, 2, x_tr, y_tr, settings)
    accuracy = float((predict(model, x_te, settings).argmax(1) == y_te).mean())
    return {"accuracy": accuracy, "score": abs(accuracy - 0.5),
            "n_train": int(len(x_tr)), "n_test": int(len(x_te))}


# ----------------------------------------------------------------------------- Fréchet distance
def frechet_distance_from_moments(mu_a: np.ndarray, sigma_a: np.ndarray, mu_b: np.ndarray,
                                  sigma_b: np.ndarray, eps: float = 1e-6) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the Fréchet (2-Wasserstein)
    distance between N(mu_a, S_a) and N(mu_b, S_b); the real part of scipy's sqrtm (its
    imaginary part is round-off). A singular product gets eps on the diagonals first, as
    FID's reference implementation does."""
    mu_a, mu_b = np.atleast_1d(np.asarray(mu_a, np.float64)), np.atleast_1d(np.asarray(mu_b, np.float64))
    sigma_a, sigma_b = np.atleast_2d(np.asarray(sigma_a, np.float64)), np.atleast_2d(np.asarray(sigma_b, np.float64))
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(f"the two feature sets differ in size: means {mu_a.shape} vs {mu_b.shape}, "
                         f"covariances {sigma_a.shape} vs {sigma_b.shape}")
    covmean = sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(sigma_a)) * eps
        covmean = sqrtm((sigma_a + offset) @ (sigma_b + offset))
    covmean = np.real(covmean)
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2.0 * np.trace(covmean))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """The Fréchet distance between the Gaussians fitted to two sets of feature vectors
    [N, D] (means and unbiased covariances, as FID)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or min(len(a), len(b)) < 2:
        raise ValueError(f"the Fréchet distance needs two sets of at least 2 feature vectors "
                         f"[N, D]; got shapes {a.shape} and {b.shape}")
    return frechet_distance_from_moments(a.mean(0), np.cov(a, rowvar=False),
                                         b.mean(0), np.cov(b, rowvar=False))
