"""task=detect on data=ecg_stream: the windows carry exactly the annotated beats, a detector that
returns the reference beats scores Se = +P = 1 through the window merge and the EC57 comparison,
and DETR, Deformable DETR and YOLO train end to end on real MIT-BIH records (the loss falls,
every reference beat of the test record is accounted for, the streams are written)."""
import numpy as np
import pytest
import torch

from tests.helpers import read_metrics, run_experiment
from utils.compose import compose_cfg

RECORDS = ["data.ds1_records=[101,106,114]", "data.val_records=[106]", "data.ds2_records=[100]"]
TINY = {
    "yolo": ["model=yolo", "model.channels=[8,16,16,16]", "model.hidden=32", "model.head=conv"],
    "detr": ["model=detr", "model.d_model=32", "model.enc_layers=1", "model.dec_layers=1",
             "model.d_ff=64", "model.num_queries=32", "model.backbone_channels=[8,16,32,32]"],
    "deformable_detr": ["model=deformable_detr", "model.d_model=32", "model.enc_layers=1",
                        "model.dec_layers=1", "model.d_ff=64", "model.num_queries=32",
                        "model.backbone_channels=[8,16,32,32]"],
}


def _common(data_dir, cache_dir):
    return [f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", *RECORDS,
            "trainer.device=cpu", "trainer.progress=false", "logger.log_hparams=false"]


def _reference(data_dir, record):
    import wfdb
    from data_provider.mitdb_signal import AAMI_INDEX
    ann = wfdb.rdann(str(data_dir / "mitdb" / str(record)), "atr")
    keep = [i for i, s in enumerate(ann.symbol) if s in AAMI_INDEX]
    return (np.asarray(ann.sample)[keep],
            np.array([AAMI_INDEX[ann.symbol[i]] for i in keep]))


def test_windows_hold_exactly_the_annotated_beats(data_dir, cache_dir):
    from data_provider.mitdb_stream import build
    bundle = build(compose_cfg([*_common(data_dir, cache_dir), "data=ecg_stream"]))
    meta, fs, window = bundle.meta, bundle.meta["fs"], bundle.meta["window"]
    assert meta["enc_in"] == 2 and window == round(10 * fs)
    assert meta["leads"][114].startswith("MLII,")        # 114 stores MLII second: read first
    for split, records in (("train", [101, 114]), ("val", [106]), ("test", [100])):
        a = bundle.splits[split].arrays
        for r in records:
            samples, classes = _reference(data_dir, r)
            peaks = np.round(samples * fs / 360.0).astype(np.int64)
            rows = np.flatnonzero(a["record"].numpy() == r)
            seen = np.zeros(len(peaks), dtype=int)
            for i in rows:
                start, cls = int(a["start"][i]), a["beat_cls"][i].numpy()
                got = np.round(a["beat_pos"][i].numpy()[cls >= 0] * window).astype(np.int64) + start
                inside = (peaks >= start) & (peaks < start + window)
                np.testing.assert_array_equal(got, peaks[inside])
                np.testing.assert_array_equal(cls[cls >= 0], classes[inside])
                seen += inside
            assert seen.min() >= 1                      # every beat lies in some window
            assert int(a["start"][rows].max()) + window == meta["record_length"][r]


def _oracle_collected(ds, n_slots):
    """Detections equal to the targets: score 1 at every reference beat, 0 in the other slots."""
    a = ds.arrays
    cls = a["beat_cls"].numpy()
    score = np.zeros((len(cls), n_slots))
    label = np.zeros((len(cls), n_slots), dtype=np.int64)
    centre = np.zeros((len(cls), n_slots))
    m = cls.shape[1]
    score[:, :m], label[:, :m], centre[:, :m] = cls >= 0, np.maximum(cls, 0), a["beat_pos"].numpy()
    return {"score": score, "label": label, "centre": centre,
            "record": a["record"].numpy(), "start": a["start"].numpy()}


def test_reference_beats_as_detections_score_perfectly(tmp_path, data_dir, cache_dir):
    from exp.exp_detect import Exp_Detect
    exp = Exp_Detect(compose_cfg([*_common(data_dir, cache_dir), *TINY["yolo"]]), tmp_path)
    collected = _oracle_collected(exp.data.splits["test"], 40)
    samples, classes = _reference(data_dir, 100)
    after = samples >= 300 * 360                          # EC57: from 5 minutes on
    m = exp._score(collected, 0.5)
    assert m["se"] == 1.0 and m["ppv"] == 1.0 and m["tp"] == int(after.sum())
    for c, name in enumerate(exp.meta["class_names"]):
        n = int((classes[after] == c).sum())
        assert m["classes"][name]["n_ref"] == n
        if n:
            assert m["classes"][name]["se"] == 1.0 and m["classes"][name]["ppv"] == 1.0
    # each beat is seen by two overlapping windows, and merged into one detection
    streams = exp._streams(collected, 0.5)
    assert len(streams[100][0]) == len(samples)
    # a detector that finds nothing
    m = exp._score({**collected, "score": np.zeros_like(collected["score"])}, 0.5)
    assert m["tp"] == 0 and m["fn"] == int(after.sum()) and m["se"] == 0.0


