"""UCR (univariate) and UEA (multivariate) classification archives: ``data=ucr|uea data.name=…``.

Layout: ``<paths.data_dir>/<UCR|UEA>/<Name>/<Name>_TRAIN.<ext>`` and ``_TEST.<ext>`` with ext
``ts`` (sktime/aeon), ``tsv`` (UCR 2018) or ``txt`` (old UCR); see ts_readers.py.

- The official TRAIN/TEST split is kept; validation is carved from TRAIN only, stratified
  and seeded (see :func:`stratified_split` for the rule when a class is small).
- Labels of any type map to 0..K-1 in sorted order of the TRAIN labels (numeric labels by
  value); ``meta["class_names"]`` holds the original labels.
- Series are x [N, T, C] float32, padded with 0 to the longest case of TRAIN and TEST, with
  ``mask`` [N, T] (True = observed) for unequal lengths and missing values; ``index`` is the
  row of the sample in its official TRAIN or TEST file.
- ``data.download=true`` fetches ``<Name>.zip`` from the official archive, extracts only the
  TRAIN/TEST files and checks their sizes against ucr_uea_catalog before anything is put in
  the data directory.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import numpy as np

from utils.download import DataUnavailable, DownloadError, fetch, sha256_of
from utils.paths import inside_data_dir

from . import npz_cache
from . import ucr_uea_catalog as catalog
from .base import ArrayDataset, DataBundle
from .ts_readers import SUPPORTED_EXTENSIONS, canonical_label, pad_series, read_split

log = logging.getLogger(__name__)

OFFICIAL_SITE = "https://www.timeseriesclassification.com/"
DEFAULT_SOURCE_URL = "https://www.timeseriesclassification.com/aeon-toolkit/{name}.zip"
SPLITS = ("TRAIN", "TEST")
NORMALIZATIONS = ("none", "series_zscore", "train_channel_zscore", "train_global_zscore", "ts2vec")
# UCR 2018 datasets whose series the archive did not z-normalise. TS2Vec's UCR loader scales
# exactly these by one mean/std over all values of the TRAIN file (keeping the amplitude
# information) and feeds every other UCR dataset as it is (data.normalize=ts2vec).
TS2VEC_RESCALED_UCR = frozenset({
    "AllGestureWiimoteX", "AllGestureWiimoteY", "AllGestureWiimoteZ", "BME", "Chinatown",
    "Crop", "EOGHorizontalSignal", "EOGVerticalSignal", "Fungi", "GestureMidAirD1",
    "GestureMidAirD2", "GestureMidAirD3", "GesturePebbleZ1", "GesturePebbleZ2",
    "GunPointAgeSpan", "GunPointMaleVersusFemale", "GunPointOldVersusYoung", "HouseTwenty",
    "InsectEPGRegularTrain", "InsectEPGSmallTrain", "MelbournePedestrian",
    "PickupGestureWiimoteZ", "PigAirwayPressure", "PigArtPressure", "PigCVP", "PLAID",
    "PowerCons", "Rock", "SemgHandGenderCh2", "SemgHandMovementCh2", "SemgHandSubjectCh2",
    "ShakeGestureWiimoteZ", "SmoothSubspace", "UMD",
})
MAX_EXTRACT_BYTES = 8 << 30  # one extracted file; guards against a zip bomb
_CACHE_VERSION = 2  # bump when parsing changes its output
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")  # also keeps the name inside data_dir


# ----------------------------------------------------------------------------- entry point
def _checked_settings(data) -> tuple[str, str, str, float]:
    """(archive, name, normalisation, validation fraction), refused by name before any file
    is read or downloaded."""
    archive = str(data.get("archive") or data.family).upper()
    name = str(data.name)
    if not _NAME_RE.fullmatch(name):
        raise ValueError(f"data.name='{name}' is not a dataset name (letters, digits, '_', '-', "
                         "'.'), e.g. data.name=GunPoint")
    method = str(data.get("normalize", "none"))
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown data.normalize '{method}'; choose one of {', '.join(NORMALIZATIONS)}")
    val_fraction = float(data.get("val_fraction", 0.2) or 0.0)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    return archive, name, method, val_fraction


def _files(data, data_dir: Path, archive: str, name: str):
    """The dataset's TRAIN/TEST files, downloaded first when missing and data.download is set.
    data.archive and data.name must lead to a folder inside the data directory."""
    folder = inside_data_dir(data_dir, ("data.archive", archive), ("data.name", name))
    files = locate(folder, name)
    if files is None:
        if data.get("download", False):
            download_dataset(inside_data_dir(data_dir, archive), archive, name, data)
            files = locate(folder, name)
        if files is None:
            raise DataUnavailable(missing_message(data_dir, archive, name, data))
    return files


def _normalised(x_train, m_train, x_test, m_test, method: str, idx_train, archive: str, name: str):
    """(x_train, x_test, the normalisation applied, its statistics), fit on training rows."""
    x_all = np.concatenate([x_train, x_test])
    m_all = np.concatenate([m_train, m_test])
    applied, fit_idx = method, idx_train
    if method == "ts2vec":
        applied = ts2vec_scaling(archive, name)
        fit_idx = np.arange(len(x_train))  # the official loaders fit on the whole TRAIN file
        log.info("data.normalize=ts2vec: %s on all TRAIN rows (TS2Vec's %s loader)", applied, archive)
    x_all, stats = normalize(x_all, m_all, applied, fit_idx=fit_idx)
    return x_all[: len(x_train)], x_all[len(x_train):], applied, stats


def build(cfg) -> DataBundle:
    data = cfg.data
    archive, name, method, val_fraction = _checked_settings(data)
    data_dir = Path(str(cfg.paths.data_dir))
    folder = data_dir / archive / name
    raw = load_arrays(_files(data, data_dir, archive, name), _cache_dir(cfg))
    y_train, y_test, class_names = encode_labels(raw["labels_train"], raw["labels_test"],
                                                 where=f"{archive}/{name}")
    x_train, m_train = raw["x_train"], raw["mask_train"]
    x_test, m_test = raw["x_test"], raw["mask_test"]

    problems = verify_sizes(archive, name, x_train, x_test, y_train)
    if problems:  # local files: warn only (a user may hold another version on purpose)
        warnings.warn(f"{archive}/{name} in {folder} differs from the known archive sizes: "
                      f"{'; '.join(problems)}", stacklevel=2)

    split_seed = data.get("split_seed")
    seed = int(cfg.seed if split_seed is None else split_seed)
    idx_train, idx_val = stratified_split(y_train, val_fraction, seed)
    has_val = len(idx_val) > 0
    if val_fraction > 0 and not has_val:
        warnings.warn(f"{archive}/{name}: TRAIN is too small to carve a stratified validation "
                      f"set with val_fraction={val_fraction}; training without validation "
                      "(model selection falls back to the training loss)", stacklevel=2)

    x_train, x_test, applied, stats = _normalised(x_train, m_train, x_test, m_test, method,
                                                  idx_train, archive, name)

    def subset(x, m, y, idx):
        return ArrayDataset(x=x[idx], y=y[idx].astype(np.int64), mask=m[idx],
                            index=np.asarray(idx, dtype=np.int64))

    splits = {"train": subset(x_train, m_train, y_train, idx_train)}
    if has_val:
        splits["val"] = subset(x_train, m_train, y_train, idx_val)
    splits["test"] = subset(x_test, m_test, y_test, np.arange(len(y_test)))

    meta = {
        "in_channels": int(x_train.shape[2]),
        "seq_len": int(x_train.shape[1]),
        "num_classes": len(class_names),
        "class_names": class_names,
        "has_val": has_val,
        "has_test": True,
        "dataset": f"{archive}/{name}",
        "variable_length": bool(raw["variable_length"]),
        "has_missing": bool(raw["has_missing"]),
        "normalize": method,
        "normalize_applied": applied,
        "n_train": len(idx_train), "n_val": len(idx_val), "n_test": len(y_test),
        **stats,
    }
    log.info("%s/%s: train %d, val %d, test %d, %d channels x %d steps, %d classes",
             archive, name, len(idx_train), len(idx_val), len(y_test), meta["in_channels"],
             meta["seq_len"], meta["num_classes"])
    return DataBundle(splits=splits, meta=meta)


# ----------------------------------------------------------------------------- files
def locate(folder: Path, name: str) -> dict[str, Path] | None:
    """TRAIN and TEST files of one dataset, in the first format both exist in."""
    for ext in SUPPORTED_EXTENSIONS:
        paths = {s: folder / f"{name}_{s}.{ext}" for s in SPLITS}
        if all(p.is_file() for p in paths.values()):
            return paths
    return None


def missing_message(data_dir: Path, archive: str, name: str, data) -> str:
    folder = data_dir / archive / name
    found = sorted(p.name for p in folder.glob("*")) if folder.is_dir() else []
    url = _source_url(data, name)
    known = catalog.CATALOGS.get(archive, {})
    msg = (f"{archive} dataset '{name}' not found: looked for {folder}/{name}_TRAIN.<ext> and "
           f"{name}_TEST.<ext> with ext one of {', '.join(SUPPORTED_EXTENSIONS)}"
           + (f" (that folder holds: {', '.join(found)})" if found else "") + ". "
           f"The data directory is paths.data_dir={data_dir} (the DATA_DIR environment "
           f"variable overrides it). Get the dataset from the official archive {OFFICIAL_SITE} "
           f"({url}) and unpack its TRAIN/TEST files into {folder}, or run again with "
           f"data.download=true to fetch and verify it automatically.")
    if known and name not in known:
        close = difflib.get_close_matches(name, list(known), n=3)
        if close:
            msg += f" Did you mean: {', '.join(close)}?"
    return msg


def _source_url(data, name: str) -> str:
    return str(data.get("source_url") or DEFAULT_SOURCE_URL).replace("{name}", name)


def _cache_dir(cfg) -> Path | None:
    return npz_cache.folder(cfg.paths.get("cache_dir"), "ucr_uea")


# ----------------------------------------------------------------------------- parsing
def parse_files(files: dict[str, Path]) -> dict:
    """Parse TRAIN and TEST and pad both to the longest case of either."""
    train, test = read_split(files["TRAIN"]), read_split(files["TEST"])
    if train.n_channels != test.n_channels:
        raise ValueError(f"{files['TRAIN']} has {train.n_channels} channels but "
                         f"{files['TEST']} has {test.n_channels}")
    length = int(max(train.lengths.max(), test.lengths.max()))
    x_train, m_train = pad_series(train.series, length)
    x_test, m_test = pad_series(test.series, length)
    lengths = np.concatenate([train.lengths, test.lengths])
    return {
        "x_train": x_train, "mask_train": m_train, "labels_train": np.array(train.labels),
        "x_test": x_test, "mask_test": m_test, "labels_test": np.array(test.labels),
        "variable_length": np.array(lengths.min() != lengths.max()),
        # missing values inside a case (not just the padding after a short case)
        "has_missing": np.array(any(np.isnan(s).any() for s in train.series + test.series)),
    }


def load_arrays(files: dict[str, Path], cache_dir: Path | None) -> dict:
    """parse_files, cached in cache_dir keyed by the sha256 of the TRAIN/TEST files (content,
    not paths or times, so a file changed in place and later restored never reads arrays
    parsed from another version). An unusable cache directory is reported once and skipped."""
    if cache_dir is None:
        return parse_files(files)
    path = cache_dir / f"{files['TRAIN'].stem[:-len('_TRAIN')]}_{cache_key(files)}.npz"
    cached = npz_cache.load(path)
    if cached is not None:
        return cached
    arrays = parse_files(files)
    npz_cache.save(path, arrays)
    return arrays


def cache_key(files: dict[str, Path]) -> str:
    # the file names stay in the key: the extension chooses the parser
    stamp = [_CACHE_VERSION] + [[s, files[s].name, sha256_of(files[s])] for s in SPLITS]
    return hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]


def encode_labels(train_labels, test_labels, where: str = "") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Map labels to 0..K-1 in sorted order of the TRAIN labels.

    Numeric labels compare by value ('1.0000000e+00' and '1' are the same class, '10' sorts
    after '9'); otherwise labels sort as strings.
    """
    train = [canonical_label(str(v)) for v in train_labels]
    test = [canonical_label(str(v)) for v in test_labels]
    classes = sorted(set(train))
    try:
        classes = sorted(classes, key=float)
    except ValueError:
        pass
    unknown = sorted(set(test) - set(classes))
    if unknown:
        raise ValueError(f"{where}: TEST labels {unknown} never occur in TRAIN (TRAIN classes: "
                         f"{classes}); the TRAIN and TEST files do not belong together or one "
                         "is damaged")
    index = {c: i for i, c in enumerate(classes)}
    return (np.array([index[v] for v in train], dtype=np.int64),
            np.array([index[v] for v in test], dtype=np.int64), classes)


