import numpy as np
import pytest


def make_trial(seed, preds, labels=None, ids=None, val=(0.5, 0.6)):
    """A trial result as pks4_lit.tables.trial writes it (results.json)."""
    labels = labels or [0] * len(preds)
    ids = ids or [str(i + 1) for i in range(len(preds))]
    return {"name": f"x/seed{seed}", "seed": seed, "command": f"pks4 fit --seed_everything {seed}",
            "val_top1": list(val), "best_val": max(val), "best_epoch": int(np.argmax(val)), "fit_s": 1.0,
            "test": {"ids": ids, "labels": labels, "preds": preds}}


@pytest.fixture
def trial():
    return make_trial
