"""One run directory, one run.

A run locks its directory for its whole life (an advisory ``fcntl`` lock on ``<dir>/.lock``),
and before it writes anything:
- refuses a directory another live run holds;
- refuses a directory that already holds a run (its ``.hydra/``, checkpoints or
  metrics.json), unless it resumes it (``trainer.resume=true``);
- on resume, refuses command-line overrides that differ from the interrupted run's (a changed
  lr or seed would otherwise be silently overruled by the restored optimizer and RNG state),
  unless ``trainer.resume_allow_changes=true``, which records the changes in
  ``.hydra/resume_changes.yaml``.
Only then are ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` written
(atomically); Hydra's own writing of them is off (``hydra.output_subdir: null``).
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import yaml
from omegaconf import DictConfig, OmegaConf

from utils.atomic import write_text_atomic

try:
    import fcntl
except ImportError:            # Windows: no advisory locks; the other checks still apply
    fcntl = None

log = logging.getLogger(__name__)

# what marks a directory as holding a run
RUN_MARKS = (".hydra/config.yaml", "checkpoints", "metrics.json")
# overrides that may change on resume: where files lie and how the console looks
RESUME_FREE = ("trainer.resume", "trainer.resume_allow_changes", "trainer.progress",
               "trainer.num_threads", "paths.data_dir", "paths.cache_dir")


class RunDirectoryError(RuntimeError):
    pass


class RunDirectory:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = None

    def __enter__(self) -> "RunDirectory":
        self.lock()
        return self

    def __exit__(self, *exc) -> None:
        self.unlock()

    def lock(self) -> None:
        """Take the directory for this run's life, or refuse when another live run has it."""
        self.path.mkdir(parents=True, exist_ok=True)
        if fcntl is not None:
            handle = open(self.path / ".lock", "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise RunDirectoryError(
                    f"{self.path} is in use by another run (pid {holder}); give this run its own "
                    "hydra.run.dir, or wait for that one to finish") from None
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
            self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def holds_a_run(self) -> bool:
        return any((self.path / mark).exists() for mark in RUN_MARKS)

    def admit(self, overrides: list[str], resume, allow_changes: bool = False) -> bool:
        """Refuse (before anything is written) a run this directory must not take; returns
        whether the run continues from checkpoints/last.pt. ``resume``: true | false | "auto"
        (continue the run this directory holds when it has a checkpoint, else start it here:
        a job requeued at any point, or its first start)."""
        if resume == "auto":
            if not self.holds_a_run():
                return False
            self._check_overrides(overrides, allow_changes)
            return (self.path / "checkpoints" / "last.pt").is_file()
        if not resume:
            if self.holds_a_run():
                raise RunDirectoryError(
                    f"{self.path} already holds a run; continue it with trainer.resume=true, or "
                    "give this run another hydra.run.dir (the default is a new timestamped one)")
            return False
        self._check_overrides(overrides, allow_changes)
        return True

    def _check_overrides(self, overrides: list[str], allow_changes: bool) -> None:
        """A resumed run keeps the interrupted run's overrides (or records the changes)."""
        before = self._previous_overrides()
        changed = sorted(set(_relevant(overrides)) ^ set(_relevant(before)))
        if not changed:
            return
        if not allow_changes:
            raise RunDirectoryError(
                f"trainer.resume=true with overrides that differ from the interrupted run's "
                f"({', '.join(changed)}): the restored optimizer, scheduler and RNG state would "
                "overrule them. Resume with the run's own overrides (.hydra/overrides.yaml), or "
                "add trainer.resume_allow_changes=true to resume anyway and record the change")
        self._record_changes(before, overrides)
        log.warning("resuming %s with changed overrides %s (recorded in .hydra/resume_changes.yaml)",
                    self.path, changed)

    def _previous_overrides(self) -> list[str]:
        path = self.path / ".hydra" / "overrides.yaml"
        if not path.is_file():
            raise RunDirectoryError(
                f"trainer.resume=true but {self.path} holds no .hydra/overrides.yaml of an "
                "earlier run; resume needs that run's directory: hydra.run.dir=<its directory>")
        return [str(o) for o in (yaml.safe_load(path.read_text()) or [])]

    def _record_changes(self, before: list[str], now: list[str]) -> None:
        path = self.path / ".hydra" / "resume_changes.yaml"
        history = (yaml.safe_load(path.read_text()) or []) if path.is_file() else []
        history.append({"time": time.strftime("%Y-%m-%d %H:%M:%S"),
                        "removed": sorted(set(_relevant(before)) - set(_relevant(now))),
                        "added": sorted(set(_relevant(now)) - set(_relevant(before)))})
        write_text_atomic(yaml.safe_dump(history, sort_keys=False), path)

    def write_configs(self, cfg: DictConfig, hydra_cfg: DictConfig, overrides: list[str]) -> None:
        """.hydra/config.yaml (the resolved-at-use config), hydra.yaml and overrides.yaml."""
        folder = self.path / ".hydra"
        write_text_atomic(OmegaConf.to_yaml(cfg), folder / "config.yaml")
        write_text_atomic(OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_cfg})),
                          folder / "hydra.yaml")
        write_text_atomic(yaml.safe_dump(list(overrides), sort_keys=False), folder / "overrides.yaml")


def _relevant(overrides) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in RESUME_FREE]


def resume_setting(value) -> bool | str:
    """trainer.resume: true | false | auto."""
    if str(value).lower() == "auto":
        return "auto"
    if isinstance(value, (bool, int)):
        return bool(value)
    raise RunDirectoryError(f"trainer.resume={value} is not valid; use true, false or auto")
