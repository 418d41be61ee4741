"""CPC, TF-C, MAE, wav2vec 2.0 and COMET pretrain a few steps on real MIT-BIH beats and
their loss falls."""
from __future__ import annotations

import numpy as np
import pytest
import torch


# tiny models: one thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------------------- real ECG
SMALL_ECG = ["data=ecg", "data.ds1_records=[101,118]", "data.val_records=[118]",
             "data.ds2_records=[100]"]
TINY = {
    "cpc": ["model.enc_dim=32", "model.context_dim=32"],
    "tfc": ["model.proj_hidden=64", "model.proj_dim=32"],
    "mae": ["model.embed_dim=32", "model.depth=2", "model.num_heads=2", "model.decoder_dim=16",
            "model.decoder_depth=1", "model.decoder_heads=2"],
    "wav2vec2": ["model.conv_layers=[[32,10,2],[32,3,2],[32,3,2]]", "model.d_model=32",
                 "model.depth=2", "model.num_heads=2", "model.ffn_dim=64", "model.final_dim=16",
                 "model.num_vars=32", "model.conv_pos=16", "model.conv_pos_groups=4",
                 "loss.num_negatives=20"],
    "comet": ["model.output_dims=32", "model.hidden_dims=16", "model.depth=3"],
}
STEPS = 30


def _fixed_loss(model, criterion, batch) -> float:
    """Mean loss over three fixed random draws (augmentations, masks) on one batch."""
    values = []
    with torch.no_grad():
        for seed in range(3):
            torch.manual_seed(seed)
            out = criterion(model(batch), batch)
            values.append(float(out["loss"] if isinstance(out, dict) else out))
    return float(np.mean(values))


def _cfg(name, data_dir, cache_dir):
    from utils.compose import compose_cfg
    return compose_cfg([f"model={name}", *SMALL_ECG, *TINY[name], f"paths.data_dir={data_dir}",
                        f"paths.cache_dir={cache_dir}", "trainer.device=cpu",
                        "trainer.progress=false", "trainer.max_epochs=1",
                        f"trainer.max_steps={STEPS}", "trainer.batch_size=32", "optimizer.lr=1e-3"])


@pytest.mark.parametrize("name", ["cpc", "tfc", "mae", "wav2vec2"])
def test_pretrains_on_real_ecg_and_loss_falls(name, data_dir, cache_dir, tmp_path):
    from exp.exp_pretrain import Exp_Pretrain
    from utils.seed import seed_everything

    cfg = _cfg(name, data_dir, cache_dir)
    seed_everything(0)
    exp = Exp_Pretrain(cfg, tmp_path)
    batch = exp.data.splits["train"].__getitems__(list(range(0, 2048, 16)))   # 128 beats, 2 records
    before = _fixed_loss(exp.model.train(), exp.criterion, batch)
    exp.train()
    assert exp.state["step"] == STEPS
    after = _fixed_loss(exp.model.train(), exp.criterion, batch)
    print(f"{name}: loss {before:.4f} -> {after:.4f}")
    assert after < before - 0.02 * abs(before), f"{name}: loss {before:.4f} -> {after:.4f}"
    reps = exp.model.encode(batch["x"], pooling="max")
    assert reps.shape == (128, exp.model.repr_dim) and torch.isfinite(reps).all()


def test_comet_pretrains_on_real_ecg_patients_and_loss_falls(data_dir, cache_dir):
    """COMET needs patient_id/index in the batch, which the data family gives; driven by a
    plain loop over batches of consecutive beats (the official trial-grouped batches)."""
    from omegaconf import open_dict

    from data_provider.base import ArrayDataset
    from data_provider.data_factory import data_provider
    from utils.instantiate import build

    cfg = _cfg("comet", data_dir, cache_dir)
    with open_dict(cfg):
        cfg.task.name = "pretrain"
    splits = data_provider(cfg).splits          # unlabelled beats of record 101 (train), 118 (val)
    assert {"patient_id", "index"} <= set(splits["train"].arrays)
    train = ArrayDataset(**{k: torch.cat([splits["train"].arrays[k], splits["val"].arrays[k]])
                            for k in ("x", "patient_id", "index")})
    torch.manual_seed(0)
    model = build(cfg.model, in_channels=1)
    criterion = build(cfg.loss)
    n = len(train)
    eval_batch = train.__getitems__([s + j for s in (0, 400, 1200, 2000, 2600, 3400) for j in range(10)])
    assert len(set(eval_batch["patient_id"].tolist())) == 2
    before = _fixed_loss(model.train(), criterion, eval_batch)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    for step in range(15):
        starts = torch.randint(0, n - 10, (4,), generator=gen)
        batch = train.__getitems__([int(s) + j for s in starts for j in range(10)])
        loss = criterion(model(batch), batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_optimizer_step(step)
    after = _fixed_loss(model.train(), criterion, eval_batch)
    print(f"comet: loss {before:.4f} -> {after:.4f}")
    assert after < before - 0.02 * abs(before), f"comet: loss {before:.4f} -> {after:.4f}"
    assert model.encode(eval_batch["x"]).shape == (60, 32)
