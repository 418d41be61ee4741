"""Compose the project's Hydra config the way main.py does, and run experiments in-process."""
from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import OmegaConf, open_dict

from utils.compose import compose_cfg  # noqa: F401  (re-exported for tests)

REPO = Path(__file__).resolve().parents[1]


def run_experiment(overrides: list[str], run_dir: Path, cfg_edit=None) -> dict:
    """Compose, optionally edit (e.g. to swap in test data), then run train + test like main.py."""
    from main import run

    cfg = compose_cfg(overrides)
    if cfg_edit is not None:
        with open_dict(cfg):
            cfg_edit(cfg)
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    return run(cfg, run_dir)


def read_metrics(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "metrics.json").read_text())


def data_cfg(name: str):
    """The `data` node of conf/data/<name>.yaml (files that also set trainer defaults are
    `@package _global_` and nest it under `data:`)."""
    node = OmegaConf.load(REPO / "conf" / "data" / f"{name}.yaml")
    return node.data if "data" in node else node


def require_ucr(data_dir: Path, name: str, archive: str = "UCR") -> None:
    """For tests that run main.py in a subprocess: the dataset's absence raises DataUnavailable
    here (the test skips; REQUIRE_DATA=1 fails it) instead of a non-zero exit code there."""
    from data_provider.ucr_uea import locate, missing_message
    if locate(Path(data_dir) / archive / name, name) is None:
        from utils.download import DataUnavailable
        raise DataUnavailable(missing_message(Path(data_dir), archive, name, {}))


def require_files(data_dir: Path, *relpaths: str) -> None:
    """For tests that read dataset files directly: an absent file raises DataUnavailable
    (the test skips; REQUIRE_DATA=1 fails it), naming what is missing and how to get it."""
    missing = [p for p in relpaths if not (Path(data_dir) / p).exists()]
    if missing:
        from utils.download import DataUnavailable
        raise DataUnavailable(f"{', '.join(missing)} not in the data directory {data_dir} "
                              "(DATA_DIR); python scripts/fetch_data.py fetches the datasets the "
                              "tests use")


def copy_data(data_dir: Path, dest: Path, *relpaths: str) -> Path:
    """Writable copies of dataset files under ``dest`` (same relative paths), for tests that
    damage them; the data directory itself is never written. Absent files: DataUnavailable."""
    require_files(data_dir, *relpaths)
    for rel in relpaths:
        target = Path(dest) / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((Path(data_dir) / rel).read_bytes())
    return Path(dest)


def run_paths(data_dir: Path, cache_dir: Path) -> list[str]:
    """Overrides of a short in-process test run: the data and cache folders, one CPU thread,
    no progress bars."""
    return [f"paths.data_dir={data_dir}", f"paths.cache_dir={cache_dir}", "trainer.progress=false",
            "trainer.device=cpu", "trainer.num_threads=1"]


def finite_scores(metrics: dict) -> bool:
    return all(math.isfinite(metrics[k]) for k in ("accuracy", "macro_f1"))


def assert_padding_ignored(encoder, x, row: int, length: int, fill: float = 50.0, atol: float = 1e-5):
    """Series ``row`` of ``x`` [B, T, C] padded from ``length`` on (its padding set to ``fill``
    and masked out): its observed steps encode as the series alone, and every other series as
    itself. Returns (the padded batch, its mask, the batch's outputs) for further checks."""
    import torch
    padded = x.clone()
    padded[row, length:] = fill
    mask = torch.ones(x.shape[:2], dtype=torch.bool)
    mask[row, length:] = False
    with torch.no_grad():
        h = encoder(padded, mask)
        assert torch.allclose(h[row, :length], encoder(x[row:row + 1, :length])[0], atol=atol)
        for other in (r for r in range(len(x)) if r != row):
            assert torch.allclose(h[other], encoder(x[other:other + 1])[0], atol=atol)
    return padded, mask, h


def assert_classifier_ignores_padding(model, channels: int = 2, atol: float = 1e-5):
    """A batch of a 23-step series padded with NaN to 40 steps and a 40-step one: the encoder's
    observed steps, both series' logits, and the logits whatever the padding holds, all as
    each series alone."""
    import torch
    short, long = torch.randn(1, 23, channels), torch.randn(1, 40, channels)
    padded = torch.cat([torch.cat([short, torch.full((1, 17, channels), float("nan"))], 1), long])
    mask = torch.ones(2, 40, dtype=torch.bool)
    mask[0, 23:] = False
    with torch.no_grad():
        h = model.encoder(padded, mask)
        assert torch.allclose(h[0, :23], model.encoder(short)[0], atol=atol)
        logits = model(padded, mask=mask)
        assert torch.allclose(logits[0], model(short)[0], atol=atol)
        assert torch.allclose(logits[1], model(long)[0], atol=atol)
        other = padded.clone()
        other[0, 23:] = 50.0                                             # padding values do not matter
        assert torch.allclose(model(other, mask=mask), logits, atol=atol)
