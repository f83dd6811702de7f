"""Stop training on a NaN/Inf loss, naming the step and saving the state as nonfinite-step{N}.ckpt.

On CPU the loss is looked at every step (no cost) and the run stops before the optimiser step of
the first bad loss: the checkpoint holds the weights that produced it.
On an accelerator, looking at the loss every step would make the host wait for the device every
step. There the first bad step and its loss are recorded on the device and looked at every
`every` steps (the logging interval) and at the last batch of each epoch; the checkpoint then
holds the weights at the moment of the look, and the message says whether they are still finite.

Every rank takes the same decision at the same step (one all_gather/all_reduce), so the
checkpoint save, a collective, is reached by all of them. Looks happen only inside training_step,
where the ranks are in step: an epoch-end hook is not, since rank 0's progress bar syncs metrics
there that the other ranks sync later.
"""
from __future__ import annotations

import os

import torch


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss; the message names the global step and the saved checkpoint."""


class NonFiniteGuard:
    def __init__(self, every: int = 50, defer: bool | None = None):
        """every: steps between looks in deferred mode; defer: None = on every device but the CPU."""
        self.every, self.defer = every, defer
        self.first_bad = self.bad_loss = None                 # device tensors (deferred mode)

    def update(self, trainer, loss: torch.Tensor) -> None:
        """Call once per training step with the step's loss (a scalar tensor)."""
        step = trainer.global_step
        loss = loss.detach()
        if not (self.defer if self.defer is not None else loss.device.type != "cpu"):
            bad = not bool(torch.isfinite(loss))
            if trainer.strategy.reduce_boolean_decision(bad, all=False):
                self._stop(trainer, step, float(loss) if bad else None)
            return
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
            self.bad_loss = torch.zeros((), dtype=torch.float32, device=loss.device)
        new = ~torch.isfinite(loss) & (self.first_bad < 0)
        self.first_bad = torch.where(new, torch.full_like(self.first_bad, step), self.first_bad)
        self.bad_loss = torch.where(new, loss.float(), self.bad_loss)
        if (step + 1) % self.every == 0 or trainer.is_last_batch:
            self.look(trainer)

    def look(self, trainer) -> None:
        """Read the device flag (one host-device sync, collective): stop if any rank saw a bad loss."""
        steps = trainer.strategy.all_gather(self.first_bad).flatten()            # [world]
        losses = trainer.strategy.all_gather(self.bad_loss).flatten()
        bad = steps >= 0
        if bad.any():
            i = int(torch.where(bad, steps, steps.max() + 1).argmin())
            self._stop(trainer, int(steps[i]), float(losses[i]))

    @staticmethod
    def _stop(trainer, bad_step: int, loss: float | None) -> None:
        step = trainer.global_step
        ckpt_dir = next((cb.dirpath for cb in trainer.checkpoint_callbacks if cb.dirpath), None)
        ckpt_dir = ckpt_dir or trainer.log_dir or trainer.default_root_dir
        path = os.path.join(ckpt_dir, f"nonfinite-step{step}.ckpt")
        trainer.save_checkpoint(path)  # collective: every rank reached this line
        module = trainer.lightning_module
        weights_ok = all(torch.isfinite(p).all() for p in module.parameters())
        state = "weights are finite" if weights_ok else "WARNING: weights already contain NaN/Inf"
        when = "state before this step" if bad_step == step else f"state at step {step}"
        value = "" if loss is None else f" ({loss})"
        raise NonFiniteLossError(
            f"non-finite training loss{value} at global step {bad_step}, epoch {trainer.current_epoch}; "
            f"{when} saved to {path} ({state}). Lower model.lr or check the data.")
