"""Callbacks the CLI adds: crash-safe checkpoints and printed predictions."""
from __future__ import annotations

import os
from weakref import proxy

from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint


class AtomicModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that writes crash-safe files and can refresh `last.ckpt` every N training steps.

    * Files are never half-written: saved to `<file>.tmp`, then renamed (`os.replace` is atomic on
      POSIX), so a run killed even with SIGKILL keeps the previous complete `last.ckpt` and
      `pks4 fit --ckpt_path last` can always resume. Loggers hear of a checkpoint (`after_save_checkpoint`)
      only once it is in place under its final name.
    * `last_every_n_train_steps=N` (0 = off) also saves `last.ckpt` every N optimiser steps (once per
      step, also with gradient accumulation), so a kill mid-epoch loses at most N steps; the
      best-by-monitor checkpoint is still chosen at validation.
    * `enable_version_counter` defaults to False here: `best.ckpt`/`last.ckpt` keep stable names.
    """

    def __init__(self, *args, last_every_n_train_steps: int = 0, enable_version_counter: bool = False, **kwargs):
        super().__init__(*args, enable_version_counter=enable_version_counter, **kwargs)
        if last_every_n_train_steps < 0:
            raise ValueError(f"last_every_n_train_steps must be >= 0, got {last_every_n_train_steps}")
        self.last_every_n_train_steps = last_every_n_train_steps
        self._last_step_refreshed = -1

    def on_train_start(self, trainer, pl_module) -> None:
        super().on_train_start(trainer, pl_module)
        self._last_step_refreshed = trainer.global_step  # a resumed run's first save is after its next step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        n, step = self.last_every_n_train_steps, trainer.global_step
        # with gradient accumulation several batches end at the same global step: one save per step
        if (not n or not self.save_last or step % n or step == self._last_step_refreshed
                or self._should_skip_saving_checkpoint(trainer)):
            return
        self._last_step_refreshed = step
        already_saved = self._last_global_step_saved
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        # not a "save at this step" for the parent: the epoch-end best/last save at the same step must run
        self._last_global_step_saved = already_saved

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        # ModelCheckpoint._save_checkpoint, with the write going through `<file>.tmp`
        tmp = f"{filepath}.tmp"
        trainer.save_checkpoint(tmp, self.save_weights_only)
        if trainer.is_global_zero and os.path.exists(tmp):
            os.replace(tmp, filepath)
        trainer.strategy.barrier("atomic_checkpoint")
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class PredictionPrinter(BasePredictionWriter):
    """Print the top-k classes with probabilities for every predicted video (used by `pks4 predict`)."""

    def __init__(self, top_k: int = 5):
        super().__init__(write_interval="batch")
        self.top_k = top_k

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        if prediction is None:
            return
        names = pl_module.class_names
        probs, idx = prediction["probs"].topk(min(self.top_k, prediction["probs"].shape[-1]), dim=-1)
        for path, p_row, i_row in zip(prediction["path"], probs.tolist(), idx.tolist()):
            ranked = ", ".join(f"{names[i]} {p:.3f}" for p, i in zip(p_row, i_row))
            print(f"{path}: {ranked}", flush=True)

