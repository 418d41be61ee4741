"""TensorBoard logging into the run directory: scalars, figures, the hparams table
(config + final metrics in the same event file, so sweeps compare in one view) and
embeddings for the projector."""
from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary


class TensorBoardLogger:
    """Writes into ``log_dir``; a disabled logger (every rank but 0) writes nothing."""

    def __init__(self, log_dir: str | Path, enabled: bool = True):
        self.log_dir = Path(log_dir)
        self.enabled = enabled
        self._writer: SummaryWriter | None = None

    @property
    def writer(self) -> SummaryWriter:
        if not self.enabled:
            raise RuntimeError("this TensorBoardLogger is disabled (not rank 0)")
        if self._writer is None:
            self._writer = SummaryWriter(log_dir=str(self.log_dir))
        return self._writer

    def scalar(self, tag: str, value: float, step: int) -> None:
        if not self.enabled:
            return
        self.writer.add_scalar(tag, value, step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        for tag, v in values.items():
            self.writer.add_scalar(tag, v, step)

    def train_step(self, step: int, loss, lr: float, parts: dict) -> None:
        """train/loss, train/lr and each loss part (train/loss/<part>) at ``step``."""
        self.scalar("train/loss", float(loss), step)
        self.scalar("train/lr", lr, step)
        for k, v in parts.items():
            self.scalar(f"train/loss/{k}", float(v), step)

    def figure(self, tag: str, fig, step: int = 0) -> None:
        if not self.enabled:
            import matplotlib.pyplot as plt
            plt.close(fig)                 # drawn on every rank; kept by rank 0 only
            return
        self.writer.add_figure(tag, fig, step, close=True)

    def embedding(self, features, labels=None, tag: str = "representations", step: int = 0) -> None:
        if not self.enabled:
            return
        self.writer.add_embedding(features, metadata=labels, tag=tag, global_step=step)

    def hparams(self, cfg: DictConfig, metrics: dict[str, float]) -> None:
        """Write the hparams plugin's summaries into this run's own event file."""
        if not self.enabled:
            return
        hp = {k: v for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True)).items()
              if isinstance(v, (int, float, str, bool))}
        exp, ssi, sei = hparams_summary(hp, metrics)
        w = self.writer.file_writer
        w.add_summary(exp)
        w.add_summary(ssi)
        w.add_summary(sei)
        for k, v in metrics.items():
            self.writer.add_scalar(k, v)

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _flatten(d, prefix=""):
    out = {}
    for k, v in (d or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        elif isinstance(v, (list, tuple)):
            out[key] = str(list(v))
        elif v is None:
            out[key] = "null"
        else:
            out[key] = v
    return out
