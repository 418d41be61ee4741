"""Parsers for the file formats of the UCR/UEA time-series classification archives.

No installed dependency reads the sktime/aeon ``.ts`` format, so it is parsed here. Every
reader returns a :class:`RawSplit`: one float64 array [length_i, channels] per case (NaN =
missing or padding) plus the class labels exactly as written in the file.

Formats:
- ``.ts``  (sktime/aeon): ``#`` comments, ``@``-header (``@problemName``, ``@univariate``,
  ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@missing``, ``@classLabel true a b``,
  ``@data``), then one case per line: channels separated by ``:``, values by ``,``, label
  last, ``?`` = missing. Channels (and cases) may differ in length. Header keys are matched
  case-insensitively (files written from R or older sktime spell them differently).
- ``.tsv`` (UCR 2018): label first, tab separated; variable-length series are NaN padded.
- ``.txt`` (old UCR): label first, whitespace separated (labels often like ``1.0000000e+00``).
Files are read as UTF-8 with undecodable bytes replaced: some archive files carry Latin-1
characters in their ``#`` comments, and the values themselves are ASCII.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_EXTENSIONS = ("ts", "tsv", "txt")  # preference order when several are present


# How to fix a damaged archive file; every refusal of one ends with it.
CLEAN_COPY = ("replace the file with a clean copy from the official archive "
              "https://www.timeseriesclassification.com/ (or delete the dataset folder and run "
              "with data.download=true)")


class TsFormatError(ValueError):
    pass


@dataclass
class RawSplit:
    series: list[np.ndarray]  # each [length_i, channels] float64, NaN = missing
    labels: list[str]
    path: str = ""

    def __len__(self) -> int:
        return len(self.series)

    @property
    def n_channels(self) -> int:
        return self.series[0].shape[1] if self.series else 0

    @property
    def lengths(self) -> np.ndarray:
        return np.array([s.shape[0] for s in self.series], dtype=np.int64)


def read_split(path: str | Path) -> RawSplit:
    """Read one TRAIN or TEST file, choosing the parser by extension."""
    path = Path(path)
    ext = path.suffix.lower().lstrip(".")
    if ext == "ts":
        return read_ts(path)
    if ext == "tsv":
        return read_label_first(path, sep="\t")
    if ext == "txt":
        return read_label_first(path, sep=None)
    raise TsFormatError(f"{path}: unsupported extension '.{ext}'; supported: "
                        f"{', '.join('.' + e for e in SUPPORTED_EXTENSIONS)}")


def _values(tokens: list[str], where: str) -> np.ndarray:
    # '?' (ts), 'NaN'/'nan' (tsv/txt) and empty fields are missing values.
    cleaned = ["nan" if t in ("?", "") else t for t in (t.strip() for t in tokens)]
    try:
        return np.asarray(cleaned, dtype=np.float64)
    except ValueError:
        i, bad = _first_non_number(cleaned)
        raise TsFormatError(f"{where}: value {i} ('{bad}') is not a number (a missing value is "
                            f"written '?' or NaN); {CLEAN_COPY}") from None


def _first_non_number(tokens: list[str]) -> tuple[int, str]:
    """(1-based position, text) of the first token that float() does not read."""
    for i, t in enumerate(tokens, 1):
        try:
            float(t)
        except ValueError:
            return i, t
    return 0, ""


def read_label_first(path: str | Path, sep: str | None) -> RawSplit:
    """UCR ``.tsv`` (sep='\\t') or old whitespace ``.txt`` (sep=None): label, then values.

    Every row holds the same number of values (the archive pads variable-length series with
    NaN), so a row with another count is a damaged or cut line: refused, never padded.
    """
    path = Path(path)
    series, labels = [], []
    width = first = None
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            tokens = line.split(sep)
            where = f"{path}, line {lineno}"
            if len(tokens) < 2:
                raise TsFormatError(f"{where}: expected a label and at least one value; {CLEAN_COPY}")
            if width is None:
                width, first = len(tokens), lineno
            elif len(tokens) != width:
                raise TsFormatError(_ragged_message(path, where, len(tokens) - 1, first, width - 1))
            values = _values(tokens[1:], where)
            # UCR 2018 pads variable-length series with trailing NaN: recover the true length
            observed = np.flatnonzero(~np.isnan(values))
            values = values[: observed[-1] + 1] if len(observed) else values[:1]
            labels.append(tokens[0].strip())
            series.append(values[:, None])
    if not series:
        raise TsFormatError(f"{path}: no data lines")
    return RawSplit(series, labels, str(path))


def _ragged_message(path: Path, where: str, n: int, first: int, width: int) -> str:
    return (f"{where}: {n} values after the label, but line {first} has {width}; every row of "
            f"a .{path.suffix.lstrip('.')} file holds the same number of values (variable-length "
            f"sets are NaN-padded there, or come as .ts), so this line is damaged or cut; "
            f"{CLEAN_COPY}")


def _parse_header(path: Path, lines) -> tuple[dict, int]:
    """Read header lines up to @data; returns (header, line number of @data)."""
    header: dict = {}
    for lineno, raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path}, line {lineno}"
        if not line.startswith("@"):
            raise TsFormatError(f"{where}: data before the '@data' line")
        key, _, rest = line[1:].partition(" ")
        key, rest = key.lower(), rest.strip()
        if key == "data":
            return header, lineno
        if key == "classlabel":
            flag, *names = rest.split() or [""]
            header["classlabel"] = flag.lower() == "true"
            header["class_names"] = names
        elif key in ("univariate", "equallength", "missing", "timestamps"):
            header[key] = rest.split()[0].lower() == "true" if rest else False
        elif key in ("dimensions", "serieslength"):
            header[key] = _header_int(rest, line.split()[0], where)
        else:
            header[key] = rest
    raise TsFormatError(f"{path}: no '@data' line; is this an sktime/aeon .ts file?")


def _header_int(text: str, field: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TsFormatError(f"{where}: {field} '{text}' is not an integer, so the header is "
                            f"damaged; {CLEAN_COPY}") from None


def _case(channels: list[str], where: str) -> np.ndarray:
    """One case [length, channels]; a shorter channel is missing at its end."""
    chans = [_values(c.rstrip(",").split(","), f"{where}, dimension {j}")
             for j, c in enumerate(channels, 1)]
    case = np.full((max(len(c) for c in chans), len(chans)), np.nan)
    for j, c in enumerate(chans):
        case[: len(c), j] = c
    return case


def _check_header_for_cases(path: Path, header: dict) -> None:
    if header.get("timestamps"):
        raise TsFormatError(f"{path}: '@timeStamps true' (timestamped values) is not supported; "
                            "use the archive's plain-value version of the dataset")
    if "targetlabel" in header:
        raise TsFormatError(f"{path}: '@targetLabel' marks a regression problem; only "
                            "classification files (@classLabel true ...) are supported")
    if not header.get("classlabel", False):
        raise TsFormatError(f"{path}: the header has no '@classLabel true <labels>' line, so the "
                            "cases carry no class label")


def read_ts(path: str | Path) -> RawSplit:
    """sktime/aeon ``.ts`` classification file (multivariate, unequal length, '?' missing)."""
    path = Path(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = enumerate(f, 1)
        header, _ = _parse_header(path, lines)
        _check_header_for_cases(path, header)
        n_dims = header.get("dimensions", 1 if header.get("univariate", True) else None)
        # where the dimension count comes from, for the message when a line disagrees
        source = "the header" if n_dims is not None else None
        allowed = set(header.get("class_names", []))
        series, labels = [], []
        for lineno, raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            *channels, label = line.split(":")
            label = label.strip()
            where = f"{path}, line {lineno}"
            if not channels:
                raise TsFormatError(f"{where}: expected '<values>[:<values>...]:<label>'; "
                                    f"{CLEAN_COPY}")
            if allowed and label not in allowed:
                raise TsFormatError(f"{where}: label '{label}' is not among the header's "
                                    f"@classLabel values {sorted(allowed)}")
            if n_dims is None:
                n_dims, source = len(channels), f"line {lineno}"
            if len(channels) != n_dims:
                raise TsFormatError(f"{where}: {len(channels)} dimensions (':'-separated value "
                                    f"lists), but {source} says {n_dims}; the line is damaged; "
                                    f"{CLEAN_COPY}")
            series.append(_case(channels, where))
            labels.append(label)
    if not series:
        raise TsFormatError(f"{path}: no cases after '@data'")
    return RawSplit(series, labels, str(path))


def pad_series(series: list[np.ndarray], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stack cases into x [N, T, C] float32 and mask [N, T] bool (True = observed).

    As in TS2Vec, a time step with any NaN channel counts as missing: it is masked and set
    to 0 in every channel, so a model never reads a NaN and a masked step carries no value.
    Padding after a short case is missing too.
    """
    n = len(series)
    channels = series[0].shape[1]
    t_max = max(s.shape[0] for s in series)
    length = t_max if length is None else length
    if length < t_max:
        raise ValueError(f"pad length {length} is shorter than the longest case ({t_max})")
    x = np.full((n, length, channels), np.nan, dtype=np.float64)
    for i, s in enumerate(series):
        x[i, : s.shape[0]] = s
    mask = ~np.isnan(x).any(axis=-1)
    x[~mask] = 0.0
    return x.astype(np.float32), mask


def canonical_label(label: str) -> str:
    """Numeric labels by value ('1.0000000e+00' == '1' -> '1'), other labels unchanged."""
    try:
        v = float(label)
    except ValueError:
        return label
    if math.isfinite(v) and v.is_integer():
        return str(int(v))
    return repr(v)
