"""task=explain end to end: train a small ResNet1D on a few MIT-BIH records for one epoch
with main.py's run(), then explain its checkpoint."""
import numpy as np
import pytest
import torch

from models.resnet1d import ResNet1D
from tests.helpers import read_metrics, run_experiment
from utils.explain.deletion import curve_auc

pytestmark = pytest.mark.slow

METHODS = ("cam", "gradcam", "guided_backprop", "guided_gradcam")
# train on 106, select on 119, test on 233: N, S, V and F beats, about 7000 in all
RECORDS = ["data.ds1_records=[106,119]", "data.val_records=[119]", "data.ds2_records=[233]"]


def _common(data_dir, cache_dir):
    return [f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", "trainer.device=cpu",
            "trainer.progress=false", "logger.log_hparams=false"]


def test_explain_task_on_a_small_mitdb_classifier(tmp_path, data_dir, cache_dir, one_thread):
    train_dir, explain_dir = tmp_path / "train", tmp_path / "explain"
    run_experiment(["task=classification", "model=resnet1d", "data=ecg", *RECORDS,
                    "model.widths=[16,16]", "trainer.max_epochs=1", "trainer.batch_size=256",
                    *_common(data_dir, cache_dir)], train_dir)
    ckpt = train_dir / "checkpoints" / "best.pt"
    run_experiment(["task=explain", f"task.checkpoint={ckpt}", "task.samples_per_class=2",
                    "data=ecg", *_common(data_dir, cache_dir)], explain_dir)

    m = read_metrics(explain_dir)["test"]
    assert m["gradcam_layer"] == "blocks" and m["skipped"] == {}
    auc = m["deletion_auc"]
    assert set(auc) == {*METHODS, "random"}
    assert all(0.0 <= v["all"] <= 1.0 for v in auc.values())
    assert "V" in auc["gradcam"] and "N" in auc["gradcam"]
    # even a one-epoch model: deleting the salient steps first (interpolated, the default)
    # lowers the class score faster than a random order
    assert auc["gradcam"]["all"] < auc["random"]["all"] and auc["cam"]["all"] < auc["random"]["all"]

    z = np.load(explain_dir / "explanations.npz")
    n, t = z["x"].shape[:2]
    assert n == m["explained"] and t > 100 and z["x"].shape[2] == 1           # whole beats
    assert z["map_cam"].shape == z["map_gradcam"].shape == (n, t)            # input length
    assert z["map_guided_backprop"].shape == z["map_guided_gradcam"].shape == (n, t, 1)
    assert z["profile_gradcam"].shape == (5, t)
    assert z["deletion_curve_random"].shape == (n, 11)
    np.testing.assert_allclose(z["deletion_auc_gradcam"].mean(), auc["gradcam"]["all"])
    # ResNet1D ends in GAP + linear: Grad-CAM at its conv stack is ReLU(CAM) / T
    np.testing.assert_allclose(z["map_gradcam"] * t, np.maximum(z["map_cam"], 0),
                               rtol=1e-3, atol=1e-5)
    # the explained model is the checkpoint's: same scores from a fresh load
    model = ResNet1D(1, 5, widths=(16, 16), extra_features=z["input_features"].shape[1])
    model.load_state_dict(torch.load(ckpt, weights_only=True)["model"])
    with torch.no_grad():
        probs = model.eval()(torch.from_numpy(z["x"]),
                             torch.from_numpy(z["input_features"])).softmax(-1)
    np.testing.assert_allclose(probs.numpy(), z["probs"], rtol=1e-4, atol=1e-5)
    # deletion at 0 % is the unmodified score of the explained class
    np.testing.assert_allclose(z["deletion_curve_gradcam"][:, 0],
                               z["probs"][np.arange(n), z["target"]], rtol=1e-4, atol=1e-5)
    assert np.allclose(curve_auc(z["deletion_fractions"], z["deletion_curve_cam"]),
                       z["deletion_auc_cam"])

    pngs = sorted(p.name for p in (explain_dir / "explain").glob("*.png"))
    assert len(pngs) == n + 1 and "class_profiles.png" in pngs
    assert any(p.startswith("V_") for p in pngs)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    ev = EventAccumulator(str(explain_dir), size_guidance={"images": 0}).Reload()
    tags = ev.Tags()["images"]
    assert "explain/class_profiles" in tags and sum(t.startswith("explain/V/") for t in tags) >= 1
