"""Callbacks the CLI adds: crash-safe checkpoints and printed predictions."""
from __future__ import annotations

import csv
import json
import os
import shutil
import sys
from pathlib import Path
from weakref import proxy

import torch
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from pks4_lit.data.annotations import DatasetError


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

    def on_train_end(self, trainer, pl_module) -> None:
        # Lightning's end-of-training save_last ignores fast_dev_run (and, with its dummy logger, would
        # write ./checkpoints/last.ckpt into the working directory)
        if not self._should_skip_saving_checkpoint(trainer):
            super().on_train_end(trainer, pl_module)

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
    """Print the top-k classes with probabilities for every predicted video (used by `pks4 predict`).

    * `out=FILE` also writes one row per input, as batches finish (a crash keeps the rows written):
      CSV for `.csv` (columns path, class_1, prob_1, ..., class_k, prob_k, error) or JSON Lines for
      `.jsonl`/`.json` ({"path", "top": [[class, prob], ...]} or {"path", "error"}). Under DDP each
      rank writes FILE.part<rank> and rank 0 joins them into FILE at the end.
    * Inputs that could not be read are skipped (the dataset logs why), listed on stderr at the end
      and written to FILE with the reason as their error (the batch's `errors`, see dataset.py). If no
      input could be read, predict ends with DatasetError (the CLI prints one line and exits 2).
    """

    UNREADABLE = "could not be read (see the log)"   # when the loader gives no reason

    def __init__(self, top_k: int = 5, out: str | None = None):
        super().__init__(write_interval="batch")
        if out is not None and Path(out).suffix.lower() not in (".csv", ".jsonl", ".json"):
            raise ValueError(f"PredictionPrinter out={out!r}: use a .csv or .jsonl file")
        self.top_k, self.out = top_k, out
        self.predicted, self.failed = 0, []
        self._file = self._writer = None
        self._k = top_k

    # ------------------------------------------------------------------ one row per input
    def on_predict_start(self, trainer, pl_module):
        self.predicted, self.failed = 0, []
        self._k = min(self.top_k, pl_module.num_classes)
        if self.out:
            Path(self.out).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._part(trainer.global_rank), "w", newline="")
            if self._csv:
                self._writer = csv.writer(self._file)
                if trainer.global_rank == 0:
                    self._writer.writerow(["path"] + [f"{c}_{i}" for i in range(1, self._k + 1) for c in ("class", "prob")]
                                          + ["error"])

    def write_on_batch_end(self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx):
        predicted = {}  # dataset index -> (path, [(class, prob)] * k)
        if prediction is not None:
            names = pl_module.class_names
            probs, idx = prediction["probs"].topk(self._k, dim=-1)
            for i, path, p_row, i_row in zip(batch["index"].tolist(), prediction["path"], probs.tolist(), idx.tolist()):
                predicted[i] = (path, [(names[c], p) for p, c in zip(p_row, i_row)])
        samples = getattr(self._loader(trainer, dataloader_idx).dataset, "samples", None)
        errors = batch.get("errors", {}) if isinstance(batch, dict) else {}
        for i in batch_indices or list(predicted):  # input order
            why = None
            if i in predicted:
                path, top = predicted[i]
                print(f"{path}: " + ", ".join(f"{name} {p:.3f}" for name, p in top), flush=True)
                self.predicted += 1
            else:  # the dataset could not read it (dropped by collate_videos, its reason in `errors`)
                path, top = (str(samples[i].path) if samples is not None else f"input {i}"), None
                why = errors.get(i, self.UNREADABLE)
                self.failed.append((path, why))
            self._row(path, top, why)
        if self._file:
            self._file.flush()

    def _row(self, path: str, top: list | None, why: str | None):
        if not self._file:
            return
        if self._csv:
            cells = [x for name, p in top for x in (name, f"{p:.6f}")] + [""] if top else [""] * 2 * self._k + [why]
            self._writer.writerow([path] + cells)
        else:
            row = {"path": path, "top": [[name, round(p, 6)] for name, p in top]} if top else {"path": path, "error": why}
            self._file.write(json.dumps(row) + "\n")

    # ------------------------------------------------------------------ the end
    def on_predict_end(self, trainer, pl_module):
        if self._file:
            self._file.close()
            self._file = self._writer = None
        strategy = trainer.strategy
        counts = torch.tensor([self.predicted, len(self.failed)], device=pl_module.device)
        predicted, failed = (int(c) for c in strategy.reduce(counts, reduce_op="sum"))
        if self.out:
            strategy.barrier("prediction_printer")
            if trainer.global_rank == 0:
                self._join_parts(trainer.world_size)
        for path, why in self.failed:
            print(f"pks4 predict: skipped {path}: {why}", file=sys.stderr, flush=True)
        if failed and trainer.global_rank == 0:
            print(f"pks4 predict: {predicted} of {predicted + failed} inputs predicted, {failed} skipped",
                  file=sys.stderr, flush=True)
        if predicted == 0:
            raise DatasetError(f"predict: none of the {failed} inputs could be read (see the log for why)")

    def _join_parts(self, world_size: int):
        with open(self.out, "w", newline="") as dst:
            for rank in range(world_size):
                part = self._part(rank)
                with open(part, newline="") as src:
                    shutil.copyfileobj(src, dst)
                os.remove(part)

    # ------------------------------------------------------------------ helpers
    @property
    def _csv(self) -> bool:
        return Path(self.out).suffix.lower() == ".csv"

    def _part(self, rank: int) -> str:
        return f"{self.out}.part{rank}"

    @staticmethod
    def _loader(trainer, dataloader_idx: int):
        loaders = trainer.predict_dataloaders
        return loaders[dataloader_idx] if isinstance(loaders, (list, tuple)) else loaders
