"""Model selection and early stopping on the monitored validation metric (utils/early_stopping.py)."""
import math

import pytest

from utils.early_stopping import EarlyStopping, monitor_mode


def test_auto_direction_minimises_errors_and_maximises_scores():
    assert monitor_mode("loss", "auto") == "min" and monitor_mode("val/mse", "auto") == "min"
    assert monitor_mode("macro_f1", "auto") == "max" and monitor_mode("accuracy", "auto") == "max"
    assert monitor_mode("accuracy", "min") == "min"
    with pytest.raises(ValueError, match="use auto, min or max"):
        monitor_mode("loss", "up")


def test_best_epoch_patience_and_nan():
    stop = EarlyStopping("macro_f1", "auto", patience=2)
    assert stop.update({"loss": 1.0, "macro_f1": 0.5}, 1)
    assert not stop.update({"loss": 0.9, "macro_f1": math.nan}, 2)      # NaN is never the best
    assert stop.update({"loss": 0.8, "macro_f1": 0.6}, 3)
    assert not stop.update({"loss": 0.7, "macro_f1": 0.6}, 4)           # a tie does not improve
    assert not stop.should_stop()
    assert not stop.update({"loss": 0.7, "macro_f1": 0.55}, 5)
    assert stop.should_stop() and (stop.best, stop.best_epoch) == (0.6, 3)


def test_missing_monitor_falls_back_to_the_loss_and_state_round_trips():
    stop = EarlyStopping("macro_f1", "auto", patience=None)
    assert stop.key({"loss": 2.0}) == "loss" and stop.direction({"loss": 2.0}) == "min"
    stop.update({"loss": 2.0}, 1)
    stop.update({"loss": 3.0}, 2)
    again = EarlyStopping("macro_f1", "auto", patience=None)
    again.load_state_dict(stop.state_dict())
    assert again.state_dict() == {"best": 2.0, "best_epoch": 1, "bad_epochs": 1}
    assert not again.should_stop()                                      # no patience: never stops
