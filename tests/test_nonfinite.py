"""NonFiniteGuard alone: in deferred (accelerator) mode the host reads the loss only when it looks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from pks4_lit.nonfinite import NonFiniteGuard, NonFiniteLossError


class FakeTrainer(SimpleNamespace):
    def save_checkpoint(self, path):
        self.saved.append(path)


def fake_trainer(tmp_path):
    strategy = SimpleNamespace(all_gather=lambda t: t[None], reduce_boolean_decision=lambda b, all: b)
    module = torch.nn.Linear(2, 2)
    return FakeTrainer(global_step=0, is_last_batch=False, strategy=strategy, checkpoint_callbacks=[],
                       log_dir=str(tmp_path), default_root_dir=str(tmp_path), current_epoch=0,
                       lightning_module=module, saved=[])


def test_deferred_mode_reads_the_device_only_every_n_steps(tmp_path, monkeypatch):
    guard, trainer = NonFiniteGuard(every=4, defer=True), fake_trainer(tmp_path)
    reads = []
    for name in ("__bool__", "__float__", "__int__", "item"):
        original = getattr(torch.Tensor, name)

        def counted(self, *a, _original=original, _name=name, **kw):
            reads.append((trainer.global_step, _name))
            return _original(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, counted)
    losses = [1.0, 1.0, float("nan"), 1.0, 1.0]
    with pytest.raises(NonFiniteLossError, match=r"\(nan\) at global step 2, .* state at step 3 saved"):
        for step, value in enumerate(losses):
            trainer.global_step = step
            guard.update(trainer, torch.tensor(value))
    assert {step for step, _ in reads} == {3}                   # only the look after step 3 read values
    assert trainer.saved == [str(tmp_path / "nonfinite-step3.ckpt")]


def test_immediate_mode_stops_at_the_bad_step(tmp_path):
    guard, trainer = NonFiniteGuard(every=4, defer=False), fake_trainer(tmp_path)
    trainer.global_step = 5
    guard.update(trainer, torch.tensor(0.5))
    with pytest.raises(NonFiniteLossError, match=r"\(inf\) at global step 5, .* state before this step"):
        guard.update(trainer, torch.tensor(float("inf")))
