"""What a run prints: the warnings every run would print that say nothing about this run are filtered,
and the progress bar names the run (`run=version_3`, not Lightning's `v_num=on_3`)."""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings

# (message regex, category) of warnings that every run prints and that say nothing about this run
EXPECTED_WARNINGS = (
    (r"The dirpath has changed from", UserWarning),                      # eval/resume: by design
    (r".*does not have many workers", UserWarning),                      # num_workers is set by the config
    (r"Found \d+ module\(s\) in eval mode at the start of training", UserWarning),  # the frozen backbone
)
# timm names of the classifier-side modules a feature extractor drops on purpose
_HEAD_MODULES = {"classifier", "head", "fc", "conv_head", "bn2", "global_pool", "pre_logits", "fc_norm",
                 "head_drop", "attn_pool"}


class _ExpectedLogFilter(logging.Filter):
    """Drops Lightning's cloud-service tips and timm's note about unused classifier weights."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("💡 Tip:"):
            return False
        match = re.match(r"Unexpected keys \((.*)\) found while loading pretrained weights", message)
        return not (match and all(k.split(".")[0] in _HEAD_MODULES for k in match.group(1).split(", ")))


_LOG_FILTER = _ExpectedLogFilter()


def filter_expected_output() -> None:
    import lightning_utilities.core.rank_zero as rank_zero

    for message, category in EXPECTED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for category in (DeprecationWarning, FutureWarning):  # from dependencies; ours still show
        warnings.filterwarnings("ignore", category=category, module=r"(?!pks4_lit)")
    for name in {rank_zero.log.name, "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero",
                 "timm.models._builder"}:
        logging.getLogger(name).addFilter(_LOG_FILTER)


class _RunVersionInBar:
    """Progress-bar mixin: `run=version_3` instead of Lightning's `v_num=on_3` (the last 4 characters)."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        version = trainer.logger.version if trainer.logger is not None else None
        if version is None:
            return items
        return {"run": version if isinstance(version, str) else f"version_{version}", **items}


def default_progress_bar():
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    interactive = sys.stdout.isatty() and not os.environ.get("CI")
    if interactive:
        try:
            import rich  # noqa: F401
            return type("RunRichProgressBar", (_RunVersionInBar, RichProgressBar), {})()
        except ImportError:
            pass
    return type("RunTQDMProgressBar", (_RunVersionInBar, TQDMProgressBar), {})(refresh_rate=1 if interactive else 50)
