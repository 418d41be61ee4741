"""Mixed precision: every model of the framework trains in bf16 autocast on the CPU with finite
losses (the GPU path uses the same autocast), and the loss formulas compute in fp32."""
import sys

import pytest
import torch

from tests.helpers import REPO, compose_cfg

sys.path.insert(0, str(REPO / "scripts"))
from check_equivalence import RUNS  # noqa: E402  (tiny settings of every task and method)

# runs that start from another run's output (explain, fine-tuning) use models covered here
TRAINED = sorted(name for name, args in RUNS.items() if not any("{runs}" in a for a in args))


@pytest.mark.parametrize("name", TRAINED)
def test_every_model_trains_a_few_steps_in_bf16(name, data_dir, cache_dir, tmp_path, one_thread):
    from exp import get_exp_class
    from utils.seed import seed_everything
    cfg = compose_cfg([*RUNS[name], "trainer.precision=bf16", "trainer.device=cpu",
                       "trainer.progress=false", f"paths.data_dir={data_dir}",
                       f"paths.cache_dir={cache_dir}"])
    seed_everything(0)
    exp = get_exp_class(cfg.task.name)(cfg, tmp_path / "run")
    assert exp.amp_dtype is torch.bfloat16
    exp.model.train()
    for step, batch in zip(range(2), exp._loader("train", train=True)):
        loss, _, _ = exp._train_step(batch)
        assert torch.isfinite(loss) and loss.dtype == torch.float32, (name, step, loss)


def test_loss_formulas_run_in_fp32_under_autocast():
    from utils.losses.cpc import cpc_info_nce
    from utils.losses.ts2vec import info_nce_pairs
    a, b = torch.randn(2, 8, 16), torch.randn(2, 8, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = info_nce_pairs(a.bfloat16(), b.bfloat16())
        inside = torch.matmul(a, b.transpose(1, 2))
    assert inside.dtype == torch.bfloat16 and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(info_nce_pairs(a.bfloat16().float(), b.bfloat16().float()).item())
    z, pred = torch.randn(2, 6, 4), torch.randn(2, 6, 3, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert cpc_info_nce(pred, z)[0].dtype == torch.float32