def verify_sizes(archive: str, name: str, x_train, x_test, y_train) -> list[str]:
    """Differences to the catalog; warns (and returns []) for a dataset it does not know."""
    info = catalog.lookup(archive, name)
    if info is None:
        warnings.warn(f"{archive}/{name} is not in the catalog of known dataset sizes "
                      "(data_provider/ucr_uea_catalog.py); accepted as parsed, unverified",
                      stacklevel=3)
        return []
    return catalog.check(info, n_train=len(x_train), n_test=len(x_test),
                         length=x_train.shape[1], channels=x_train.shape[2],
                         classes=len(np.unique(y_train)))


# ----------------------------------------------------------------------------- splitting
def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified train/val indices (each sorted).

    Rule: class c with n_c samples gives round(val_fraction * n_c) samples to validation,
    but never its last training sample (at most n_c - 1), so every class stays in training;
    a class with a single sample therefore stays in training only, and a class whose share
    rounds to 0 has no validation sample. If no class can give any sample, the result has
    no validation set (the caller reports has_val=False). val_fraction <= 0: no validation.
    """
    y = np.asarray(y)
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
    all_idx = np.arange(len(y))
    if val_fraction == 0.0:
        return all_idx, np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(y):
        members = all_idx[y == c]
        n_val = min(int(np.floor(val_fraction * len(members) + 0.5)), len(members) - 1)
        if n_val > 0:
            val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.array([], dtype=np.int64)
    train_idx = np.setdiff1d(all_idx, val_idx)
    return train_idx, val_idx


# ----------------------------------------------------------------------------- scaling
def ts2vec_scaling(archive: str, name: str) -> str:
    """The scaling of the official TS2Vec loaders (datautils.load_UCR / load_UEA), which
    build() fits on the whole TRAIN file (train + the validation carved from it), as they do.
    UCR: one mean/std over all TRAIN values for the archive's not-normalised datasets
    (TS2VEC_RESCALED_UCR), the series unchanged otherwise. UEA: a per-channel StandardScaler."""
    if archive == "UCR":
        return "train_global_zscore" if name in TS2VEC_RESCALED_UCR else "none"
    return "train_channel_zscore"


def normalize(x: np.ndarray, mask: np.ndarray, method: str, fit_idx) -> tuple[np.ndarray, dict]:
    """Scale x [N, T, C] over observed steps only; padded/missing steps stay 0.

    - none: the UCR archive's series are mostly z-normalised per series already, and TS2Vec
      feeds them unchanged; the default for UCR.
    - series_zscore: each series and channel to mean 0, std 1 over its own observed steps
      (what the UCR archive did to most datasets; leaks nothing across samples).
    - train_channel_zscore: one mean/std per channel, fit on the observed values of the
      training rows (fit_idx) only and applied to every split, as TS2Vec's UEA loader does with
      a StandardScaler; the default for UEA, whose channels have very different units/scales.
    - train_global_zscore: one mean/std over all observed values of the training rows (every
      channel and step), applied to every split; keeps the relative amplitudes of the series.
    - ts2vec: resolved by build() through :func:`ts2vec_scaling` to one of the above.
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"unknown data.normalize '{method}'; choose one of {', '.join(NORMALIZATIONS)}")
    if method == "none":
        return x, {}
    m = mask[..., None]
    if method == "series_zscore":
        count = np.maximum(m.sum(axis=1, keepdims=True), 1)
        mean = (x * m).sum(axis=1, keepdims=True) / count
        std = np.sqrt((((x - mean) * m) ** 2).sum(axis=1, keepdims=True) / count)
        out = (x - mean) / np.where(std > 1e-8, std, 1.0)
        return np.where(m, out, 0.0).astype(np.float32), {}
    fit_x, fit_m = x[fit_idx].astype(np.float64), m[fit_idx]
    if method == "train_global_zscore":
        vals = fit_x[np.broadcast_to(fit_m, fit_x.shape)]
        mean, std = float(vals.mean()), float(vals.std())
        std = std if std > 1e-8 else 1.0
        out = np.where(m, (x - mean) / std, 0.0).astype(np.float32)
        return out, {"global_mean": mean, "global_std": std}
    if method != "train_channel_zscore":
        raise ValueError(f"data.normalize '{method}' must be resolved before normalize() (see build)")
    count = np.maximum(fit_m.sum(axis=(0, 1)), 1)
    mean = (fit_x * fit_m).sum(axis=(0, 1)) / count
    std = np.sqrt((((fit_x - mean) * fit_m) ** 2).sum(axis=(0, 1)) / count)
    std = np.where(std > 1e-8, std, 1.0)
    out = np.where(m, (x - mean) / std, 0.0).astype(np.float32)
    return out, {"channel_mean": mean.astype(np.float32).tolist(),
                 "channel_std": std.astype(np.float32).tolist()}


