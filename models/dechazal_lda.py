"""de Chazal, O'Dwyer & Reilly (IEEE TBME 2004): linear discriminants on heartbeat interval
and morphology features, the classic inter-patient reference for MIT-BIH.

Their two-lead configuration: one linear discriminant per ECG lead, each on the RR-interval
and heartbeat-interval features plus that lead's QRS and T-wave morphology, and the two
posterior probabilities averaged; the class of the highest average wins. Training weights
every class equally against the imbalance (about 90 % of beats are normal): each class's
covariance counts equally in the pooled covariance and the priors are uniform, which is
scikit-learn's ``LinearDiscriminantAnalysis`` with ``priors`` uniform (the ``lsqr`` solver
pools the class covariances with the priors as weights). ``class_weighting=none`` gives the
plain discriminant (covariance and priors from the class frequencies), for comparison.

Fitted in closed form on the training split (``fit_closed_form``, models/base.py); the
discriminants' coefficients are buffers, so checkpoints hold them. The beat features come
from the data (data=ecg with data.dechazal_features=true, which this model's config sets)
under the batch key ``features``; their names (meta ``feature_names``) say which columns
belong to which lead.
"""
from __future__ import annotations

import numpy as np
import torch
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from models.base import BaseModel

SHARED = ["pre_rr", "post_rr", "avg_rr", "local_rr", "qrs_duration", "t_duration", "p_wave"]
LEAD_PREFIXES = ("a_", "b_")
CLASS_WEIGHTINGS = ("balanced", "none")


def discriminant(class_weighting: str, classes: np.ndarray) -> LinearDiscriminantAnalysis:
    priors = np.full(len(classes), 1.0 / len(classes)) if class_weighting == "balanced" else None
    return LinearDiscriminantAnalysis(solver="lsqr", priors=priors)


class DeChazalLDA(BaseModel):
    fits_in_closed_form = True

    def __init__(self, num_classes: int, feature_names: list[str] | None = None,
                 class_weighting: str = "balanced", combine_leads: bool = True):
        super().__init__()
        if class_weighting not in CLASS_WEIGHTINGS:
            raise ValueError(f"model.class_weighting={class_weighting!r} is not known; choose one "
                             f"of {list(CLASS_WEIGHTINGS)}")
        names = list(feature_names or [])
        if not set(SHARED) <= set(names) or not all(any(n.startswith(p) for n in names)
                                                   for p in LEAD_PREFIXES):
            raise ValueError("model=dechazal_lda needs de Chazal's beat features, which only data=ecg "
                             "computes (data.dechazal_features=true, set by the model's config); "
                             f"this data gives features {names or 'none'}")
        shared = [names.index(n) for n in SHARED]
        per_lead = [shared + [i for i, n in enumerate(names) if n.startswith(p)] for p in LEAD_PREFIXES]
        # one discriminant per lead (the paper's), or one on every feature at once
        self.groups = per_lead if combine_leads else [sorted(set(sum(per_lead, [])))]
        self.num_classes = int(num_classes)
        self.class_weighting = class_weighting
        for g, cols in enumerate(self.groups):
            self.register_buffer(f"coef_{g}", torch.zeros(self.num_classes, len(cols), dtype=torch.float64))
            self.register_buffer(f"intercept_{g}", torch.zeros(self.num_classes, dtype=torch.float64))

    def fit_closed_form(self, arrays: dict[str, np.ndarray]) -> None:
        x = np.asarray(arrays["features"], dtype=np.float64)
        y = np.asarray(arrays["y"]).astype(int)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"the training split holds beats of {len(classes)} class only; a "
                             "discriminant needs two or more")
        for g, cols in enumerate(self.groups):
            lda = discriminant(self.class_weighting, classes).fit(x[:, cols], y)
            coef = np.zeros((self.num_classes, len(cols)))
            # a class absent from training can never be predicted
            intercept = np.full(self.num_classes, -np.inf)
            if len(lda.classes_) == 2:     # scikit-learn keeps one decision function for two classes
                coef[lda.classes_[0]], intercept[lda.classes_[0]] = 0.0, 0.0
                coef[lda.classes_[1]], intercept[lda.classes_[1]] = lda.coef_[0], lda.intercept_[0]
            else:
                coef[lda.classes_], intercept[lda.classes_] = lda.coef_, lda.intercept_
            getattr(self, f"coef_{g}").copy_(torch.from_numpy(coef))
            getattr(self, f"intercept_{g}").copy_(torch.from_numpy(intercept))

    def posteriors(self, features: torch.Tensor) -> torch.Tensor:
        """Class posteriors [B, K]: the mean of the discriminants' posteriors."""
        f = features.to(torch.float64)
        probs = [torch.softmax(f[:, cols] @ getattr(self, f"coef_{g}").T + getattr(self, f"intercept_{g}"), dim=1)
                 for g, cols in enumerate(self.groups)]
        return torch.stack(probs).mean(dim=0)

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        if features is None:
            raise ValueError("model=dechazal_lda classifies the batch key 'features' (de Chazal's "
                             "beat features), which this data does not give")
        # log-posteriors as logits: their softmax is the posterior itself
        return torch.log(self.posteriors(features).clamp_min(1e-30)).float()