def test_detect_refuses_beat_windows(tmp_path, data_dir, cache_dir):
    from exp.exp_detect import Exp_Detect
    cfg = compose_cfg([*_common(data_dir, cache_dir), *TINY["yolo"], "data=ecg"])
    with pytest.raises(ValueError, match="data=ecg_stream"):
        Exp_Detect(cfg, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["yolo", "detr", "deformable_detr"])
def test_detectors_train_on_real_records(tmp_path, data_dir, cache_dir, one_thread, model):
    epochs = {"yolo": 3, "detr": 2, "deformable_detr": 2}[model]
    run_experiment([*_common(data_dir, cache_dir), *TINY[model], "trainer.batch_size=32",
                    f"trainer.max_epochs={epochs}", "trainer.log_every_n_steps=1",
                    "optimizer.lr=1e-3"], tmp_path)
    m = read_metrics(tmp_path)
    samples, _ = _reference(data_dir, 100)
    test = m["test"]
    assert test["tp"] + test["fn"] == int((samples >= 300 * 360).sum())
    assert 0.1 <= test["threshold"] <= 0.9 and test["threshold"] == m["val"]["threshold"]
    found = np.load(tmp_path / "detections.npz")
    assert set(np.unique(found["record"])) <= {100}
    assert np.all(np.diff(found["sample"]) >= 0)          # one sorted stream, no window order left
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(tmp_path), size_guidance={"images": 1, "scalars": 0}).Reload()
    assert "test/detections" in ev.Tags()["images"]
    losses = [e.value for e in ev.Scalars("train/loss")]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:3])


def test_a_detector_checkpoint_resumes_the_same(tmp_path, data_dir, cache_dir, one_thread):
    """Two epochs in one go equal one epoch, a stop, and a resumed second epoch."""
    args = [*_common(data_dir, cache_dir), *TINY["yolo"], "trainer.batch_size=64", "seed=3"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    run_experiment([*args, "trainer.max_epochs=2"], whole)
    run_experiment([*args, "trainer.max_epochs=1"], part)
    run_experiment([*args, "trainer.max_epochs=2", "trainer.resume=true",
                    "trainer.resume_allow_changes=true"], part)
    a = torch.load(whole / "checkpoints" / "last.pt", weights_only=True)["model"]
    b = torch.load(part / "checkpoints" / "last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    assert read_metrics(whole)["test"]["tp"] == read_metrics(part)["test"]["tp"]


def _script(name):
    import importlib.util
    from tests.helpers import REPO
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "detect" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_beat_classifier_on_detected_beats(tmp_path, data_dir, cache_dir, one_thread):
    """Fed the reference beats, the script reproduces the classifier's own test figures; fed
    XQRS's beats, every reference beat is matched or counted missed."""
    run_dir = tmp_path / "classifier"
    run_experiment([f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
                    "task=classification", "model=resnet1d", "data=ecg", "model.widths=[8,8,8]",
                    *RECORDS, "trainer.max_steps=20", "trainer.device=cpu", "trainer.progress=false",
                    "logger.log_hparams=false"], run_dir)
    own = read_metrics(run_dir)["test"]["per_class"]
    out = _script("classify_detected").main([
        "--classifier", str(run_dir / "checkpoints" / "best.pt"), "--detections", "annotations", "xqrs",
        f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", "task.skip_seconds=0"])
    ref = out["annotations"]
    assert ref["se"] == 1.0 and ref["ppv"] == 1.0
    for name, figures in own.items():
        assert ref["classes"][name]["n_ref"] == figures["support"]
        if figures["support"]:
            assert ref["classes"][name]["se"] == pytest.approx(figures["sensitivity"], abs=1e-9)
    samples, _ = _reference(data_dir, 100)
    xqrs = out["xqrs"]
    assert xqrs["tp"] + xqrs["fn"] == len(samples) and xqrs["se"] > 0.95


def test_classical_detectors_find_the_beats_of_a_record(tmp_path, data_dir):
    out = _script("classical").main(["--records", "100", "--detectors", "xqrs", "gqrs",
                                     "--out", str(tmp_path / "c.json"), f"paths.data_dir={data_dir}"])
    samples, _ = _reference(data_dir, 100)
    for name in ("xqrs", "gqrs"):
        record = out[name]["per_record"]["100"]
        assert record["tp"] + record["fn"] == int((samples >= 300 * 360).sum())
        assert out[name]["sensitivity"] > 0.99 and out[name]["positive_predictivity"] > 0.99
    assert (tmp_path / "c.json").is_file()
