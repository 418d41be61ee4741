"""Several processes (torchrun; gloo on the CPU, 2 ranks): batches sharded with equal counts,
2 ranks x batch b equal to 1 process x 2b, gathered contrastive losses equal to the one-process
loss and gradients, method state kept equal across ranks, one set of outputs, and a killed
2-rank run that resumes to the uninterrupted result."""
import json
import os
import subprocess
import sys

import pytest
import torch

from data_provider.loader import batch_indices
from tests.distributed_worker import free_port, spawn
from tests.helpers import REPO, require_ucr

ECG200 = ["data=ucr", "data.name=ECG200", "trainer.device=cpu", "trainer.progress=false",
          "trainer.num_threads=1"]
SIMCLR = ["model=simclr", *ECG200, "model.repr_dim=16", "model.encoder_kwargs.widths=[16,16]",
          "model.encoder_kwargs.kernel_sizes=[8,3]", "trainer.batch_size=16"]


@pytest.mark.parametrize("n,batch,drop_last", [(100, 16, False), (96, 16, False), (100, 16, True),
                                               (7, 4, False)])
def test_ranks_get_disjoint_equal_shares_of_each_global_batch(n, batch, drop_last):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    one = batch_indices(order, 2 * batch, drop_last)
    ranks = [batch_indices(order, batch, drop_last, world=2, rank=r) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one)
    for step, (a, b) in enumerate(zip(*ranks)):
        assert len(a) == len(b)
        if len(one[step]) == 2 * batch:           # a full global batch: exactly the union
            assert torch.equal(torch.cat([a, b]), one[step])
    seen = torch.cat([torch.cat(r) for r in ranks])
    if not drop_last:                             # every sample of the epoch, some twice at most
        assert set(seen.tolist()) == set(order.tolist())


def test_gathered_nt_xent_equals_the_one_process_loss_and_gradients(tmp_path):
    from utils.losses.simclr import NTXentLoss
    z1, z2 = torch.randn(8, 5, generator=torch.Generator().manual_seed(1)), torch.randn(8, 5)
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    loss = NTXentLoss(0.5)({"z1": a, "z2": b}, {})
    loss.backward()
    ranks = spawn("gathered_nt_xent", 2, tmp_path, z1=z1, z2=z2)
    for r, out in enumerate(ranks):
        assert out["loss"] == pytest.approx(loss.item(), rel=1e-6)
        # each rank's gradient is world x the one-process one; DDP's mean over ranks undoes it
        rows = slice(4 * r, 4 * r + 4)
        assert torch.allclose(out["grad1"] / 2, a.grad[rows], atol=1e-6)
        assert torch.allclose(out["grad2"] / 2, b.grad[rows], atol=1e-6)


def _torchrun(args, nproc: int):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
                           f"--master_port={free_port()}", "main.py", *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def test_two_ranks_equal_one_process_with_the_double_batch_and_write_one_run(data_dir, tmp_path):
    """A model without batch norm or dropout: the averaged gradients of 2 x 8 samples are
    those of 16, so the trained weights match; rank 0 alone writes the run directory. (SGD:
    Adam would blow the rounding noise of a gradient that is zero in exact arithmetic, the
    attention's key bias, up to its step size.)"""
    require_ucr(data_dir, "ECG200")
    base = ["task=classification", "model=transformer", *ECG200, "model.d_model=16",
            "model.n_heads=2", "model.n_layers=1", "model.d_ff=32", "model.dropout=0.0",
            "optimizer=sgd", "optimizer.lr=0.05", "trainer.max_epochs=2", f"paths.data_dir={data_dir}"]
    one = subprocess.run([sys.executable, "main.py", *base, "trainer.batch_size=16",
                          f"hydra.run.dir={tmp_path / 'one'}"], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    two = _torchrun([*base, "trainer.batch_size=8", f"hydra.run.dir={tmp_path / 'two'}"], 2)
    assert two.returncode == 0, two.stderr
    a = torch.load(tmp_path / "one/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "two/checkpoints/last.pt", weights_only=True)
    assert a["state"]["step"] == b["state"]["step"] == 10 and len(b["rng_ranks"]) == 2
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-5) for k in a["model"])
    ma = json.loads((tmp_path / "one/metrics.json").read_text())
    mb = json.loads((tmp_path / "two/metrics.json").read_text())
    assert ma["test"]["accuracy"] == mb["test"]["accuracy"]
    assert ma["test"]["loss"] == pytest.approx(mb["test"]["loss"], abs=1e-4)
    assert len(list((tmp_path / "two").glob("events.out.tfevents.*"))) == 1
    assert sorted(p.name for p in (tmp_path / "two" / ".hydra").iterdir()) == \
        ["config.yaml", "hydra.yaml", "overrides.yaml"]


