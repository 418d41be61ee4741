"""Downstream evaluation protocols for representation models, kept apart from training.

Classification protocols share one call: ``fit(train, y, num_classes=, val_.., seed=, **kw)``
returns a classifier with ``predict`` and ``scores`` ([N, num_classes]).
- feature protocols take frozen representations [N, D] (``val_features``/``val_y``);
- model protocols take the model and raw series [N, T, C] (``val_x``/``val_y``):
  ``finetune`` (linear head, any model with ``embed``/``repr_dim``) and ``tfc_finetune``
  (TF-C's paper fine-tuning). ``MODEL_NEEDS`` lists the model attributes each one uses.
Forecasting: ``ridge_forecast.evaluate_forecasting`` (TS2Vec's protocol).
"""
from .finetune import fit_finetune
from .knn import fit_knn
from .label_fraction import stratified_subset
from .linear import fit_linear
from .logistic import fit_logistic
from .svm import fit_svm
from .tfc_finetune import fit_tfc_finetune

FEATURE_PROTOCOLS = {"svm": fit_svm, "logistic": fit_logistic, "knn": fit_knn,
                     "linear": fit_linear}
PROTOCOLS = {**FEATURE_PROTOCOLS, "finetune": fit_finetune, "tfc_finetune": fit_tfc_finetune}
MODEL_NEEDS = {"finetune": ("embed", "repr_dim"), "tfc_finetune": ("finetune_loss", "make_head")}


def check_model_supports(protocols, model, model_name: str) -> None:
    """Refuse, before any training, a protocol whose model attributes (``MODEL_NEEDS``) the
    model lacks."""
    for protocol in protocols:
        lacking = [a for a in MODEL_NEEDS.get(protocol, ()) if not hasattr(model, a)]
        if lacking:
            raise TypeError(f"protocol {protocol} (task.protocol / task.evaluations) needs "
                            f"model.{', model.'.join(lacking)}, which model={model_name} "
                            "does not have; choose another protocol")


def get_protocol(name: str):
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{name}' (task.protocol); known: "
                         f"{', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


__all__ = ["FEATURE_PROTOCOLS", "MODEL_NEEDS", "PROTOCOLS", "check_model_supports", "get_protocol",
           "stratified_subset"]
