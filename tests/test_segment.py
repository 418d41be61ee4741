"""task=segment: episodes and corrective clicks against direct computations, the rhythm of every
step of data=ecg_stream against the annotations' rhythm notes, and the SAM-style segmenter end to
end on real MIT-BIH records."""
import numpy as np
import pytest

from tests.helpers import read_metrics, run_experiment
from utils.compose import compose_cfg
from utils.episodes import episodes, jittered_interval, largest_error_centre, random_error_point


def _runs_by_loop(labels, min_steps):
    out, start = [], 0
    for t in range(1, len(labels) + 1):
        if t == len(labels) or labels[t] != labels[start]:
            if labels[start] >= 0 and t - start >= min_steps:
                out.append((start, t, int(labels[start])))
            start = t
    return out


def test_episodes_are_the_runs_of_one_label():
    rng = np.random.default_rng(0)
    for _ in range(200):
        labels = np.repeat(rng.integers(-1, 3, size=12), rng.integers(1, 6, size=12))
        for min_steps in (1, 3):
            assert episodes(labels, min_steps) == _runs_by_loop(labels, min_steps)
    assert episodes(np.array([], dtype=int), 1) == []


def test_the_corrective_click_is_the_centre_of_the_largest_error_run():
    target = np.zeros(20, dtype=bool)
    target[5:15] = True
    pred = target.copy()
    assert largest_error_centre(pred, target) is None
    pred[5:11] = False                     # missed 5..10 (6 steps); spill 17..18 (2 steps)
    pred[17:19] = True
    assert largest_error_centre(pred, target) == (7, 1)
    pred[5:11] = True
    assert largest_error_centre(pred, target) == (17, 0)
    valid = np.ones(20, dtype=bool)
    valid[17:19] = False                   # steps with no rhythm noted never count
    assert largest_error_centre(pred, target, valid) is None
    rng = np.random.default_rng(0)
    clicks = {random_error_point(pred, target, rng) for _ in range(50)}
    assert clicks == {(17, 0), (18, 0)}


def test_a_noisy_interval_stays_in_the_window_and_near_the_episode():
    rng = np.random.default_rng(1)
    for _ in range(200):
        lo, hi = jittered_interval(100, 300, 350, rng)
        assert 0 <= lo <= hi <= 350
        assert abs(lo - 100) <= 40 + 1e-9 and (abs(hi - 300) <= 40 + 1e-9 or hi == 350)


def test_every_step_carries_the_rhythm_of_the_last_note(data_dir, cache_dir):
    import wfdb
    from data_provider.mitdb_stream import RHYTHM_NAMES, build
    cfg = compose_cfg([f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", "data=ecg_stream",
                       "data.ds1_records=[201,106]", "data.val_records=[106]", "data.ds2_records=[100]",
                       "data.window_seconds=60", "data.stride_seconds=60"])
    bundle = build(cfg)
    fs, a = bundle.meta["fs"], bundle.splits["train"].arrays
    ann = wfdb.rdann(str(data_dir / "mitdb" / "201"), "atr")
    notes = [(round(s * fs / 360.0), n.strip("\x00 ").lstrip("("))
             for s, sym, n in zip(ann.sample, ann.symbol, ann.aux_note) if sym == "+"]
    assert {"N", "AFIB", "SVTA"} <= {n for _, n in notes}
    for i in np.flatnonzero(a["record"].numpy() == 201):
        start, rhythm = int(a["start"][i]), a["rhythm"][i].numpy()
        for t in range(0, len(rhythm), 97):
            before = [n for s, n in notes if s <= start + t]
            want = RHYTHM_NAMES.index(before[-1]) if before else -1
            assert rhythm[t] == want


TINY_SAM = ["model=sam", "model.d_model=32", "model.backbone_channels=[8,16,32,32]",
            "model.encoder_layers=1", "model.d_ff=64", "model.num_heads=2"]


@pytest.mark.slow
def test_sam_segments_rhythm_episodes_of_real_records(tmp_path, data_dir, cache_dir, one_thread):
    run_experiment([f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", *TINY_SAM,
                    "data.ds1_records=[201,203,106]", "data.val_records=[106]",
                    "data.ds2_records=[222]", "trainer.device=cpu", "trainer.progress=false",
                    "logger.log_hparams=false", "trainer.batch_size=16", "trainer.max_epochs=2",
                    "trainer.log_every_n_steps=1"], tmp_path)
    m = read_metrics(tmp_path)
    test = m["test"]
    assert test["episodes"] > 10
    for key in ("miou_point", "miou_points_3", "miou_interval", "miou_point_mixed"):
        assert 0.0 <= test[key] <= 1.0
    assert {"N", "AFIB"} <= set(test["per_rhythm"])          # record 222: sinus rhythm and AF
    assert sum(v["episodes"] for v in test["per_rhythm"].values()) == test["episodes"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0}).Reload()
    losses = [e.value for e in ev.Scalars("train/loss")]
    assert np.mean(losses[-5:]) < np.mean(losses[:3])
