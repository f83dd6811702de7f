"""PKS4Module on in-memory clips: optimiser groups, schedule, multi-view scoring, mixing, metrics, skips,
hp_metric and the hparams table, non-finite losses, checkpoints of another class count."""
from __future__ import annotations

import math
from functools import partial

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from pks4_lit.lit_module import NonFiniteLossError, PKS4Module
from pks4_lit.mixing import mix_batch
from pks4_lit.models import PKS4, TSN, FrameBackbone, VideoClassifier

K, T, S = 4, 4, 32
NAMES = ["left", "right", "red", "blue"]
GROUPS = {"left": "temporal", "right": "temporal", "red": "spatial", "blue": "spatial"}


def tiny_net(backbone: str = "test_efficientnet", freeze: str = "all", head=None, **kw):
    """A `net` callable num_classes -> VideoClassifier, as the config's class_path/init_args makes."""
    feature_index = 2 if "efficientnet" in backbone else -1
    head = head or partial(PKS4, d_state=4, prior_dim=8, radius=1)
    return lambda k: VideoClassifier(k, FrameBackbone(backbone, freeze=freeze, feature_index=feature_index),
                                     head=head, **kw)


def tiny_module(net=None, **kw) -> PKS4Module:
    args = dict(num_classes=K, class_names=NAMES, warmup_epochs=1.0)
    return PKS4Module(net or tiny_net(), **{**args, **kw})


class Batches:
    """A re-iterable list of ready batches (a bare list would read as several dataloaders)."""

    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


class ListData(L.LightningDataModule):
    """Random uint8 clips as dict batches in the datamodule's format; `none_at` batches are None."""

    class_names, num_classes, class_groups = NAMES, K, GROUPS

    def __init__(self, n: int = 8, batch: int = 2, views: int = 1, none_at=()):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.video = torch.randint(0, 256, (n, T, 3, S, S), generator=g, dtype=torch.uint8)
        self.label = torch.arange(n) % K
        self.batch, self.views, self.none_at = batch, views, set(none_at)

    def _batches(self, train: bool):
        out = []
        for i in range(0, len(self.label), self.batch):
            video, label = self.video[i:i + self.batch], self.label[i:i + self.batch]
            if not train:
                video = video[:, None].expand(-1, self.views, -1, -1, -1, -1)
            out.append(None if i // self.batch in self.none_at else dict(video=video, label=label, index=label))
        return Batches(out)

    def train_dataloader(self):
        return self._batches(True)

    def val_dataloader(self):
        return self._batches(False)

    def test_dataloader(self):
        return self._batches(False)


def trainer(tmp_path, **kw) -> L.Trainer:
    args = dict(max_epochs=2, accelerator="cpu", devices=1, logger=TensorBoardLogger(tmp_path, name="t"),
                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, log_every_n_steps=1)
    return L.Trainer(**{**args, **kw})


def test_param_groups_decay_and_backbone_lr():
    module = tiny_module(tiny_net(freeze="none"), lr=1e-3, backbone_lr=1e-5, weight_decay=0.1)
    groups = {g["name"]: g for g in module._param_groups()}
    assert set(groups) == {"head", "head_no_decay", "backbone", "backbone_no_decay"}
    assert groups["backbone"]["lr"] == 1e-5 and groups["head"]["lr"] == 1e-3
    assert groups["head"]["weight_decay"] == 0.1 and groups["head_no_decay"]["weight_decay"] == 0.0
    name_of = {id(p): n for n, p in module.model.named_parameters()}
    no_decay = [name_of[id(p)] for p in groups["head_no_decay"]["params"]]
    assert {n for n in no_decay if n.endswith(("A_log", ".D", "dt_proj.bias"))} == {
        "head.scanners.0.A_log", "head.scanners.0.D", "head.scanners.0.dt_proj.bias"}
    assert all(p.ndim > 1 for p in groups["head"]["params"])
    n_groups = sum(len(g["params"]) for g in groups.values())
    assert n_groups == sum(1 for p in module.parameters() if p.requires_grad)


def test_vit_position_embeddings_are_not_decayed():
    """timm's no_weight_decay() (pos_embed, cls_token) is the source of truth for the backbone."""
    module = tiny_module(tiny_net("test_vit", freeze="none", head=TSN), weight_decay=0.1)
    groups = {g["name"]: g for g in module._param_groups()}
    name_of = {id(p): n for n, p in module.model.named_parameters()}
    no_decay = {name_of[id(p)] for p in groups["backbone_no_decay"]["params"]}
    decay = {name_of[id(p)] for p in groups["backbone"]["params"]}
    assert {"backbone.model.pos_embed", "backbone.model.cls_token"} <= no_decay
    assert "backbone.model.blocks.0.attn.qkv.weight" in decay


def test_no_weight_decay_of_any_module_is_read():
    """A 2-D parameter that a module lists in no_weight_decay() (fnmatch patterns, as timm) is not decayed."""
    class Gate(torch.nn.Module):
        def __init__(self, dim: int):
            super().__init__()
            self.table = torch.nn.Parameter(torch.zeros(3, dim))
            self.proj = torch.nn.Linear(dim, dim)

        def no_weight_decay(self):
            return {"tab*"}

        def forward(self, X):
            return X + self.proj(X.transpose(2, -1)).transpose(2, -1) + self.table.sum()

    module = tiny_module(tiny_net(head=Gate), weight_decay=0.1)
    groups = {g["name"]: g for g in module._param_groups()}
    name_of = {id(p): n for n, p in module.model.named_parameters()}
    assert "head.table" in {name_of[id(p)] for p in groups["head_no_decay"]["params"]}
    assert "head.proj.weight" in {name_of[id(p)] for p in groups["head"]["params"]}


def test_frozen_backbone_is_not_optimised():
    groups = tiny_module(tiny_net(freeze="all"))._param_groups()
    assert {g["name"] for g in groups} == {"head", "head_no_decay"}


def test_st_adapter_baseline_trains_adapters_at_head_lr():
    module = tiny_module(tiny_net(head=TSN, adapter="st_adapter"), lr=1e-3, backbone_lr=0.0)
    groups = {g["name"]: g for g in module._param_groups()}
    assert {"backbone", "backbone_no_decay"}.isdisjoint(groups)      # pretrained weights stay frozen
    name_of = {id(p): n for n, p in module.model.named_parameters()}
    adapter_params = [name_of[id(p)] for g in groups.values() for p in g["params"] if "st_adapters" in name_of[id(p)]]
    assert adapter_params and all(groups[g]["lr"] == 1e-3 for g in groups)


def test_lr_warmup_then_cosine(tmp_path):
    module = tiny_module(lr=1e-2, warmup_epochs=1.0, min_lr_ratio=0.1)
    seen = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, *args):
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer(tmp_path, max_epochs=3, callbacks=[Record()]).fit(module, ListData())  # 4 steps per epoch
    warm = [1e-2 * (i + 1) / 4 for i in range(4)]
    assert seen[:4] == pytest.approx(warm)
    decay = [1e-2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / 8))) for i in range(8)]
    assert seen[4:] == pytest.approx(decay)


