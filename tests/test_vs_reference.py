"""scripts/bench/vs_reference.py: the official TS2Vec loader's view of a UCR set (its .tsv files,
or a .ts set written as .tsv with the same labels and values) and the parsing of the official
code's printed time and accuracy."""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_provider.ucr_uea import locate, parse_files
from scripts.bench.references.ts2vec import parse_reference_log, reference_dataset
from tests.helpers import require_ucr


def test_a_ts_set_is_written_as_the_tsv_the_official_loader_reads(data_dir, tmp_path):
    require_ucr(data_dir, "GunPoint")
    reference_dataset(data_dir, "GunPoint", tmp_path)
    arrays = parse_files(locate(data_dir / "UCR" / "GunPoint", "GunPoint"))
    for split in ("train", "test"):
        table = pd.read_csv(tmp_path / "GunPoint" / f"GunPoint_{split.upper()}.tsv", sep="\t", header=None)
        values = table.iloc[:, 1:].to_numpy(np.float32)
        assert values.shape == arrays[f"x_{split}"][..., 0].shape == (len(table), 150)
        np.testing.assert_array_equal(values, arrays[f"x_{split}"][..., 0])   # exact round trip
        assert [str(v) for v in table[0]] == [str(int(float(v))) for v in arrays[f"labels_{split}"]]


def test_a_tsv_set_is_used_as_it_is(data_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    reference_dataset(data_dir, "ECG200", tmp_path)
    assert (tmp_path / "ECG200").is_symlink()
    assert (tmp_path / "ECG200" / "ECG200_TRAIN.tsv").read_bytes() == \
        (data_dir / "UCR" / "ECG200" / "ECG200_TRAIN.tsv").read_bytes()


def test_official_time_and_accuracy_are_read_from_its_output():
    log = ("Training time: 1:02:03.500000\n\n"
           "Evaluation result: {'acc': 0.88, 'auprc': 0.9769241156457482}\n")
    assert parse_reference_log(log) == (3723.5, 0.88)
    assert parse_reference_log("Traceback ...") == (None, None)
