"""scripts/ssl/summarise_ssl.py reads the benchmark's run directories (main evaluation under
"test", the others under "evaluations") into the long and the per-method tables."""
import json
import sys

from tests.helpers import REPO

sys.path.insert(0, str(REPO / "scripts" / "ssl"))
import summarise_ssl  # noqa: E402


def _run(root, method, seed, f1, acc, secs):
    d = root / "ecg" / method / f"seed{seed}"
    d.mkdir(parents=True)
    (d / "benchmark.json").write_text(json.dumps({"data": "ecg", "method": method, "seed": seed}))
    result = {"macro_f1": f1, "accuracy": acc, "label_fraction": 1.0}
    (d / "metrics.json").write_text(json.dumps({
        "test": {**result, "protocol": "linear"},
        "evaluations": {"knn@0.01": {**result, "protocol": "knn", "label_fraction": 0.01,
                                     "macro_f1": f1 / 2}},
        "train_seconds": secs}))


def test_tables_average_seeds_and_list_every_evaluation(tmp_path, capsys):
    _run(tmp_path, "simclr", 0, 0.4, 0.9, 100.0)
    _run(tmp_path, "simclr", 1, 0.6, 0.8, 200.0)
    _run(tmp_path, "random", 0, 0.5, 0.7, None)
    assert summarise_ssl.main([str(tmp_path)]) == 0
    out = (tmp_path / "summary.md").read_text()
    assert "| ecg | simclr | linear | 1 | 2 | 0.500 ± 0.141 | 0.850 ± 0.071 | 150 |" in out
    assert "| ecg | simclr | knn | 0.01 | 2 | 0.250 ± 0.071 |" in out
    # per-method table: random first, columns per protocol@fraction
    assert "| data | method | knn@0.01 F1 / acc | linear@1 F1 / acc | seeds | pretrain s |" in out
    assert "| ecg | random | 0.250 / 0.700 | 0.500 / 0.700 | 1 | – |" in out
    assert out.index("| ecg | random | 0.250") < out.index("| ecg | simclr | 0.250")
    assert "simclr" in capsys.readouterr().out


def test_each_method_is_set_beside_the_random_encoder_of_its_architecture(tmp_path):
    """ResNet methods against "random", COMET against random-ts2vec, CPC against random-cpc;
    the gain is in points of the seed means and the count applies the margin."""
    _run(tmp_path, "random", 0, 0.40, 0.9, None)
    _run(tmp_path, "random-ts2vec", 0, 0.30, 0.9, None)
    _run(tmp_path, "random-cpc", 0, 0.50, 0.9, None)
    _run(tmp_path, "moco", 0, 0.44, 0.9, 10.0)
    _run(tmp_path, "moco", 1, 0.48, 0.9, 10.0)          # mean 0.46: +6 over random
    _run(tmp_path, "comet", 0, 0.32, 0.9, 10.0)         # +2 over random-ts2vec (not random: -8)
    _run(tmp_path, "cpc", 0, 0.45, 0.9, 10.0)           # -5 over random-cpc (random: +5)
    assert summarise_ssl.main([str(tmp_path), "--margin", "5"]) == 0
    out = (tmp_path / "summary.md").read_text()
    assert "| data | method | random row | knn@0.01 gain | linear@1 gain |" in out
    assert "| ecg | moco | random | +3.0 | +6.0 |" in out
    assert "| ecg | comet | random-ts2vec | +1.0 | +2.0 |" in out
    assert "| ecg | cpc | random-cpc | -2.5 | -5.0 |" in out
    assert "ecg linear@1: 1 of 3 methods gain at least 5 points" in out
    assert "ecg knn@0.01: 0 of 3 methods" in out
