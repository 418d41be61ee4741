"""The two streams of Simonyan & Zisserman ("Two-Stream Convolutional Networks for Action
Recognition in Videos", NeurIPS 2014) on a series: the raw signal (their appearance stream) and
a second view that shows its change explicitly (their motion stream, fed optical flow rather
than frames so the network need not infer motion itself).

``view``:
- ``difference``: the first difference x_t - x_{t-1} (0 at the first step), the 1-D
  counterpart of the displacement between consecutive frames;
- ``spectrogram``: log(1 + |STFT|) with a Hann window of ``n_fft`` steps centred on every step
  (hop 1), every channel's n_fft / 2 + 1 bands side by side, so the view keeps one column per step.

``StreamCNN``: one stream, a small 1-D CNN (conv, BatchNorm, ReLU per layer, stride 1) giving
per-step features. ``TwoStreamEncoder`` (registered as "two_stream"): both streams on the same
series, their per-step features concatenated and projected to ``repr_dim``. The classifier
with the paper's late fusion of class scores is models/two_stream.py.

Masks (True = observed): unobserved steps are zeroed before each stream and after every layer,
and the views read zeros there, so in eval mode padding at the end of a series changes none of
its observed steps' features (BatchNorm in training mode still counts them in its statistics).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from layers.step_mask import observed_steps

VIEWS = ("difference", "spectrogram")


def first_difference(x: torch.Tensor) -> torch.Tensor:
    """[B, T, C] -> x_t - x_{t-1}, 0 at t = 0."""
    return x - F.pad(x, (0, 0, 1, 0))[:, :-1]


def spectrogram(x: torch.Tensor, n_fft: int) -> torch.Tensor:
    """[B, T, C] -> [B, T, C * (n_fft // 2 + 1)]: log(1 + |rFFT|) of the Hann-windowed n_fft
    steps centred on each step (zeros beyond the ends)."""
    b, t = x.shape[:2]
    left = n_fft // 2
    frames = F.pad(x, (0, 0, left, n_fft - 1 - left)).unfold(1, n_fft, 1)      # B T C n_fft
    window = torch.hann_window(n_fft, periodic=True, dtype=x.dtype, device=x.device)
    return torch.log1p(torch.fft.rfft(frames * window, dim=-1).abs()).reshape(b, t, -1)


def second_view(x: torch.Tensor, view: str, n_fft: int) -> torch.Tensor:
    return first_difference(x) if view == "difference" else spectrogram(x, n_fft)


def view_channels(in_channels: int, view: str, n_fft: int) -> int:
    return in_channels if view == "difference" else in_channels * (n_fft // 2 + 1)


def check_stream_args(view: str, widths, kernel_sizes, n_fft: int) -> None:
    """Refuse bad arguments by name (shared by the encoder and the classifier)."""
    if view not in VIEWS:
        raise ValueError(f"two_stream: view={view!r} is not one of {', '.join(VIEWS)}")
    if not widths or len(widths) != len(kernel_sizes):
        raise ValueError(f"two_stream: widths {list(widths)} and kernel_sizes {list(kernel_sizes)} "
                         "must be non-empty and of the same length (one conv layer each)")
    if any(int(k) % 2 == 0 for k in kernel_sizes):
        raise ValueError(f"two_stream: kernel_sizes {list(kernel_sizes)} must be odd so every "
                         "step keeps its own output")
    if int(n_fft) < 2:
        raise ValueError(f"two_stream: n_fft={n_fft} must be at least 2")


class StreamCNN(nn.Module):
    """x [B, T, C], observed [B, T] -> per-step features [B, T, widths[-1]]."""

    def __init__(self, in_channels: int, widths=(32, 64, 64), kernel_sizes=(7, 5, 3)):
        super().__init__()
        layers, ch = [], in_channels
        for w, k in zip(widths, kernel_sizes):
            layers.append(nn.ModuleList([nn.Conv1d(ch, int(w), int(k), padding=int(k) // 2),
                                         nn.BatchNorm1d(int(w))]))
            ch = int(w)
        self.layers = nn.ModuleList(layers)
        self.width = ch

    def forward(self, x: torch.Tensor, observed: torch.Tensor) -> torch.Tensor:
        keep = observed.unsqueeze(1).to(x.dtype)
        h = x.transpose(1, 2) * keep
        for conv, norm in self.layers:
            h = F.relu(norm(conv(h))) * keep             # padding never leaks into a step
        return h.transpose(1, 2)


class TwoStreamEncoder(nn.Module):
    """x [B, T, C] -> [B, T, repr_dim]: the raw and second-view streams' per-step features,
    concatenated and projected. ``mask`` optional bool [B, T], True = observed."""

    def __init__(self, in_channels: int, repr_dim: int = 64, view: str = "difference",
                 widths=(32, 64, 64), kernel_sizes=(7, 5, 3), n_fft: int = 32):
        super().__init__()
        check_stream_args(view, widths, kernel_sizes, n_fft)
        self.view, self.n_fft = view, int(n_fft)
        self.raw = StreamCNN(in_channels, widths, kernel_sizes)
        self.second = StreamCNN(view_channels(in_channels, view, self.n_fft), widths, kernel_sizes)
        self.proj = nn.Linear(2 * self.raw.width, repr_dim)
        self.repr_dim = repr_dim

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x, observed = observed_steps(x, mask)
        other = second_view(x, self.view, self.n_fft)
        h = torch.cat([self.raw(x, observed), self.second(other, observed)], dim=-1)
        return self.proj(h)