def test_one_rank_is_the_single_process_run(data_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    args = ["task=classification", "model=resnet1d", *ECG200, "model.widths=[8,8]",
            "trainer.max_epochs=1", f"paths.data_dir={data_dir}"]
    one = subprocess.run([sys.executable, "main.py", *args, f"hydra.run.dir={tmp_path / 'a'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    rank = _torchrun([*args, f"hydra.run.dir={tmp_path / 'b'}"], 1)
    assert one.returncode == 0 and rank.returncode == 0, one.stderr + rank.stderr
    ma, mb = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("a", "b"))
    assert ma["test"] == mb["test"] and ma["val"] == mb["val"]


@pytest.mark.parametrize("method,extra", [
    ("moco", ["model.queue_size=64"]),
    ("instdisc", ["model.nce_k=16", "model.feature_dim=16"]),
    ("dino", ["model.out_dim=64", "model.hidden_dim=16", "model.bottleneck_dim=8",
              "model.n_local_crops=2"]),
    ("byol", ["model.proj_hidden_dim=16", "model.pred_hidden_dim=16", "model.proj_dim=8"]),
])
def test_method_state_is_updated_from_every_rank_and_stays_equal(method, extra, data_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    overrides = [*SIMCLR[1:], f"model={method}", *extra, "trainer.max_steps=3",
                 f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    ranks = spawn("train_steps", 2, tmp_path, overrides=overrides, run_dir=str(tmp_path / "run"))
    s0, s1 = ranks[0]["state"], ranks[1]["state"]
    assert ranks[0]["step"] == ranks[1]["step"] == 3
    # weights, EMA teachers, queues, banks and centres agree; batch-norm statistics are each
    # rank's own (rank 0's are saved; trainer.sync_batchnorm=true shares them on GPUs)
    shared = [k for k in s0 if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
    assert all(torch.equal(s0[k], s1[k]) for k in shared), \
        [k for k in shared if not torch.equal(s0[k], s1[k])][:5]
    if method == "moco":                       # 3 steps of 2 ranks x 16 keys
        assert int(s0["queue_ptr"]) == (3 * 2 * 16) % 64


def test_a_killed_two_rank_run_resumes_to_the_uninterrupted_result(data_dir, tmp_path):
    require_ucr(data_dir, "ECG200")
    overrides = [*SIMCLR, "trainer.max_steps=null", "trainer.max_epochs=3",
                 f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    full = spawn("train_steps", 2, tmp_path / "full", overrides=overrides,
                 run_dir=str(tmp_path / "full"))
    per_epoch = full[0]["batches"]
    spawn("train_steps", 2, tmp_path / "killed", overrides=overrides,
          run_dir=str(tmp_path / "killed"), kill_at=per_epoch + 2)     # inside epoch 2
    resumed = spawn("train_steps", 2, tmp_path / "resumed", overrides=overrides,
                    run_dir=str(tmp_path / "killed"), resume=True)
    assert resumed[0]["step"] == full[0]["step"] == 3 * per_epoch
    a, b = full[0]["state"], resumed[0]["state"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)
