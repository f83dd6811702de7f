"""AtomicModelCheckpoint on Lightning's BoringModel (seconds, no video): what loggers are told, how often
`last.ckpt` is written."""
from __future__ import annotations

import os

import torch
from lightning.pytorch import Trainer
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import Logger

from pks4_lit.callbacks import AtomicModelCheckpoint


class CheckpointWatcher(Logger):
    """Records, at each `after_save_checkpoint`, the file the callback names and whether it is in place."""

    def __init__(self):
        super().__init__()
        self.seen = []

    name, version = "watcher", 0

    def log_metrics(self, metrics, step=None):
        pass

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def after_save_checkpoint(self, checkpoint_callback):
        path = checkpoint_callback._last_checkpoint_saved
        on_disk = torch.load(path, map_location="cpu", weights_only=False) if os.path.isfile(path) else None
        self.seen.append((path, on_disk and on_disk["global_step"], checkpoint_callback.last_model_path,
                          checkpoint_callback.best_model_path))


class ValLossModel(BoringModel):
    def validation_step(self, batch, batch_idx):
        out = super().validation_step(batch, batch_idx)
        self.log("valid_loss", out["x"])
        return out


def _fit(tmp_path, callback, logger=False, **trainer_kwargs):
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[callback], logger=logger, enable_progress_bar=False,
                      enable_model_summary=False, log_every_n_steps=1, **trainer_kwargs)
    trainer.fit(ValLossModel())
    return trainer


def test_loggers_are_told_the_final_file_after_it_is_written(tmp_path):
    watcher = CheckpointWatcher()
    callback = AtomicModelCheckpoint(dirpath=tmp_path / "ckpt", monitor="valid_loss", filename="best",
                                     save_last=True, last_every_n_train_steps=2)
    trainer = _fit(tmp_path, callback, logger=watcher, max_epochs=2, limit_train_batches=4, limit_val_batches=2)
    assert len(watcher.seen) >= 4
    for path, step_on_disk, last, best in watcher.seen:
        assert not path.endswith(".tmp"), path
        assert os.path.basename(path) in ("best.ckpt", "last.ckpt")
        assert step_on_disk is not None and step_on_disk <= trainer.global_step  # complete, under its own name
        for named in (last, best):
            assert not named or os.path.isfile(named), named
    # the step refreshes of last.ckpt: the file on disk already holds the step being announced
    last_saves = [step for path, step, _, _ in watcher.seen if path.endswith("last.ckpt")]
    assert last_saves[:2] == [2, 4], last_saves
    assert not list((tmp_path / "ckpt").glob("*.tmp"))


def _record_saves(monkeypatch) -> list[tuple[str, int]]:
    """(file name, global step) of every Trainer.save_checkpoint from now on."""
    saves = []
    save = Trainer.save_checkpoint

    def recording_save(self, filepath, *args, **kwargs):
        saves.append((os.path.basename(str(filepath)), self.global_step))
        return save(self, filepath, *args, **kwargs)

    monkeypatch.setattr(Trainer, "save_checkpoint", recording_save)
    return saves


def _last_every_step(tmp_path) -> AtomicModelCheckpoint:
    return AtomicModelCheckpoint(dirpath=tmp_path / "ckpt", monitor=None, save_last=True, save_top_k=0,
                                 last_every_n_train_steps=1)


def test_last_ckpt_is_written_once_per_step_with_gradient_accumulation(tmp_path, monkeypatch):
    saves = _record_saves(monkeypatch)
    trainer = _fit(tmp_path, _last_every_step(tmp_path), max_epochs=1, limit_train_batches=8, limit_val_batches=0,
                   accumulate_grad_batches=2)
    assert trainer.global_step == 4
    steps = [step for name, step in saves if name == "last.ckpt.tmp"]
    # one refresh after each of the 4 optimiser steps, none before the first (8 batches end)
    assert steps == [1, 2, 3, 4], steps


def test_resumed_run_does_not_rewrite_last_before_its_next_step(tmp_path, monkeypatch):
    _fit(tmp_path, _last_every_step(tmp_path), max_epochs=1, limit_train_batches=3, limit_val_batches=0,
         accumulate_grad_batches=2)
    saves = _record_saves(monkeypatch)
    trainer = Trainer(default_root_dir=tmp_path, callbacks=[_last_every_step(tmp_path)], logger=False,
                      enable_progress_bar=False, enable_model_summary=False, max_epochs=2, limit_train_batches=3, limit_val_batches=0,
                      accumulate_grad_batches=2)
    trainer.fit(BoringModel(), ckpt_path=str(tmp_path / "ckpt" / "last.ckpt"))
    steps = [step for name, step in saves if name == "last.ckpt.tmp"]
    # resumed at step 2 (3 batches, accumulation 2): nothing until step 3 is taken
    assert steps == [3, 4], steps
