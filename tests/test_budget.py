"""The run's training budget (utils/budget.py), resolved once before the model is built and
read by the loop, the scheduler and the momentum schedules."""
import math

import pytest
from omegaconf import OmegaConf

from tests.helpers import compose_cfg
from utils.budget import TrainingBudget, resolve_budget


def trainer(**kw):
    base = {"batch_size": 4, "max_epochs": None, "max_steps": None}
    return OmegaConf.create({**base, **kw})


def per_epoch(n, drop_last=False):
    return lambda bs: n // bs if drop_last else math.ceil(n / bs)


def test_total_steps_from_steps_epochs_or_both():
    assert resolve_budget(trainer(max_steps=300), 10, per_epoch(10)).total_steps == 300
    assert resolve_budget(trainer(max_epochs=2), 10, per_epoch(10)).total_steps == 6
    # the loader's own batch count: drop_last leaves 2 batches of 4 out of 10 samples
    assert resolve_budget(trainer(max_epochs=2), 10, per_epoch(10, drop_last=True)).total_steps == 4
    both = resolve_budget(trainer(max_epochs=2, max_steps=5), 10, per_epoch(10))
    assert both.total_steps == 5 and both.finished(1, 5) and not both.finished(1, 4)
    with pytest.raises(ValueError, match="max_epochs or trainer.max_steps"):
        resolve_budget(trainer(), 10, per_epoch(10))


def test_auto_steps_follow_ts2vecs_rule_on_the_values_the_model_counts():
    assert resolve_budget(trainer(max_steps="auto"), 10, per_epoch(10), auto_values=50_000).total_steps == 200
    assert resolve_budget(trainer(max_steps="auto"), 10, per_epoch(10), auto_values=500_000).total_steps == 600
    with pytest.raises(ValueError, match="only valid for task=pretrain"):
        resolve_budget(trainer(max_steps="auto"), 10, per_epoch(10))
    from models.ssl.timesurl import TimesURL
    from models.ssl.ts2vec import TS2Vec
    # 96,000 values in 1 channel: TS2Vec counts 96,000 (200 steps), TimesURL adds its
    # time-stamp channel (192,000: 600 steps), as the official loaders
    assert TS2Vec.budget_values(96_000, 1) == 96_000
    assert TimesURL.budget_values(96_000, 1) == 192_000


def test_batch_is_capped_at_the_training_samples_when_asked():
    b = resolve_budget(trainer(batch_size=256, max_steps=3), 10, per_epoch(10, True), cap_batch=True)
    assert b.batch_size == 10 and b.steps_per_epoch == 1
    assert resolve_budget(trainer(batch_size=256, max_steps=3), 10, per_epoch(10)).batch_size == 256


def test_step_bounded_budget_has_no_epoch_bound():
    b = TrainingBudget(batch_size=8, steps_per_epoch=12, max_epochs=None, max_steps=30)
    assert b.epochs_left(10**6) and b.steps_left(26) == 4 and b.steps_left(31) == 0
    assert b.finished(3, 30) and not b.finished(2, 29)


def test_models_configs_take_the_run_length_from_the_budget():
    """No model config works out the run's length from ${trainer.*} itself."""
    for name in ("byol", "dino"):
        model = compose_cfg([f"model={name}"]).model
        assert not {"max_steps", "max_epochs", "batch_size", "total_steps"} & set(model)
