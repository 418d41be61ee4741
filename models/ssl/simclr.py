"""SimCLR (Chen et al., ICML 2020): two augmented views of every series, a shared encoder
and a projection MLP g (one hidden layer of the encoder's width, BN, ReLU, 128 outputs),
NT-Xent over the 2N views (utils/losses/simclr.py). Representations are the encoder's,
before the projection head."""
from __future__ import annotations

from layers.heads import simclr_projector
from models.ssl.base import SSLMethod


class SimCLR(SSLMethod):
    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, proj_hidden_dim: int | None = None, proj_dim: int = 128):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        self.projector = simclr_projector(self.repr_dim, proj_hidden_dim, proj_dim)

    def forward(self, batch: dict) -> dict:
        h1, h2 = self.represent_views(self.make_views(batch["x"]))
        return {"z1": self.projector(h1), "z2": self.projector(h2)}
