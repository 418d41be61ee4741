"""SimSiam (Chen & He, CVPR 2021): one encoder + projection MLP f (3 layers of 2048 with BN,
the output BN without affine) on both views, a bottleneck prediction MLP h (2048 -> 512 ->
2048) on one side and stop-gradient on the other: L = D(p1, sg(z2)) / 2 + D(p2, sg(z1)) / 2
with D the negative cosine. No negatives, no momentum encoder. ``fix_pred_lr``: the
predictor keeps the initial learning rate while the rest decays (the paper's Sec. 4.4
finding, used by its official pretraining command, ``--fix-pred-lr``)."""
from __future__ import annotations

from layers.heads import simsiam_predictor, simsiam_projector
from models.ssl.base import SSLMethod


class SimSiam(SSLMethod):
    def __init__(self, in_channels: int, encoder: str = "resnet1d", repr_dim: int = 128,
                 encoder_kwargs: dict | None = None, augment=None, pooling: str = "max",
                 encode_batch_size: int = 256, proj_dim: int = 2048, proj_layers: int = 3,
                 pred_dim: int = 512, fix_pred_lr: bool = True):
        super().__init__(in_channels, encoder, repr_dim, encoder_kwargs, augment, pooling,
                         encode_batch_size)
        self.projector = simsiam_projector(self.repr_dim, proj_dim, proj_layers)
        self.predictor = simsiam_predictor(proj_dim, pred_dim)
        self.fix_pred_lr = bool(fix_pred_lr)

    def fixed_lr_parameters(self) -> list:
        """Read by Exp_Basic._parameter_groups: these keep the optimizer's lr."""
        return list(self.predictor.parameters()) if self.fix_pred_lr else []

    def forward(self, batch: dict) -> dict:
        h1, h2 = self.represent_views(self.make_views(batch["x"]), joint=False)
        z1, z2 = self.projector(h1), self.projector(h2)
        # the loss applies the stop-gradient to z1, z2 (utils/losses/simsiam.negative_cosine)
        return {"p1": self.predictor(z1), "p2": self.predictor(z2), "z1": z1, "z2": z2}
