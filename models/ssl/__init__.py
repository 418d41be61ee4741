"""Siamese / contrastive self-supervised methods on a shared encoder choice
(layers/encoders.py): SimCLR, MoCo v2, BYOL, SimSiam, DINO, instance discrimination and the
semi-supervised hybrid. Each is built from conf/model/<name>.yaml."""
from models.ssl.base import SSLMethod
from models.ssl.byol import BYOL
from models.ssl.dino import DINO
from models.ssl.hybrid import Hybrid
from models.ssl.instdisc import InstDisc
from models.ssl.moco import MoCo
from models.ssl.simclr import SimCLR
from models.ssl.simsiam import SimSiam

__all__ = ["SSLMethod", "SimCLR", "MoCo", "BYOL", "SimSiam", "DINO", "InstDisc", "Hybrid"]
