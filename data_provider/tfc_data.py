"""TF-C fine-tuning sets (Zhang et al. 2022): ``data=tfc data.name=Epilepsy``.

Layout: ``<paths.data_dir>/TFC/<Name>/{train,val,test}.pt``, each a torch dict with
"samples" [N, C, L] (or [N, L] for one channel) and "labels" [N], as released in the official
repository. test.pt may be absent (the shared copy of Epilepsy ships only train/val because
the test file is large): then there is no "test" split and meta["has_test"] is False, and
the experiment has to report on validation data.
Series are returned channels-last, x [N, L, C] float32, with an all-True mask. A file that
is not such a dict (unreadable, other keys, other shapes, non-integer labels) is refused,
naming it and the official source.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import numpy as np
import torch

from utils.download import DataUnavailable
from utils.paths import inside_data_dir

from .base import ArrayDataset, DataBundle

log = logging.getLogger(__name__)

OFFICIAL_SOURCE = "https://github.com/mims-harvard/TFC-pretraining (datasets/<Name>/, also on figshare)"
SPLIT_FILES = {"train": "train.pt", "val": "val.pt", "test": "test.pt"}


def load_pt(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(x [N, L, C] float32, y [N] int64) from one TF-C .pt file."""
    fix = f"replace {path.name} with a clean copy from {OFFICIAL_SOURCE}"
    obj = _load_dict(path, fix)
    x = _as_array(path, obj, "samples", fix).astype(np.float64)
    y = _as_array(path, obj, "labels", fix)
    if x.ndim == 2:  # [N, L]: one channel
        x = x[:, None, :]
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.shape[2] == 0:
        raise ValueError(f"{path}: 'samples' has shape {list(x.shape)} and 'labels' "
                         f"{list(y.shape)}; expected [N, C, L] (or [N, L]) and [N] with the same "
                         f"N: {fix}.")
    if not np.isfinite(x).all():
        n = int(np.flatnonzero(~np.isfinite(x).reshape(len(x), -1).all(axis=1))[0])
        raise ValueError(f"{path}: 'samples' of sample {n} hold NaN or infinite values: {fix}.")
    if not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{path}: 'labels' must be integer class indices "
                         f"(got dtype {y.dtype}): {fix}.")
    return np.ascontiguousarray(x.transpose(0, 2, 1)).astype(np.float32), y.astype(np.int64)


def _load_dict(path: Path, fix: str) -> dict:
    # weights_only=True: a .pt file from the internet stays data, never code.
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as e:
        raise ValueError(f"{path} is not a readable torch .pt file "
                         f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}): {fix}.") from e
    if not isinstance(obj, dict) or "samples" not in obj or "labels" not in obj:
        keys = sorted(map(str, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: expected a dict with 'samples' and 'labels', got {keys}: {fix}.")
    return obj


def _as_array(path: Path, obj: dict, key: str, fix: str) -> np.ndarray:
    value = obj[key]
    try:
        arr = torch.as_tensor(value).numpy()
    except (TypeError, ValueError, RuntimeError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: '{key}' is a {type(value).__name__}, not a numeric tensor: {fix}.")
    return arr


def build(cfg) -> DataBundle:
    data = cfg.data
    name = str(data.name)
    folder = inside_data_dir(str(cfg.paths.data_dir), "TFC", ("data.name", name))
    paths = {split: folder / f for split, f in SPLIT_FILES.items()}
    missing = [str(paths[s]) for s in ("train", "val") if not paths[s].is_file()]
    if missing:
        hint = (" Automatic download is not available for TF-C sets (data.download=true only "
                "works for data=ucr|uea)." if data.get("download", False) else "")
        raise DataUnavailable(
            f"TF-C dataset '{name}' not found: missing {', '.join(missing)} (data directory "
            f"paths.data_dir, overridable by DATA_DIR). Get train.pt/val.pt/test.pt from "
            f"{OFFICIAL_SOURCE} and put them in {folder}.{hint}")

    arrays = {s: load_pt(p) for s, p in paths.items() if p.is_file()}
    has_test = "test" in arrays
    if not has_test:
        log.warning("TFC/%s: no test.pt in %s, so there is no test split; report on 'val'",
                    name, folder)
    shapes = {s: a[0].shape[1:] for s, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"TFC/{name}: splits differ in [length, channels]: {shapes}")

    labels = np.concatenate([y for _, y in arrays.values()])
    if labels.min() < 0:
        raise ValueError(f"TFC/{name}: negative class label {labels.min()}")
    num_classes = int(data.get("num_classes") or labels.max() + 1)
    if labels.max() >= num_classes:
        raise ValueError(f"TFC/{name}: label {labels.max()} >= data.num_classes={num_classes}")

    splits = {}
    for split, (x, y) in arrays.items():
        splits[split] = ArrayDataset(x=x, y=y, mask=np.ones(x.shape[:2], dtype=bool),
                                     index=np.arange(len(y), dtype=np.int64))

    x_train = arrays["train"][0]
    meta = {
        "in_channels": int(x_train.shape[2]),
        "seq_len": int(x_train.shape[1]),
        "num_classes": num_classes,
        "class_names": [str(i) for i in range(num_classes)],
        "has_val": True,
        "has_test": has_test,
        "dataset": f"TFC/{name}",
        **{f"n_{s}": len(a[1]) for s, a in arrays.items()},
    }
    return DataBundle(splits=splits, meta=meta)
