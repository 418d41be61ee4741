"""Semi-supervised end-to-end contrastive learning (Cai, Zhang & Liu 2023, "SLOTS").

One encoder is trained on every series with the unsupervised contrastive loss (NT-Xent over
two augmented views) and, on the labelled share, with the supervised contrastive loss over
the same projections and the cross-entropy of a linear classifier on the representations of
both views (utils/losses/hybrid.HybridLoss). Training batches carry "y" with -1 for
unlabelled series: task=pretrain hides all but a stratified, seeded ``task.label_fraction``
of the labels (data_provider/pretraining.py).
"""
from __future__ import annotations

import torch

from layers.heads import LinearClassifier, simclr_projector
from models.ssl.base import SSLMethod


class Hybrid(SSLMethod):
    uses_labels = True   # the pretraining set must carry "y" (-1 = unlabelled)

    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, num_classes: int | None = None, proj_hidden_dim: int | None = None,
                 proj_dim: int = 128):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        if not num_classes:
            raise ValueError("hybrid needs num_classes (from a labelled dataset's meta, or "
                             "model.num_classes=<K>)")
        self.projector = simclr_projector(self.repr_dim, proj_hidden_dim, proj_dim)
        self.classifier = LinearClassifier(self.repr_dim, num_classes)

    def forward(self, batch: dict) -> dict:
        h1, h2 = self.represent_views(self.make_views(batch["x"]))
        out = {"z1": self.projector(h1), "z2": self.projector(h2),
               "logits": self.classifier(torch.cat([h1, h2]))}
        y = batch.get("y")
        if y is None and self.training:
            raise ValueError("hybrid is semi-supervised: its training batches need labels 'y' "
                             "(-1 for unlabelled series); the pretraining data has none")
        if y is not None:
            out["y"] = y.long().view(-1)
        return out

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores of the end-to-end classifier (softmax), x [N, T, C]."""
        return torch.softmax(self.classifier(self.encode(x, pooling=self.pooling)
                                             .to(self.classifier.fc.weight.device)), -1).cpu()
