"""TF-C's fine-tuning protocol (Zhang et al. 2022): a copy of the pretrained TF-C model and the
paper's classifier on [z^T, z^F], trained together on cross-entropy plus the pretext loss
(models/ssl/tfc.py ``fit_tfc_finetune``). Same call as ``finetune``; only TF-C models have
the ``finetune_loss`` / ``make_head`` it needs."""
from __future__ import annotations


def fit_tfc_finetune(model, x, y, **kwargs):
    # imported here: models.ssl imports utils.protocols (label fractions)
    from models.ssl.tfc import fit_tfc_finetune as fit
    if not hasattr(model, "finetune_loss"):
        raise TypeError(f"task.protocol=tfc_finetune fine-tunes TF-C models only (model=tfc); "
                        f"{type(model).__name__} has no finetune_loss: use protocol=finetune")
    return fit(model, x, y, **kwargs)
