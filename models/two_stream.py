"""Two-stream classifier (Simonyan & Zisserman, "Two-Stream Convolutional Networks for Action
Recognition in Videos", NeurIPS 2014) with the paper's late fusion.

Two streams (layers/two_stream.py): a small CNN on the raw series and one on a second view of
it (the first difference or a spectrogram), each ending in global average pooling over the
observed steps, dropout and its own linear softmax classifier; the per-sample side features
(MIT-BIH's RR intervals), when the data has them, go to both classifiers. The class scores are
fused by averaging the two streams' softmax outputs (the paper's averaging; its SVM on the
stacked scores is not built). ``forward`` returns log((p_raw + p_second) / 2): the fused
probabilities as log-probabilities, which cross-entropy and the metrics take as logits.

The paper trains the two networks apart and fuses at test time; here one loss on the fused score
trains both at once (the framework's loop has one loss per model).
"""
from __future__ import annotations

import torch
from torch import nn

from layers.step_mask import observed_steps
from layers.two_stream import (
    StreamCNN,
    check_stream_args,
    second_view,
    view_channels,
)
from models.base import BaseModel


class TwoStreamClassifier(BaseModel):
    def __init__(self, in_channels: int, num_classes: int, view: str = "difference",
                 widths=(32, 64, 64), kernel_sizes=(7, 5, 3), n_fft: int = 32,
                 dropout: float = 0.5, extra_features: int = 0):
        super().__init__()
        check_stream_args(view, widths, kernel_sizes, n_fft)
        self.view, self.n_fft, self.extra_features = view, int(n_fft), int(extra_features)
        self.raw = StreamCNN(in_channels, widths, kernel_sizes)
        self.second = StreamCNN(view_channels(in_channels, view, self.n_fft), widths, kernel_sizes)
        self.dropout = nn.Dropout(dropout)
        self.raw_head = nn.Linear(self.raw.width + self.extra_features, num_classes)
        self.second_head = nn.Linear(self.second.width + self.extra_features, num_classes)

    def stream_scores(self, x: torch.Tensor, features: torch.Tensor | None = None,
                      mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Each stream's class scores (logits before its softmax): (raw, second view)."""
        x, observed = observed_steps(x, mask)
        w = observed.unsqueeze(-1).to(x.dtype)
        scores = []
        for stream, head, inputs in ((self.raw, self.raw_head, x),
                                     (self.second, self.second_head,
                                      second_view(x, self.view, self.n_fft))):
            pooled = (stream(inputs, observed) * w).sum(1) / w.sum(1).clamp(min=1)
            if self.extra_features:
                if features is None:
                    raise ValueError(f"this model was built with extra_features={self.extra_features} "
                                     "but the batch has no 'features'")
                pooled = torch.cat([pooled, features.to(pooled.dtype)], dim=-1)
            scores.append(head(self.dropout(pooled)))
        return scores[0], scores[1]

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        raw, second = self.stream_scores(x, features, mask)
        fused = (raw.softmax(-1) + second.softmax(-1)) / 2
        return fused.clamp(min=torch.finfo(fused.dtype).tiny).log()