# ----------------------------------------------------------------------------- download
def download_dataset(archive_dir: Path, archive: str, name: str, data) -> Path:
    """Fetch <name>.zip, extract its TRAIN/TEST files, verify them, then move them in place.

    Everything happens in a temporary folder inside archive_dir; the dataset folder is only
    written once the files parsed and matched the catalog, so a failed or wrong download
    leaves nothing behind.
    """
    url = _source_url(data, name)
    created = not archive_dir.exists()
    try:
        archive_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=archive_dir))
    except OSError as e:
        raise DownloadError(f"cannot write to the data directory {archive_dir} ({e}); set "
                            "paths.data_dir (or DATA_DIR) to a writable folder for "
                            "data.download=true") from e
    try:
        log.info("downloading %s/%s from %s", archive, name, url)
        try:
            zip_path = fetch(url, tmp / f"{name}.zip", size=data.get("source_size"),
                             sha256=data.get("source_sha256"))
        except DownloadError as e:
            raise DownloadError(f"{str(e).split('. ')[0]}. Check the network, or get that zip and "
                                f"unpack its {name}_TRAIN/_TEST files into {archive_dir / name}") from e
        files = extract_split_files(zip_path, name, tmp / "files")
        raw = parse_files(files)
        y_train, _, _ = encode_labels(raw["labels_train"], raw["labels_test"],
                                      where=f"downloaded {url}")
        problems = verify_sizes(archive, name, raw["x_train"], raw["x_test"], y_train)
        if problems and data.get("verify_catalog", True):
            raise DownloadError(f"downloaded {url} does not match the known sizes of "
                                f"{archive}/{name}: {'; '.join(problems)}. Nothing was written. "
                                "If you trust this source, set data.verify_catalog=false.")
        target = archive_dir / name
        target.mkdir(exist_ok=True)
        for f in files.values():
            os.replace(f, target / f.name)
        (target / "SOURCE.txt").write_text(
            f"{archive}/{name} downloaded by data_provider/ucr_uea.py\n"
            f"url: {url}\nzip sha256: {sha256_of(zip_path)}\n"
            f"date: {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n"
            f"files: {', '.join(f.name for f in files.values())}\n", encoding="utf-8")
        return target
    except (zipfile.BadZipFile, ValueError) as e:
        raise DownloadError(f"downloaded {url} is not a usable {archive} archive for "
                            f"'{name}': {e}. Nothing was written.") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and archive_dir.is_dir() and not any(archive_dir.iterdir()):
            archive_dir.rmdir()


