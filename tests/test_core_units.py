"""Unit behaviour of the framework core: metrics, checkpoints, loaders, RNG state."""
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from data_provider.base import ArrayDataset
from data_provider.loader import make_loader
from utils.atomic import save_atomic
from utils.checkpoint import load_checkpoint
from utils.metrics import classification_metrics
from utils.seed import get_rng_state, set_rng_state


def test_per_class_sensitivity_and_ppv_by_hand():
    y = np.array([0, 0, 0, 1, 1, 2])
    pred = np.array([0, 0, 1, 1, 2, 2])
    logits = np.eye(3)[pred] * 5.0
    m = classification_metrics(y, logits, ["N", "S", "V"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_class"]["N"]["sensitivity"] == pytest.approx(2 / 3)
    assert m["per_class"]["N"]["ppv"] == pytest.approx(1.0)
    assert m["per_class"]["S"]["sensitivity"] == pytest.approx(1 / 2)
    assert m["per_class"]["S"]["ppv"] == pytest.approx(1 / 2)
    assert m["per_class"]["V"]["ppv"] == pytest.approx(1 / 2)
    f1 = [2 * 1 * (2 / 3) / (1 + 2 / 3), 0.5, 2 * 0.5 * 1 / 1.5]
    assert m["macro_f1"] == pytest.approx(np.mean(f1))
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_absent_class_is_reported_not_counted_in_macro_f1():
    y = np.array([0, 0, 1, 1])
    logits = np.eye(3)[[0, 0, 1, 1]]
    m = classification_metrics(y, logits, ["a", "b", "c"])
    assert m["macro_f1"] == pytest.approx(1.0)
    assert np.isnan(m["per_class"]["c"]["sensitivity"])


def test_eval_loader_keeps_every_sample_and_train_order_depends_on_epoch_only():
    ds = ArrayDataset(x=torch.arange(103).float()[:, None, None], y=torch.arange(103))
    seen = torch.cat([b["y"] for b in make_loader(ds, batch_size=10, train=False, seed=0, drop_last=True)])
    assert seen.tolist() == list(range(103))
    a = [b["y"] for b in make_loader(ds, batch_size=10, train=True, seed=3, epoch=5)]
    torch.manual_seed(123)  # global RNG must not matter
    b = [b["y"] for b in make_loader(ds, batch_size=10, train=True, seed=3, epoch=5)]
    c = [b["y"] for b in make_loader(ds, batch_size=10, train=True, seed=3, epoch=6)]
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    assert sorted(torch.cat(a).tolist()) == list(range(103))


def test_atomic_save_keeps_old_checkpoint_when_writing_fails(tmp_path):
    path = tmp_path / "best.pt"
    save_atomic({"w": torch.ones(3)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("simulated crash while writing")

    with pytest.raises(RuntimeError):
        save_atomic({"w": Unpicklable()}, path)
    assert torch.equal(load_checkpoint(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["best.pt"]  # no temp file left


def test_rng_state_round_trip_through_weights_only_checkpoint(tmp_path):
    random.seed(1); np.random.seed(1); torch.manual_seed(1)
    save_atomic({"rng": get_rng_state()}, tmp_path / "r.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9); np.random.seed(9); torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "r.pt")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="best.pt"):
        load_checkpoint(tmp_path / "nope.pt")


def test_max_per_class_caps_each_class_and_mixes_classes_through_the_epoch():
    y = torch.cat([torch.zeros(900), torch.ones(60), torch.full((40,), 2)]).long()
    ds = ArrayDataset(x=torch.randn(1000, 4, 1), y=y)
    batches = list(make_loader(ds, batch_size=20, train=True, seed=0, epoch=0, max_per_class=100))
    labels = torch.cat([b["y"] for b in batches])
    assert torch.bincount(labels).tolist() == [100, 60, 40]
    # the majority class is spread over the epoch, not bunched at its start
    first, second = labels[:100], labels[100:]
    assert 25 <= int((first == 0).sum()) <= 75 and 25 <= int((second == 0).sum()) <= 75
    other = torch.cat([b["y"] for b in make_loader(ds, batch_size=20, train=True, seed=0, epoch=1,
                                                   max_per_class=100)])
    assert not torch.equal(labels, other)  # a fresh draw every epoch


def test_max_per_class_keeps_every_unlabelled_sample():
    """y = -1 (the semi-supervised pretraining set's unlabelled series) is not a class: the cap
    applies to the real classes only and every unlabelled sample is in every epoch."""
    y = torch.cat([torch.full((300,), -1), torch.zeros(50), torch.ones(8)]).long()
    ds = ArrayDataset(x=torch.randn(len(y), 4, 1), y=y, index=torch.arange(len(y)))
    for epoch in (0, 1):
        batches = list(make_loader(ds, batch_size=32, train=True, seed=0, epoch=epoch, max_per_class=10))
        labels = torch.cat([b["y"] for b in batches])
        index = torch.cat([b["index"] for b in batches])
        assert int((labels == -1).sum()) == 300 and int((labels == 0).sum()) == 10
        assert int((labels == 1).sum()) == 8
        assert torch.equal(torch.sort(index[labels == -1]).values, torch.arange(300))
        assert len(torch.unique(index)) == len(index)                 # no sample twice


def test_runtime_settings_flush_subnormals_unless_switched_off():
    from omegaconf import OmegaConf

    from utils.runtime import apply_runtime_settings

    try:
        apply_runtime_settings(OmegaConf.create({"trainer": {"flush_denormal": False}}))
        tiny = torch.tensor([1e-39])               # subnormal in float32, kept as such
        assert (tiny * 1.0).item() > 0.0           # strict IEEE arithmetic on request
        apply_runtime_settings(OmegaConf.create({"trainer": {"num_threads": None}}))
        assert (tiny * 1.0).item() == 0.0          # default: flushed to zero
    finally:
        torch.set_flush_denormal(True)             # the state every main.py run leaves


def test_runtime_settings_enlarge_onednn_cache_unless_the_environment_sets_it(monkeypatch):
    from omegaconf import OmegaConf

    from utils.runtime import ONEDNN_CACHE_ENTRIES, apply_runtime_settings

    cfg = OmegaConf.create({"trainer": {}})
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    apply_runtime_settings(cfg)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == ONEDNN_CACHE_ENTRIES
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
    apply_runtime_settings(cfg)
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "64"


# 3,000 touched 64 KiB blocks (below glibc's mmap threshold: heap memory) freed, all but the last,
# which keeps the heap from shrinking at free(): their pages stay resident until trimmed
FRAGMENTED_HEAP = """
import ctypes, ctypes.util, sys
sys.path.insert(0, {repo!r})
from utils.runtime import release_free_memory
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss_mib():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
blocks = [libc.malloc(65536) for _ in range(3000)]
for b in blocks:
    ctypes.memset(b, 1, 65536)
for b in blocks[:-1]:
    libc.free(b)
before = rss_mib()
print(release_free_memory(), before, rss_mib())
"""


def test_release_free_memory_gives_freed_heap_pages_back():
    import subprocess
    import sys

    from utils.runtime import release_free_memory
    if not release_free_memory():
        pytest.skip("the C library has no malloc_trim (not glibc)")
    out = subprocess.run([sys.executable, "-c", FRAGMENTED_HEAP.format(repo=str(Path(__file__).parents[1]))],
                         capture_output=True, text=True, check=True).stdout.split()
    trimmed, before, after = out[0] == "True", float(out[1]), float(out[2])
    assert trimmed and before - after > 150, (before, after)   # of the ~187 MiB freed


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_fused_auto_optimizer_takes_the_same_steps_as_the_loop(name):
    """optimizer.fused=auto picks torch's fused kernel on the CPU; ten steps of it end where
    ten steps of the for-loop update end, up to float rounding."""
    from omegaconf import OmegaConf

    from utils.optim import build_optimizer, fused_supported

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf" / "optimizer" / f"{name}.yaml")
    cfg.weight_decay = 0.01
    assert cfg.fused == "auto"
    finals = []
    for fused in ("auto", False):
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.GELU(), torch.nn.Linear(7, 2))
        start = torch.cat([p.detach().flatten() for p in net.parameters()])
        opt = build_optimizer(OmegaConf.merge(cfg, {"fused": fused}), net.parameters(), [])
        assert bool(opt.defaults["fused"]) == (fused == "auto" and fused_supported(net.parameters()))
        data = torch.randn(10, 16, 5)
        for x in data:
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
        finals.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    torch.testing.assert_close(finals[0], finals[1], rtol=1e-5, atol=1e-6)
    assert (finals[0] - start).abs().max() > 1e-3                # the steps moved the weights


def test_group_batches_keep_groups_whole_and_count_as_the_plain_loader():
    from data_provider.loader import GroupBatches, epoch_generator
    groups = torch.repeat_interleave(torch.arange(7), 5)                # 7 groups of 5 samples
    ds = ArrayDataset(x=torch.randn(35, 4, 1), g=groups)
    for drop_last in (False, True):
        batches = list(GroupBatches(ds, groups, 10, epoch_generator(0, 1), drop_last))
        plain = make_loader(ds, batch_size=10, train=True, seed=0, epoch=1, drop_last=drop_last)
        assert len(batches) == len(plain) == (3 if drop_last else 4)
    order = torch.cat([b["g"] for b in GroupBatches(ds, groups, 10, epoch_generator(0, 1), False)])
    runs = torch.unique_consecutive(order, return_counts=True)[1]
    assert (runs == 5).all() and not torch.equal(order, groups)          # whole groups, shuffled
