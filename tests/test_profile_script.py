"""scripts/bench/profile_run.py records the profiled training steps' operators and profiles the
evaluation phase, on a real dataset."""
from __future__ import annotations

import math
import subprocess
import sys

from tests.helpers import REPO, require_ucr


def test_profile_records_training_operators_and_the_evaluation(data_dir, cache_dir):
    require_ucr(data_dir, "ECG200")
    out = subprocess.run(
        [sys.executable, "scripts/bench/profile_run.py", "model=ts2vec", "data=ucr", "data.name=ECG200",
         "model.depth=2", "model.hidden_dims=8", "model.output_dims=16", f"paths.data_dir={data_dir}",
         f"paths.cache_dir={cache_dir}", "trainer.num_threads=1", "--steps", "3", "--warmup", "1"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    training, _, evaluation = out.stdout.partition("evaluation (test())")
    assert "training 4 steps" in training
    assert "aten::convolution_backward" in training        # the recorded steps' operators
    assert "exp_pretrain.py" in evaluation and "(test)" in evaluation


def test_step_time_times_each_variant_on_the_same_batches(data_dir, cache_dir):
    require_ucr(data_dir, "ECG200")
    variants = ["trainer.precision=fp32", "trainer.precision=fp32 trainer.grad_clip=null",
                "trainer.precision=bf16"]
    out = subprocess.run(
        [sys.executable, "scripts/bench/step_time.py", "task=classification", "model=resnet1d",
         "data=ucr", "data.name=ECG200", f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}",
         "trainer.num_threads=1", "trainer.batch_size=16", "--steps", "3", "--warmup", "1",
         *sum([["--variant", v] for v in variants], [])],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line.rsplit(maxsplit=4) for line in out.stdout.splitlines()[1:] if line.strip()]
    assert [r[0].strip() for r in rows] == variants
    for _, ms, steps, _, loss in rows:
        assert float(ms) > 0 and int(steps) == 3 and math.isfinite(float(loss))
    # each variant starts from the seed's weights and trains on the same batches: the first two
    # are the same computation (no clipping is the default), so their last losses are equal
    assert rows[0][4] == rows[1][4]