def extract_split_files(zip_path: Path, name: str, out_dir: Path) -> dict[str, Path]:
    """Copy only <name>_TRAIN/_TEST.<ext> out of the zip, under names we choose.

    Members are matched by their base name and written to out_dir/<name>_<SPLIT>.<ext>, so a
    member path like '../../x' or '/etc/x' can never place a file outside out_dir.
    """
    pattern = re.compile(rf"{re.escape(name)}_(TRAIN|TEST)\.({'|'.join(SUPPORTED_EXTENSIONS)})",
                         re.IGNORECASE)
    with zipfile.ZipFile(zip_path) as zf:
        members: dict[tuple[str, str], zipfile.ZipInfo] = {}
        for info in zf.infolist():
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            m = pattern.fullmatch(base)
            if m and not info.is_dir():
                members.setdefault((m.group(1).upper(), m.group(2).lower()), info)
        ext = next((e for e in SUPPORTED_EXTENSIONS
                    if all((s, e) in members for s in SPLITS)), None)
        if ext is None:
            listing = ", ".join(i.filename for i in zf.infolist()[:20])
            raise DownloadError(f"{zip_path.name} holds no {name}_TRAIN/_TEST pair in a supported "
                                f"format ({', '.join(SUPPORTED_EXTENSIONS)}); it contains: {listing}")
        out_dir.mkdir(parents=True, exist_ok=True)
        files = {}
        for split in SPLITS:
            info = members[(split, ext)]
            if info.file_size > MAX_EXTRACT_BYTES:
                raise DownloadError(f"{info.filename} in {zip_path.name} is {info.file_size} bytes, "
                                    f"over the {MAX_EXTRACT_BYTES}-byte limit")
            dest = out_dir / f"{name}_{split}.{ext}"
            with zf.open(info) as src, open(dest, "wb") as dst:
                copied = 0
                while block := src.read(1 << 20):
                    copied += len(block)
                    if copied > MAX_EXTRACT_BYTES:
                        raise DownloadError(f"{info.filename} expands past {MAX_EXTRACT_BYTES} bytes")
                    dst.write(block)
            files[split] = dest
    return files