def test_multi_view_scores_are_averaged_softmax():
    module = tiny_module().eval()
    video = torch.randint(0, 256, (2, 3, T, 3, S, S), dtype=torch.uint8)
    with torch.no_grad():
        probs = module.multi_view_probs(video)
        per_view = torch.stack([module(video[:, v]).softmax(-1) for v in range(3)], 1).mean(1)
    assert torch.allclose(probs, per_view, atol=1e-6)
    assert torch.allclose(probs.sum(-1), torch.ones(2))


@pytest.mark.parametrize("mix", [dict(mixup_alpha=0.4), dict(cutmix_alpha=1.0), dict(mixup_alpha=0.4, cutmix_alpha=1.0)])
def test_mixing_keeps_targets_distributions(mix):
    torch.manual_seed(0)
    module = tiny_module(**mix)
    video = torch.randint(0, 256, (4, T, 3, S, S), dtype=torch.uint8)
    target = torch.nn.functional.one_hot(torch.arange(4), K).float()
    mixed, soft = mix_batch(video, target, module.hparams.mixup_alpha, module.hparams.cutmix_alpha)
    assert mixed.is_floating_point() and mixed.shape == video.shape and 0 <= mixed.min() and mixed.max() <= 1
    assert torch.allclose(soft.sum(-1), torch.ones(4))
    assert not torch.equal(soft, target)


def test_metrics_groups_and_confusion_figure_logged(tmp_path):
    module = tiny_module()
    t = trainer(tmp_path, max_epochs=1)
    t.fit(module, ListData())
    logged = set(t.callback_metrics)
    assert {"train/loss", "val/loss", "val/top1", "val/top5", "val/top1_temporal", "val/top1_spatial"} <= logged
    t.test(module, ListData(views=2))
    logged = set(t.callback_metrics)
    assert {"test/loss", "test/top1", "test/top5", "test/top1_temporal", "test/top1_spatial"} <= logged
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    images = set()
    for events in (tmp_path / "t").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"images": 0})
        acc.Reload()
        images |= set(acc.Tags()["images"])
    assert {"val/confusion_matrix", "test/confusion_matrix"} <= images


def test_group_accuracy_matches_subset_accuracy(tmp_path):
    module = tiny_module()
    t = trainer(tmp_path, max_epochs=1)
    data = ListData(n=16)
    t.fit(module, data)
    t.test(module, data)
    with torch.no_grad():
        module.eval()
        pred = module(data.video).argmax(-1)
    correct = (pred == data.label).float()
    temporal = data.label < 2
    assert float(t.callback_metrics["test/top1"]) == pytest.approx(correct.mean().item())
    assert float(t.callback_metrics["test/top1_temporal"]) == pytest.approx(correct[temporal].mean().item())
    assert float(t.callback_metrics["test/top1_spatial"]) == pytest.approx(correct[~temporal].mean().item())


def test_none_batches_are_skipped(tmp_path):
    module = tiny_module()
    t = trainer(tmp_path, max_epochs=1)
    t.fit(module, ListData(none_at={1, 2}))
    assert t.global_step == 2  # 4 batches, 2 of them None: no optimiser step for those
    assert "val/top1" in t.callback_metrics


def _events(run_dir, kind: str):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = []
    for events in sorted(run_dir.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        out.append(acc)
    return out


def test_hp_metric_is_the_best_val_top1_not_the_last(tmp_path, monkeypatch):
    module = tiny_module()
    scores = iter([0.5, 0.75, 0.25])                                 # the last epoch is the worst
    monkeypatch.setattr(module.val_top1, "compute", lambda: torch.tensor(next(scores)))
    trainer(tmp_path, max_epochs=3).fit(module, ListData())
    hp = [e.value for acc in _events(tmp_path, "scalars") if "hp_metric" in acc.Tags()["scalars"]
          for e in acc.Scalars("hp_metric")]
    assert hp[-3:] == pytest.approx([0.5, 0.75, 0.75])                # -1 first: the logger's placeholder


def test_hparams_table_shows_head_and_backbone(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    trainer(tmp_path, max_epochs=1).fit(tiny_module(), ListData())
    values = {}
    for acc in _events(tmp_path, "tensors"):
        for tag, content in acc.PluginTagToContent("hparams").items():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                values.update({k: v.string_value or v.number_value for k, v in data.session_start_info.hparams.items()})
    assert values["head"] == "pks4" and values["backbone"] == "test_efficientnet"
    assert values["lr"] == pytest.approx(1e-3)


class NaNFrom:
    """Replaces the model's forward: logits become NaN from the n-th training call on."""

    def __init__(self, model, n: int):
        self.forward, self.n, self.calls, self.model = model.forward, n, 0, model

    def __call__(self, video):
        self.calls += 1
        out = self.forward(video)
        return out * float("nan") if self.model.training and self.calls >= self.n else out


@pytest.mark.parametrize("defer", [False, True])
def test_nonfinite_loss_names_the_step_without_per_step_sync(tmp_path, defer):
    """CPU: stops at the bad step with the state before it. Deferred (the accelerator mode, forced here):
    the flag stays on the device and is read every `every` steps; it still names the first bad step."""
    module = tiny_module()
    module.model.forward = NaNFrom(module.model, n=2)                # global step 1 is the first bad one
    t = trainer(tmp_path, max_epochs=1, log_every_n_steps=3)
    module.finite_guard.defer = defer
    with pytest.raises(NonFiniteLossError, match="at global step 1,") as err:
        t.fit(module, ListData())
    seen = 1 if not defer else 2                                     # looked at after step index 2 (every 3)
    assert f"nonfinite-step{seen}.ckpt" in str(err.value) and (t.global_step == seen)
    assert ("state before this step" in str(err.value)) == (not defer)


def test_checkpoint_of_another_class_count_is_one_clear_error(tmp_path):
    module = tiny_module()
    t = trainer(tmp_path, max_epochs=1)
    t.fit(module, ListData())
    ckpt = tmp_path / "k4.ckpt"
    t.save_checkpoint(ckpt)
    other, six = tiny_module(num_classes=6, class_names=None), ListData()
    six.num_classes, six.class_names, six.class_groups = 6, None, None
    with pytest.raises(ValueError, match=r"trained for 4 classes but this model \(the data\) has 6"):
        trainer(tmp_path).test(other, six, ckpt_path=str(ckpt))
    with pytest.raises(ValueError, match="4 classes .* has 6"):
        PKS4Module.load_from_checkpoint(ckpt, net=tiny_net(), num_classes=6)
    with pytest.raises(TypeError, match=r"load_from_checkpoint\(path, net=...\)"):
        PKS4Module.load_from_checkpoint(ckpt)                          # built in Python: net is not in the file
    again = PKS4Module.load_from_checkpoint(ckpt, net=tiny_net())
    assert again.num_classes == 4 and again.best_val_top1 == module.best_val_top1


def test_hparams_names_of_an_end_to_end_model():
    from pks4_lit.lit_module import model_names

    class EndToEnd(torch.nn.Module):                                  # VideoMamba-like: `head` is its classifier
        def __init__(self, num_classes: int):
            super().__init__()
            self.head = torch.nn.Linear(8, num_classes)

    assert model_names(EndToEnd(3)) == {"head": "EndToEnd", "backbone": "none"}
    assert model_names(tiny_net()(3)) == {"head": "pks4", "backbone": "test_efficientnet"}
